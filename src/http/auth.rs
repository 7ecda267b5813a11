//! Who may call: the seam that authenticates pushes and direct callers, applied as a
//! middleware before any handler runs and before a byte of the body is read (DESIGN.md §4:
//! 401 / 403 before any work).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::HttpError;

/// The outcome of checking who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    Allowed,
    /// Missing or invalid token: 401.
    Unauthenticated(String),
    /// Valid token from an account not allowed: 403.
    Forbidden(String),
    /// The check itself could not run (JWKS unreachable): 503 so the push is redelivered.
    Unavailable(String),
}

impl AuthDecision {
    /// `Ok` when allowed; otherwise the answer of the status table.
    pub fn into_result(self) -> Result<(), HttpError> {
        match self {
            AuthDecision::Allowed => Ok(()),
            AuthDecision::Unauthenticated(m) => Err(HttpError::Unauthenticated(m)),
            AuthDecision::Forbidden(m) => Err(HttpError::Forbidden(m)),
            AuthDecision::Unavailable(m) => Err(HttpError::AuthUnavailable(m)),
        }
    }
}

/// Checks the `Authorization` header of a request. The seam for the OIDC verifier;
/// [`NoAuth`] is `PUSH_AUTH=none`.
#[async_trait::async_trait]
pub trait PushAuth: Send + Sync {
    async fn check(&self, authorization: Option<&str>) -> AuthDecision;
}

/// `PUSH_AUTH=none`: every push is accepted (logged as a warning at start).
pub struct NoAuth;

#[async_trait::async_trait]
impl PushAuth for NoAuth {
    async fn check(&self, _authorization: Option<&str>) -> AuthDecision {
        AuthDecision::Allowed
    }
}

/// How a refusal is written: plain text for Pub/Sub, JSON for direct callers.
#[derive(Clone, Copy)]
pub enum Answer {
    Text,
    Json,
}

/// The header that Cloud Run's IAM check reads in preference to `Authorization`, so that a
/// caller can keep `Authorization` for the application
/// (cloud.google.com/run/docs/authenticating/service-to-service).
pub const SERVERLESS_AUTHORIZATION: &str = "x-serverless-authorization";

/// The middleware: runs `auth` on the caller's token, and the route only when it allows.
///
/// The token is read where Cloud Run reads it: `X-Serverless-Authorization` when present,
/// else `Authorization`. Behind Cloud Run that is the header whose token Cloud Run checked
/// (and whose signature it removed); the other one reaches the container untouched, so a
/// forged token in it must never be the one that counts.
pub async fn require(
    State((auth, answer)): State<(Arc<dyn PushAuth>, Answer)>,
    req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let header = headers
        .get(SERVERLESS_AUTHORIZATION)
        .or_else(|| headers.get(axum::http::header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok());
    match auth.check(header).await.into_result() {
        Ok(()) => next.run(req).await,
        Err(e) => match answer {
            Answer::Text => e.into_response(),
            Answer::Json => e.into_json_response(),
        },
    }
}
