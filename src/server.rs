//! The HTTP surface: push endpoints, health, and the one table of DESIGN.md §4 that turns
//! a stage's outcome into a status code.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt as _;
use tracing::Instrument;

use crate::pipeline::{Pipeline, StepOutcome};
use crate::push::{AuthDecision, EnvelopeError, PushAuth, PushMessage, parse_envelope};

/// Largest push body accepted: 10 MB of message, base64 included, plus the envelope.
pub const MAX_PUSH_BYTES: usize = 14 * 1024 * 1024;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Pipeline,
    pub push_auth: Arc<dyn PushAuth>,
    /// Checks direct callers of `POST /v1/models/copy` (`INVOKER_SERVICE_ACCOUNTS`).
    pub invoker_auth: Arc<dyn PushAuth>,
}

/// The router, built apart from serving so tests can call it without a socket.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pubsub/copy-requests", post(copy_requests))
        .route("/pubsub/copy-operations", post(copy_operations))
        .route("/v1/models/copy", post(crate::enqueue::enqueue))
        .with_state(state)
        // A panic in a handler answers 500 (Pub/Sub redelivers) instead of killing the process.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
}

/// Everything a push handler can answer. The status table of DESIGN.md §4 lives here.
#[derive(Debug)]
pub enum AppError {
    Unauthenticated(String),
    Forbidden(String),
    AuthUnavailable(String),
    BadEnvelope(EnvelopeError),
    TooLarge,
    BadBody(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            AppError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m),
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            AppError::AuthUnavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            AppError::BadEnvelope(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            AppError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("push body over {MAX_PUSH_BYTES} bytes"),
            ),
            AppError::BadBody(m) => (StatusCode::BAD_REQUEST, m),
        };
        tracing::warn!(status = status.as_u16(), error.message = %msg, "push refused");
        (status, msg).into_response()
    }
}

impl IntoResponse for StepOutcome {
    fn into_response(self) -> Response {
        match self {
            StepOutcome::Acked => StatusCode::NO_CONTENT.into_response(),
            StepOutcome::NotYet => {
                (StatusCode::TOO_MANY_REQUESTS, "operation still running").into_response()
            }
            StepOutcome::Retry(why) => {
                tracing::warn!(error.message = %why, "step not finished; asking for redelivery");
                (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Request,
    Operation,
}

async fn copy_requests(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Request).await
}

async fn copy_operations(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, Stage::Operation).await
}

async fn handle(s: AppState, req: Request, stage: Stage) -> Response {
    let span = tracing::info_span!(
        "delivery",
        stage = match stage {
            Stage::Request => "request",
            Stage::Operation => "operation",
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
        let msg = match authenticate_and_read(&s, req).await {
            Ok(m) => m,
            Err(e) => return e.into_response(),
        };
        let span = tracing::Span::current();
        span.record("message_id", msg.message_id.as_str());
        if let Some(id) = msg.attribute("request_id") {
            span.record("request_id", id);
        }
        if let Some(t) = msg
            .attribute("traceparent")
            .and_then(trace_from_traceparent)
        {
            span.record("trace_id", t.as_str());
        }
        let step = async {
            match stage {
                Stage::Request => s.pipeline.request_stage(&msg).await,
                Stage::Operation => s.pipeline.watch_stage(&msg).await,
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

/// Authenticates from the headers alone, then reads at most [`MAX_PUSH_BYTES`].
async fn authenticate_and_read(s: &AppState, req: Request) -> Result<PushMessage, AppError> {
    let auth = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match s.push_auth.check(auth).await {
        AuthDecision::Allowed => {}
        AuthDecision::Unauthenticated(m) => return Err(AppError::Unauthenticated(m)),
        AuthDecision::Forbidden(m) => return Err(AppError::Forbidden(m)),
        AuthDecision::Unavailable(m) => return Err(AppError::AuthUnavailable(m)),
    }
    // A declared length over the limit is refused before a byte is read; a chunked body is
    // cut off by `read_limited` as soon as it passes the limit.
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_PUSH_BYTES as u64) {
        return Err(AppError::TooLarge);
    }
    let body = read_limited(req.into_body()).await?;
    parse_envelope(&body).map_err(AppError::BadEnvelope)
}

async fn read_limited(body: Body) -> Result<bytes::Bytes, AppError> {
    axum::body::to_bytes(body, MAX_PUSH_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                AppError::TooLarge
            } else {
                AppError::BadBody(format!("cannot read body: {e}"))
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

fn on_panic(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(error.message = %what, "handler panicked; answering 500 so Pub/Sub redelivers");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
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
