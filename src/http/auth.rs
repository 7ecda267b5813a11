//! Who may call: the seam that authenticates pushes and direct callers, applied as a
//! middleware before any handler runs and before a byte of the body is read (DESIGN.md §4:
//! 401 / 403 before any work).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
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
    /// The check itself could not run (JWKS unreachable): a retry is asked for, so the push is redelivered.
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

    /// Whether this checks tokens at all ([`NoAuth`] does not, and lets every request in).
    fn verifies(&self) -> bool {
        true
    }
}

/// `PUSH_AUTH=none`: every push is accepted (logged as a warning at start).
pub struct NoAuth;

#[async_trait::async_trait]
impl PushAuth for NoAuth {
    async fn check(&self, _authorization: Option<&str>) -> AuthDecision {
        AuthDecision::Allowed
    }

    fn verifies(&self) -> bool {
        false
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
    let decision = match token_header(req.headers()) {
        Ok(header) => auth.check(header).await,
        Err(refusal) if auth.verifies() => refusal,
        Err(_) => AuthDecision::Allowed,
    };
    match decision.into_result() {
        Ok(()) => next.run(req).await,
        Err(e) => match answer {
            Answer::Text => e.into_response(),
            Answer::Json => e.into_json_response(),
        },
    }
}

/// The value of the header that carries the caller's token, or a 401 when either token
/// header is given more than once: which one counts would be a guess, and a front end may
/// have checked another one than the worker reads (the probe of issue 28: a doubled header
/// was read by its first value).
fn token_header(headers: &HeaderMap) -> Result<Option<&str>, AuthDecision> {
    for name in [SERVERLESS_AUTHORIZATION, header::AUTHORIZATION.as_str()] {
        if headers.get_all(name).iter().nth(1).is_some() {
            return Err(AuthDecision::Unauthenticated(format!(
                "the {name} header is given more than once; send one token"
            )));
        }
    }
    Ok(headers
        .get(SERVERLESS_AUTHORIZATION)
        .or_else(|| headers.get(header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe: a doubled `Authorization` or `X-Serverless-Authorization` header was read
    /// by its first value.
    #[test]
    fn a_doubled_token_header_is_refused_and_a_single_one_is_read() {
        let mut h = HeaderMap::new();
        assert_eq!(token_header(&h), Ok(None));
        h.insert(header::AUTHORIZATION, "Bearer a".parse().unwrap());
        assert_eq!(token_header(&h), Ok(Some("Bearer a")));
        h.insert(SERVERLESS_AUTHORIZATION, "Bearer s".parse().unwrap());
        assert_eq!(
            token_header(&h),
            Ok(Some("Bearer s")),
            "Cloud Run's header wins"
        );
        for name in [SERVERLESS_AUTHORIZATION, "authorization"] {
            let mut twice = h.clone();
            twice.append(name, "Bearer b".parse().unwrap());
            match token_header(&twice) {
                Err(AuthDecision::Unauthenticated(m)) => assert!(m.contains(name), "{m}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
