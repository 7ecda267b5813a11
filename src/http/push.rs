//! The push endpoints of DESIGN.md §2: one delivery, one span, one stage.

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

#[derive(Clone, Copy)]
enum Stage {
    Request,
    Operation,
    Callback,
    Start,
}

pub async fn copy_requests(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Request).await
}

pub async fn copy_operations(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Operation).await
}

pub async fn copy_callbacks(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Callback).await
}

/// `POST /tasks/copy-starts`: a copy-start task from the copy-start queue. Its body is a
/// push envelope too (`clients::tasks`), so it is read and answered like a push.
pub async fn copy_starts(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Start).await
}

async fn handle(s: AppState, req: Request, stage: Stage) -> Response {
    let arrived = req
        .extensions()
        .get::<super::Arrival>()
        .map_or_else(tokio::time::Instant::now, |a| a.0);
    let span = tracing::info_span!(
        "delivery",
        stage = match stage {
            Stage::Request => "request",
            Stage::Operation => "operation",
            Stage::Callback => "callback",
            Stage::Start => "start",
        },
        request_id = tracing::field::Empty,
        message_id = tracing::field::Empty,
        operation = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    if let Some(t) = trace_id(req.headers()) {
        span.record("trace_id", t.as_str());
    }
    async move {
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
        let step = async {
            match stage {
                Stage::Request => s.pipeline.request_stage(&msg).await,
                Stage::Operation => s.pipeline.watch_stage_since(&msg, arrived).await,
                Stage::Callback => s.pipeline.callback_stage(&msg).await,
                Stage::Start => s.pipeline.start_stage(&msg).await,
            }
        };
        // A panic is answered 500 here, inside the delivery's span, so the log names the
        // request; Pub/Sub redelivers and the process keeps serving.
        match std::panic::AssertUnwindSafe(step).catch_unwind().await {
            Ok(outcome) => outcome.into_response(),
            Err(panic) => on_panic(panic),
        }
    }
    .instrument(span)
    .await
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
    let body = read_limited(req.into_body()).await?;
    Ok(parse_envelope(&body)?)
}

const TOO_LARGE: HttpError = HttpError::TooLarge {
    what: "push body",
    limit: MAX_PUSH_BYTES,
};

async fn read_limited(body: Body) -> Result<bytes::Bytes, HttpError> {
    axum::body::to_bytes(body, MAX_PUSH_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                TOO_LARGE
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
