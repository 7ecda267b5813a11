//! Retry classification and the in-request backoff (DESIGN.md §4, layer 2).
//!
//! Which errors are transient is decided here and only here: the stages ask
//! [`Failure::class`] (or [`Failure::is_transient`]) and never match on codes themselves.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;

/// A failed call to Vertex AI, reduced to what the stages decide on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} {message}", code.name())]
pub struct Failure {
    /// The google.rpc code (transport errors count as UNAVAILABLE).
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Transient failures are retried in-request, then by Pub/Sub redelivery; the rest are
    /// permanent and end the copy as `failed`.
    pub fn is_transient(&self) -> bool {
        is_transient_code(self.code)
    }
}

/// What a failure means for the copy: the one question the stages ask of a failure, matched
/// exhaustively in `pipeline::decide` (docs/DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// ALREADY_EXISTS: the destination holds something; reading it decides whose it is.
    AlreadyExists,
    /// RESOURCE_EXHAUSTED: a quota the project shares; slow down rather than retry at once.
    QuotaExhausted,
    /// Worth trying again, in-request and then by redelivery.
    Transient,
    /// Trying again gives the same answer: the copy ends `failed`.
    Permanent,
}

impl Failure {
    /// This failure's [`FailureClass`].
    pub fn class(&self) -> FailureClass {
        match self.code {
            Code::AlreadyExists => FailureClass::AlreadyExists,
            Code::ResourceExhausted => FailureClass::QuotaExhausted,
            c if is_transient_code(c) => FailureClass::Transient,
            _ => FailureClass::Permanent,
        }
    }
}

/// UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL, ABORTED, DEADLINE_EXCEEDED (and UNKNOWN, which
/// gRPC uses for broken streams) are transient; everything else is permanent.
pub fn is_transient_code(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::Internal
            | Code::Aborted
            | Code::DeadlineExceeded
            | Code::Unknown
    )
}

/// Maps a client error onto a google.rpc code.
pub fn classify(e: &GaxError) -> Failure {
    if let Some(status) = e.status() {
        return Failure::new(status.code, status.message.clone());
    }
    if e.is_timeout() {
        return Failure::new(Code::DeadlineExceeded, e.to_string());
    }
    if let Some(http) = e.http_status_code() {
        return Failure::new(code_for_http(http), e.to_string());
    }
    if e.is_io() || e.is_connect() || e.is_transport() || e.is_transient_and_before_rpc() {
        return Failure::new(Code::Unavailable, e.to_string());
    }
    if e.is_authentication() {
        return Failure::new(Code::Unauthenticated, e.to_string());
    }
    // Deserialization and binding errors: the request or answer is malformed and trying
    // again gives the same result.
    Failure::new(Code::InvalidArgument, e.to_string())
}

/// The HTTP mapping of google.rpc codes, for answers that carry no status body.
pub fn code_for_http(status: u16) -> Code {
    match status {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::AlreadyExists,
        412 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        500..=599 => Code::Internal,
        _ => Code::Unknown,
    }
}

/// The in-request backoff: exponential with jitter, about 15 s of waiting in all, so a
/// stage still answers well inside the 60 s ack deadline of the request subscription.
pub fn in_request_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(8)
        .with_total_delay(Some(Duration::from_secs(15)))
}

/// Runs `call`, retrying transient failures with [`in_request_backoff`].
pub async fn retry_transient<T, F, Fut>(what: &'static str, call: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    call.retry(in_request_backoff())
        // RESOURCE_EXHAUSTED is a quota the project shares: retrying in-request spends more
        // of it. The budget (`pipeline::budget`) slows the instance down instead.
        .when(|f: &Failure| f.is_transient() && f.code != Code::ResourceExhausted)
        .notify(|e, after| {
            tracing::warn!(
                call = what,
                error.message = %e,
                retry_in_ms = after.as_millis() as u64,
                "transient Vertex AI failure; retrying in-request"
            );
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn transient_and_permanent_codes_follow_the_design_table() {
        let transient = [
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::Internal,
            Code::Aborted,
            Code::DeadlineExceeded,
        ];
        let permanent = [
            Code::NotFound,
            Code::PermissionDenied,
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::AlreadyExists,
        ];
        for c in transient {
            assert!(is_transient_code(c), "{c:?} should be transient");
        }
        for c in permanent {
            assert!(!is_transient_code(c), "{c:?} should be permanent");
        }
    }

    #[test]
    fn every_code_has_one_failure_class() {
        use FailureClass::*;
        let table = [
            (Code::AlreadyExists, AlreadyExists),
            (Code::ResourceExhausted, QuotaExhausted),
            (Code::Unavailable, Transient),
            (Code::Internal, Transient),
            (Code::Aborted, Transient),
            (Code::DeadlineExceeded, Transient),
            (Code::Unknown, Transient),
            (Code::NotFound, Permanent),
            (Code::PermissionDenied, Permanent),
            (Code::InvalidArgument, Permanent),
            (Code::FailedPrecondition, Permanent),
        ];
        for (code, class) in table {
            assert_eq!(Failure::new(code, "x").class(), class, "{code:?}");
        }
    }

    #[test]
    fn http_statuses_map_to_rpc_codes() {
        assert_eq!(code_for_http(503), Code::Unavailable);
        assert_eq!(code_for_http(429), Code::ResourceExhausted);
        assert_eq!(code_for_http(404), Code::NotFound);
        assert_eq!(code_for_http(502), Code::Internal);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let calls = AtomicU32::new(0);
        let r = retry_transient("t", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(Failure::new(Code::Unavailable, "down"))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r, Ok(2));

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry_transient("t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Failure::new(Code::NotFound, "gone"))
        })
        .await;
        assert_eq!(r.unwrap_err().code, Code::NotFound);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn in_request_retries_give_up_within_about_fifteen_seconds() {
        let start = tokio::time::Instant::now();
        let r: Result<(), _> = retry_transient("t", || async {
            Err(Failure::new(Code::Unavailable, "down"))
        })
        .await;
        assert_eq!(r.unwrap_err().code, Code::Unavailable);
        let waited = start.elapsed();
        assert!(waited <= Duration::from_secs(20), "waited {waited:?}");
        assert!(waited >= Duration::from_secs(3), "waited {waited:?}");
    }
}
