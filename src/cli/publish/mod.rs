//! `copy-worker publish` (DESIGN.md §6): submits copy requests from flags or JSON Lines and,
//! with `--wait`, follows their completion events.
//!
//! Every command runs the same three steps: parse and validate all input, publish, answer (one
//! JSON line per request, then optionally the events). Validation runs to the end before the
//! first publish, so a file with one bad line publishes nothing.

mod args;
mod input;

use std::io::Write;
use std::time::Duration;

use futures::future::join_all;

pub use args::PublishArgs;
pub use input::RequestFlags;

use super::exit;
use super::waiting::{finish, own};
use crate::clients::pubsub::{Connection, OutMessage, full_subscription, full_topic, to_message};
use crate::clients::temp_subscription::{FilterBy, WaitSource, WaiterTag};
use crate::clients::{interrupt, lines};
use crate::contract::attr;
use crate::contract::request::MAX_REQUEST_BYTES;
use crate::domain::{CopyRequest, Defaults};

/// Everything `run` needs, resolved and validated before anything is published.
struct Plan {
    topic: String,
    /// With `--wait`: where it reads events (a new subscription of its own, or a shared one).
    wait: Option<WaitSource>,
    timeout: Duration,
    connection: Connection,
    requests: Vec<CopyRequest>,
    traceparent: Option<String>,
    /// With `--wait` on a subscription of its own: the `waiter` attribute of every request,
    /// which the worker carries onto its event and the subscription filters on.
    tag: Option<WaiterTag>,
}

const WHO: &str = "copy-worker publish";

/// Runs the command; returns the process exit code.
pub async fn run(args: PublishArgs) -> u8 {
    if args.wait {
        // SIGTERM (CI cancellation, `timeout`) ends the wait as Ctrl-C does.
        interrupt::listen();
    }
    let mut plan = match plan(&args) {
        Ok(p) => p,
        Err(problems) => {
            for p in problems {
                eprintln!("{WHO}: {p}");
            }
            eprintln!("{WHO}: nothing was published");
            return exit::USAGE;
        }
    };
    match super::args::connect(WHO, &args.pubsub).await {
        Ok(conn) => plan.connection = conn,
        Err(code) => return code,
    }
    // The waiter's own subscription exists before anything is published, so that it gets
    // every event, and a caller who may not create it learns so before publishing.
    let source = match plan.wait.take() {
        None => return publish_and_wait(&plan, None).await,
        Some(shared @ WaitSource::Shared(_)) => {
            shared.check(&plan.connection).await.map(|()| shared)
        }
        Some(new) => {
            // Only its own subscription filters on a tag; a shared one sees untagged requests.
            let tag = plan.tag.get_or_insert_with(WaiterTag::generate);
            let (conn, timeout) = (&plan.connection, plan.timeout);
            own::open(WHO, conn, new, tag, FilterBy::Tag, timeout).await
        }
    };
    match source {
        Ok(source) => publish_and_wait(&plan, Some(source)).await,
        Err(e) => {
            eprintln!("{WHO}: --wait: {e}");
            eprintln!("{WHO}: nothing was published");
            exit::PUBSUB
        }
    }
}

/// Publishes, then (with `--wait`) reads events from `source`.
async fn publish_and_wait(plan: &Plan, source: Option<WaitSource>) -> u8 {
    if let Some(which) = interrupt::requested() {
        eprintln!("{WHO}: {which} before publishing: nothing was published");
        drop_own(source).await;
        return exit::TIMEOUT;
    }
    let mut stdout = std::io::stdout();
    let ids = match publish_all(plan, &mut stdout).await {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!("{WHO}: {e:#}");
            drop_own(source).await;
            return exit::PUBSUB;
        }
    };
    let Some(source) = source else {
        return exit::OK;
    };
    finish::follow_and_finish(
        WHO,
        &plan.connection,
        source,
        ids,
        plan.timeout,
        &mut stdout,
    )
    .await
}

/// Deletes the waiter's own subscription when nothing will be read from it.
async fn drop_own(source: Option<WaitSource>) {
    if let Some(WaitSource::Own(sub)) = source
        && let Err(e) = sub.delete().await
    {
        eprintln!("{WHO}: warning: {e}");
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

/// A publish that Pub/Sub did not confirm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishAllError {
    /// The publisher could not be built (credentials, endpoint).
    #[error("connecting to Pub/Sub: {0}")]
    Connect(#[from] google_cloud_gax::client_builder::Error),
    /// At least one request was not published; those printed on stdout were.
    #[error("publishing to {topic}: {source}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Publish {
        topic: String,
        /// What to check, when the cause is known.
        hint: Option<&'static str>,
        #[source]
        source: google_cloud_pubsub::error::PublishError,
    },
    /// stdout could not be written.
    #[error("writing to stdout: {0}")]
    Stdout(#[from] std::io::Error),
}

/// Step 1: resolve names and validate every request. Returns every problem found.
fn plan(args: &PublishArgs) -> Result<Plan, Vec<String>> {
    let project = args.pubsub.project();
    let topic = full_topic(&args.topic, project).map_err(|e| vec![e.to_string()])?;
    let wait = match (&args.completions_subscription, args.wait) {
        (_, false) => None,
        (Some(s), true) => Some(WaitSource::Shared(
            full_subscription(s, project)
                .map_err(|e| vec![format!("--completions-subscription: {e}")])?,
        )),
        (None, true) => {
            let topic = full_topic(&args.completions_topic, project)
                .map_err(|e| vec![format!("--completions-topic: {e}")])?;
            let project = own::waiter_project(&args.waiter_project, &topic).map_err(|e| vec![e])?;
            Some(WaitSource::New { topic, project })
        }
    };
    let defaults = Defaults {
        source_project: non_empty(&args.source_project),
        target_project: non_empty(&args.target_project),
        location: non_empty(&args.location),
        callback_allowed_hosts: vec![],
        callback_allow_http_loopback: args.callback_allow_http_loopback,
    };
    let requests = match &args.file {
        Some(path) => {
            let lines = lines::open(path, MAX_REQUEST_BYTES).map_err(|e| vec![e.to_string()])?;
            input::validate_lines(lines, &defaults)
                .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?
        }
        None => {
            vec![input::validate_flags(&args.request, &defaults).map_err(|e| vec![e.to_string()])?]
        }
    };
    Ok(Plan {
        topic,
        wait,
        timeout: args.timeout,
        connection: args.pubsub.connection(),
        requests,
        traceparent: trace_context(std::env::var("TRACEPARENT").ok()),
        tag: None,
    })
}

/// `TRACEPARENT`, when it is a W3C `traceparent` (`attr::is_traceparent`, the rule the worker
/// screens it with at its door, DESIGN.md §3): anything else is not sent, with a note on
/// stderr. A receiver ignores an invalid trace context (W3C Trace Context §3.2), and an
/// unbounded one would exceed Pub/Sub's 1024-byte attribute value and fail every publish.
fn trace_context(value: Option<String>) -> Option<String> {
    let value = value.filter(|s| !s.is_empty())?;
    if attr::is_traceparent(&value) {
        return Some(value);
    }
    eprintln!(
        "note: TRACEPARENT is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>, at most {} bytes); it is not sent",
        attr::MAX_TRACEPARENT_BYTES
    );
    None
}

/// The message for one request: its normalised JSON, which the worker parses to the same
/// request without needing its own defaults, plus the attributes of DESIGN.md §3.
fn message(req: &CopyRequest, traceparent: Option<&str>, tag: Option<&WaiterTag>) -> OutMessage {
    let mut m = OutMessage {
        data: req.to_bytes(),
        ..OutMessage::default()
    };
    m.attributes
        .insert(attr::REQUEST_ID.into(), req.request_id.to_string());
    if let Some(t) = traceparent {
        m.attributes.insert(attr::TRACEPARENT.into(), t.to_owned());
    }
    if let Some(t) = tag {
        m.attributes
            .insert(attr::WAITER.into(), t.as_str().to_owned());
    }
    m
}

/// Step 2 and 3: publish every request (batched, concurrently), then print one line per
/// request in input order. Returns the request ids, for `--wait`.
async fn publish_all(plan: &Plan, out: &mut dyn Write) -> Result<Vec<String>, PublishAllError> {
    let base = plan.connection.base_publisher().await?;
    let publisher = base.publisher(plan.topic.clone()).build();
    // Before the first publish: `wait --file` seeks back to it (less clock skew).
    let published_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let pending = plan.requests.iter().map(|r| {
        let msg = to_message(message(r, plan.traceparent.as_deref(), plan.tag.as_ref()));
        publisher.publish(msg)
    });
    let results = join_all(pending).await;
    let mut ids = Vec::new();
    let mut first_error = None;
    for (req, result) in plan.requests.iter().zip(results) {
        match result {
            Ok(message_id) => {
                let line = serde_json::json!({
                    "request_id": req.request_id.as_str(),
                    "message_id": message_id,
                    "published_at": published_at,
                });
                writeln!(out, "{line}")?;
                ids.push(req.request_id.to_string());
            }
            Err(e) => {
                eprintln!(
                    "copy-worker publish: request {} was not published: {e}",
                    req.request_id
                );
                first_error.get_or_insert(e);
            }
        }
    }
    out.flush()?;
    match first_error {
        Some(source) => Err(PublishAllError::Publish {
            topic: plan.topic.clone(),
            hint: match &source {
                google_cloud_pubsub::error::PublishError::Rpc(e) => {
                    crate::clients::pubsub::unreachable_hint(&plan.connection, e)
                }
                _ => None,
            },
            source,
        }),
        None => Ok(ids),
    }
}

#[cfg(test)]
mod tests {
    use super::input::validate;
    use super::*;

    #[test]
    fn only_a_w3c_traceparent_from_the_environment_is_sent() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(trace_context(Some(tp.into())).as_deref(), Some(tp));
        let long = format!("{tp}{}", "-x".repeat(600));
        for junk in ["", "abc", &long, &tp.to_uppercase()] {
            assert_eq!(trace_context(Some(junk.to_owned())), None, "{junk}");
        }
        assert_eq!(trace_context(None), None);
    }

    #[test]
    fn message_carries_request_id_traceparent_and_with_wait_the_waiter_tag() {
        let req = validate(
            br#"{"request_id":"r1","source_model":"projects/src-proj/locations/us-central1/models/1","destination":{"project":"dst-proj"}}"#,
            &Defaults::default(),
        )
        .unwrap();
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let tag = WaiterTag::generate();
        let m = message(&req, Some(tp), Some(&tag));
        assert_eq!(m.attributes["request_id"], "r1");
        assert_eq!(m.attributes["traceparent"], tp);
        assert_eq!(m.attributes["waiter"], tag.as_str());
        assert_eq!(m.data, req.to_bytes());
        let bare = message(&req, None, None);
        assert!(!bare.attributes.contains_key("traceparent"));
        assert!(
            !bare.attributes.contains_key("waiter"),
            "no tag without --wait"
        );
    }
}
