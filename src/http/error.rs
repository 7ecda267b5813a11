//! The one table of DESIGN.md §4: every answer of every route, and its status code.
//!
//! Handlers return [`HttpError`] for what stops a request before any work, and a stage's
//! [`StepOutcome`] for what the work did; both become responses here and nowhere else.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::envelope::EnvelopeError;
use crate::contract::Rejection;
use crate::pipeline::StepOutcome;

/// Everything a route can answer besides the outcome of a stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// No or invalid token: 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token from an account that is not allowed: 403.
    #[error("{0}")]
    Forbidden(String),
    /// The token could not be checked (keys unreachable): 503, so Pub/Sub redelivers.
    #[error("{0}")]
    AuthUnavailable(String),
    /// The body is not a Pub/Sub push envelope: 400 (it did not come from Pub/Sub).
    #[error("{0}")]
    BadEnvelope(#[from] EnvelopeError),
    /// The body is over `limit` bytes: 413.
    #[error("{what} over {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    /// The body could not be read: 400.
    #[error("{0}")]
    BadBody(String),
    /// `POST /v1/models/copy`: the request names the field and the rule: 400.
    #[error("{0}")]
    Invalid(Rejection),
    /// `POST /v1/models/copy`: the publish was not confirmed; nothing was accepted: 503.
    #[error("{0}")]
    Unavailable(String),
}

impl HttpError {
    /// The status table.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::AuthUnavailable(_) | HttpError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HttpError::BadEnvelope(_) | HttpError::BadBody(_) | HttpError::Invalid(_) => {
                StatusCode::BAD_REQUEST
            }
            HttpError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// A refusal of a direct caller (`POST /v1/models/copy`), answered as JSON with the
    /// field and rule of an invalid request.
    pub fn into_json_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            HttpError::Invalid(r) => {
                json!({"error": r.to_string(), "field": r.field, "rule": r.rule})
            }
            other => json!({"error": other.to_string()}),
        };
        tracing::warn!(status = status.as_u16(), error.message = %self, "enqueue refused");
        with_retry_after((status, Json(body)).into_response())
    }
}

/// Push and task routes answer in plain text: Pub/Sub and Cloud Tasks read only the status
/// (and Cloud Tasks `Retry-After`).
impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::warn!(status = status.as_u16(), error.message = %self, "push refused");
        with_retry_after((status, self.to_string()).into_response())
    }
}

/// Every 503 says when to try again.
fn with_retry_after(mut r: Response) -> Response {
    if r.status() == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(RETRY_AFTER_SECS),
        );
    }
    r
}

/// The status table of a stage's outcome: 204 ack, 503 redeliver.
pub fn outcome_status(outcome: &StepOutcome) -> StatusCode {
    match outcome {
        StepOutcome::Acked => StatusCode::NO_CONTENT,
        StepOutcome::Retry(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The `Retry-After` of every 503 a stage answers, in seconds. Cloud Tasks honours it for a
/// task's next attempt ("Cloud Tasks will … consider the Retry-After header", HttpRequest,
/// google/cloud/tasks/v2/target.proto); Pub/Sub ignores it and uses the subscription's
/// backoff.
pub const RETRY_AFTER_SECS: u64 = 10;

impl IntoResponse for StepOutcome {
    fn into_response(self) -> Response {
        let status = outcome_status(&self);
        match self {
            StepOutcome::Acked => status.into_response(),
            StepOutcome::Retry(why) => {
                tracing::warn!(error.message = %why, "step not finished; asking for redelivery");
                with_retry_after((status, why.to_string()).into_response())
            }
        }
    }
}

/// A panic in a handler answers 500 (Pub/Sub redelivers) instead of killing the process.
pub fn on_panic(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(error.message = %what, "handler panicked; answering 500 so Pub/Sub redelivers");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

#[cfg(test)]
mod tests;
