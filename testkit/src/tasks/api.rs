//! The REST side of the fake: one handler behind every path that parses the route and body,
//! applies it to the state and answers with the resource's JSON or a google.rpc error.

use super::json::{list_json, queue_json, task_json};
use super::request::CreateTask;
use super::wire::{self, Encoding, Failure, Route, invalid, query_param};
use super::{Shared, lock};
use axum::body::Bytes;
use axum::extract::{OriginalUri, State as Extract};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

/// ListTasksRequest.page_size: "The maximum page size is 1000. If unspecified, the page size
/// will be the maximum" (cloudtasks.proto).
const MAX_PAGE: usize = 1000;

/// What a request carries besides its route.
struct Call<'a> {
    query: Option<&'a str>,
    encoding: Encoding,
    body: &'a [u8],
}

pub(crate) async fn handle(
    Extract((shared, wake)): Extract<(Shared, Arc<Notify>)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    let call = Call {
        query: uri.query(),
        encoding: Encoding::from_query(uri.query()),
        body: &body,
    };
    let answer =
        Route::parse(&method, uri.path()).and_then(|route| apply(&shared, &wake, route, &call));
    match answer {
        Ok(body) => axum::Json(body).into_response(),
        Err(failure) => failure.into_response(),
    }
}

fn apply(shared: &Shared, wake: &Notify, route: Route, call: &Call) -> Result<Value, Failure> {
    let encoding = call.encoding;
    match route {
        Route::Create { parent } => {
            let body: Value = serde_json::from_slice(call.body)
                .map_err(|e| invalid(format!("Invalid JSON payload received. {e}")))?;
            let request = CreateTask::parse(&parent, &body)?;
            let name = request
                .name
                .unwrap_or_else(|| format!("{parent}/tasks/{}", generated_id()));
            let task = lock(shared).create(&parent, name, request.spec, Instant::now())?;
            wake.notify_one();
            Ok(task_json(&task, request.view, encoding))
        }
        Route::List { parent } => list(shared, &parent, call),
        Route::Get { queue, name } => {
            let task = lock(shared).get(&queue, &name)?;
            Ok(task_json(
                &task,
                wire::view_from_query(call.query),
                encoding,
            ))
        }
        Route::Delete { queue, name } => {
            lock(shared).delete(&queue, &name, Instant::now())?;
            Ok(json!({}))
        }
        Route::GetQueue { name } => Ok(queue_json(&name, lock(shared).queue(&name)?, encoding)),
        Route::SetPaused { name, paused } => {
            empty_body(call.body)?;
            let answer = queue_json(&name, lock(shared).set_paused(&name, paused)?, encoding);
            wake.notify_one();
            Ok(answer)
        }
    }
}

/// ListTasks: a page of `pageSize` tasks (at most 1000) after the task named in `pageToken`.
fn list(shared: &Shared, parent: &str, call: &Call) -> Result<Value, Failure> {
    let size = match query_param(call.query, "pageSize") {
        None => MAX_PAGE,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n < 0 => return Err(invalid("page_size must be non-negative.")),
            Ok(0) => MAX_PAGE,
            Ok(n) => (n as usize).min(MAX_PAGE),
            Err(_) => return Err(invalid(format!("Invalid value for pageSize: {s:?}"))),
        },
    };
    // The token is the last name of the previous page, so a page never repeats or skips a
    // task that stayed in the queue.
    let after = match query_param(call.query, "pageToken") {
        None => None,
        Some(token) => {
            let bytes = URL_SAFE_NO_PAD.decode(token).ok();
            let name = bytes.and_then(|b| String::from_utf8(b).ok());
            let name = name.filter(|n| n.starts_with(&format!("{parent}/tasks/")));
            Some(name.ok_or_else(|| invalid("Invalid page_token."))?)
        }
    };
    let (tasks, more) = lock(shared).list(parent, after.as_deref(), size)?;
    let next = more
        .then(|| tasks.last().map(|t| URL_SAFE_NO_PAD.encode(&t.name)))
        .flatten();
    let view = wire::view_from_query(call.query);
    Ok(list_json(&tasks, next, view, call.encoding))
}

/// PauseQueueRequest and ResumeQueueRequest carry only the name, which the client moves into
/// the path, so the body is `{}` (or the name again).
fn empty_body(body: &[u8]) -> Result<(), Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let fields: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("Invalid JSON payload received. {e}")))?;
    match fields.as_object() {
        Some(map) if map.keys().all(|k| k == "name") => Ok(()),
        _ => Err(invalid("Invalid JSON payload received. Unknown name.")),
    }
}

/// A task id shaped like the ones Cloud Tasks generates (a long decimal number): a bijective
/// scramble of a process-wide counter, so ids never repeat and runs are repeatable.
fn generated_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_string()
}
