//! The push and task endpoints of DESIGN.md §2 and §10: one delivery (or dispatch), one
//! span, one stage.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use tracing::Instrument;

use super::envelope::{PushMessage, parse_envelope};
use super::error::{HttpError, on_panic};
use super::{AppState, MAX_PUSH_BYTES};
use crate::contract::attr;
use crate::contract::task::MAX_TASK_BYTES;
use crate::pipeline::start_stage::Dispatch;

#[derive(Clone, Copy)]
enum Stage {
    Request,
    Callback,
    /// The upgrade route: an old watch message becomes a task.
    Drain,
    Start,
    Poll,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Request => "request",
            Stage::Callback => "callback",
            Stage::Drain => "drain",
            Stage::Start => "start",
            Stage::Poll => "poll",
        }
    }
}

pub async fn copy_requests(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Request).await
}

/// `POST /pubsub/copy-operations`, served only while an upgrade drains the previous
/// release's watch messages (`COPY_OPERATIONS_DRAIN`).
pub async fn copy_operations(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Drain).await
}

pub async fn copy_callbacks(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Callback).await
}

/// `POST /tasks/copy-starts`: a copy-start task from the copy-start queue.
pub async fn copy_starts(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Start).await
}

/// `POST /tasks/copy-polls`: a poll task from the poll queue.
pub async fn copy_polls(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Poll).await
}

async fn handle(s: AppState, req: Request, stage: Stage) -> Response {
    let span = tracing::info_span!(
        "delivery",
        stage = stage.name(),
        request_id = tracing::field::Empty,
        message_id = tracing::field::Empty,
        operation = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    if let Some(t) = trace_id(req.headers()) {
        span.record("trace_id", t.as_str());
    }
    let step = async move {
        match stage {
            Stage::Start | Stage::Poll => dispatch(&s, req, stage).await,
            Stage::Request | Stage::Callback | Stage::Drain => delivery(&s, req, stage).await,
        }
    };
    // A panic is answered as a failure here, inside the delivery's span, so the log names the
    // request; the sender retries and the process keeps serving.
    async move {
        match std::panic::AssertUnwindSafe(step).catch_unwind().await {
            Ok(response) => response,
            Err(panic) => on_panic(panic),
        }
    }
    .instrument(span)
    .await
}

/// A Pub/Sub push: the envelope, then the stage.
async fn delivery(s: &AppState, req: Request, stage: Stage) -> Response {
    let msg = match read_envelope(req).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let span = tracing::Span::current();
    span.record("message_id", msg.message_id.as_str());
    if let Some(id) = msg.attribute(attr::REQUEST_ID) {
        span.record("request_id", id);
    }
    if let Some(t) = msg
        .attribute(attr::TRACEPARENT)
        .and_then(trace_from_traceparent)
    {
        span.record("trace_id", t.as_str());
    }
    let outcome = match stage {
        Stage::Request => s.pipeline.request_stage(&msg).await,
        Stage::Callback => s.pipeline.callback_stage(&msg).await,
        _ => s.pipeline.drain_stage(&msg).await,
    };
    outcome.into_response()
}

/// A Cloud Tasks dispatch: the task's name (`X-CloudTasks-TaskName`, set by Cloud Tasks:
/// cloud.google.com/tasks/docs/creating-http-target-tasks, "Reading request headers") and
/// its body, at most [`MAX_TASK_BYTES`] (no task is larger).
async fn dispatch(s: &AppState, req: Request, stage: Stage) -> Response {
    let name = req
        .headers()
        .get("x-cloudtasks-taskname")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unnamed")
        .to_owned();
    tracing::Span::current().record("message_id", name.as_str());
    let body = match read_limited(req.into_body(), MAX_TASK_BYTES, "task body").await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // The previous release queued copy starts as push envelopes; while an upgrade drains,
    // such a task is handed on in the new form (docs/DESIGN.md, "Upgrading").
    if s.drain
        && matches!(stage, Stage::Start)
        && let Ok(msg) = parse_envelope(&body)
    {
        return s.pipeline.drain_stage(&msg).await.into_response();
    }
    let d = Dispatch {
        task_name: &name,
        body: &body,
    };
    let outcome = match stage {
        Stage::Start => s.pipeline.start_stage(d).await,
        _ => s.pipeline.poll_stage(d).await,
    };
    outcome.into_response()
}

/// Reads at most [`MAX_PUSH_BYTES`] and parses the envelope (the caller is authenticated
/// already, by the middleware, from the headers alone).
async fn read_envelope(req: Request) -> Result<PushMessage, HttpError> {
    // A declared length over the limit is refused before a byte is read; a chunked body is
    // cut off by `read_limited` as soon as it passes the limit.
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_PUSH_BYTES as u64) {
        return Err(TOO_LARGE);
    }
    let body = read_limited(req.into_body(), MAX_PUSH_BYTES, "push body").await?;
    Ok(parse_envelope(&body)?)
}

const TOO_LARGE: HttpError = HttpError::TooLarge {
    what: "push body",
    limit: MAX_PUSH_BYTES,
};

async fn read_limited(
    body: Body,
    limit: usize,
    what: &'static str,
) -> Result<bytes::Bytes, HttpError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            HttpError::TooLarge { what, limit }
        } else {
            HttpError::BadBody(format!("cannot read body: {e}"))
        }
    })
}

/// The trace id from `traceparent` or `X-Cloud-Trace-Context`, for Cloud Logging.
fn trace_id(h: &HeaderMap) -> Option<String> {
    if let Some(t) = h.get("traceparent").and_then(|v| v.to_str().ok()) {
        return trace_from_traceparent(t);
    }
    let x = h.get("x-cloud-trace-context")?.to_str().ok()?;
    let id = x.split('/').next()?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// `00-<32 hex trace id>-<16 hex span id>-<flags>` → the trace id.
pub fn trace_from_traceparent(t: &str) -> Option<String> {
    let mut parts = t.split('-');
    let (_v, id) = (parts.next()?, parts.next()?);
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_from_traceparent_or_cloud_trace_context() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-cloud-trace-context",
            "105445AA7843BC8BF206B12000100000/1;o=1".parse().unwrap(),
        );
        assert_eq!(trace_id(&h).unwrap(), "105445aa7843bc8bf206b12000100000");
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(trace_id(&h).unwrap(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace_from_traceparent("garbage"), None);
    }
}
