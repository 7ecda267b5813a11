//! The watch stage: follow the operation, restart transient failures, announce the end.

use std::time::Duration;

use chrono::Utc;
use google_cloud_gax::error::rpc::Code;

use super::announce::Ending;
use super::{Delivery, Pipeline, StepOutcome};
use crate::clients::vertex::OperationState;
use crate::contract::Rejection;
use crate::contract::dead_letter::FailedStage;
use crate::contract::watch::Watch;
use crate::domain::{CopyRequest, Defaults, OperationName};
use crate::http::envelope::PushMessage;
use crate::retry::{Failure, retry_transient};

/// A watch delivery, parsed.
struct Watched {
    req: CopyRequest,
    operation: OperationName,
    watch: Watch,
}

fn parse_watch(msg: &PushMessage, defaults: &Defaults) -> Result<Watched, Rejection> {
    // The data is the normalised request: only the callback policy of the defaults applies.
    let req = CopyRequest::parse(&msg.data, defaults)?;
    let watch = Watch::parse(&msg.attributes, msg.publish_time.as_deref())?;
    let operation = OperationName::parse(&watch.operation)?;
    Ok(Watched {
        req,
        operation,
        watch,
    })
}

impl Pipeline {
    /// Handles one `copy-operations` delivery.
    ///
    /// Polls the operation for up to `WATCH_HOLD` inside the request, then:
    /// 1. still running → 429 (Pub/Sub's retry policy is the polling clock);
    /// 2. running past `COPY_MAX_DURATION` → `failed` DEADLINE_EXCEEDED + dead letter;
    /// 3. succeeded → `succeeded` event;
    /// 4. ended with a transient error and attempts left → start a new copy, publish a new
    ///    watch message with `attempt + 1`;
    /// 5. otherwise → `failed` + dead letter.
    ///
    /// On SIGTERM a held delivery stops polling at once and answers 429.
    pub async fn watch_stage(&self, msg: &PushMessage) -> StepOutcome {
        let d = Delivery {
            msg,
            stage: FailedStage::Operation,
        };
        let w = match parse_watch(msg, &self.settings.defaults) {
            Ok(w) => w,
            Err(why) => return self.reject(&d, why).await,
        };
        let span = tracing::Span::current();
        span.record("request_id", w.req.request_id.as_str());
        span.record("operation", w.operation.as_str());

        let started = tokio::time::Instant::now();
        let mut interval = self.settings.poll_initial;
        let mut shutdown = self.shutdown.clone();
        loop {
            let age = (Utc::now() - w.watch.accepted_at)
                .to_std()
                .unwrap_or_default();
            if age > self.settings.max_duration {
                let f = Failure::new(
                    Code::DeadlineExceeded,
                    format!(
                        "operation {} still running after {}s; COPY_MAX_DURATION is {}s",
                        w.operation,
                        age.as_secs(),
                        self.settings.max_duration.as_secs()
                    ),
                );
                return self.end_failed(&d, &w, &f).await;
            }
            let state =
                retry_transient("get_operation", || self.vertex.get_operation(&w.operation)).await;
            if !matches!(state, Ok(OperationState::Running)) {
                self.in_flight.forget(&w.operation);
            }
            match state {
                Ok(OperationState::Running) => {}
                Ok(OperationState::Succeeded(m)) => {
                    let mut end = Ending::succeeded(m.model, m.version_id, w.watch.accepted_at);
                    end.operation = Some(w.operation.to_string());
                    end.attempts = w.watch.attempt;
                    return self.announce(&d, &w.req, end).await;
                }
                Ok(OperationState::Failed(f)) => return self.operation_failed(&d, &w, f).await,
                Err(f) if f.is_transient() => return StepOutcome::Retry(f.into()),
                Err(f) => return self.end_failed(&d, &w, &f).await,
            }
            let left = self.settings.watch_hold.saturating_sub(started.elapsed());
            if left.is_zero() || *shutdown.borrow() {
                return StepOutcome::NotYet;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval.min(left)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return StepOutcome::NotYet,
            }
            interval = next_interval(interval, self.settings.poll_max);
        }
    }

    async fn operation_failed(&self, d: &Delivery<'_>, w: &Watched, f: Failure) -> StepOutcome {
        if f.code == Code::AlreadyExists {
            return self.resolve_existing(d, &w.req, w.watch.accepted_at).await;
        }
        if !f.is_transient() || w.watch.attempt >= self.settings.max_attempts {
            return self.end_failed(d, w, &f).await;
        }
        tracing::warn!(error.message = %f, attempt = w.watch.attempt, "operation failed transiently; restarting the copy");
        match retry_transient("copy_model", || self.vertex.start_copy(&w.req)).await {
            Ok(op) => {
                let next = Watch {
                    operation: op.to_string(),
                    attempt: w.watch.attempt + 1,
                    accepted_at: w.watch.accepted_at,
                };
                self.publish_watch(d, &w.req, next, true).await
            }
            Err(e) if e.code == Code::AlreadyExists => {
                self.resolve_existing(d, &w.req, w.watch.accepted_at).await
            }
            Err(e) if e.is_transient() => StepOutcome::Retry(e.into()),
            Err(e) => self.end_failed(d, w, &e).await,
        }
    }

    async fn end_failed(&self, d: &Delivery<'_>, w: &Watched, f: &Failure) -> StepOutcome {
        let mut end = Ending::failed(f, w.watch.accepted_at);
        end.operation = Some(w.operation.to_string());
        end.attempts = w.watch.attempt;
        self.announce(d, &w.req, end).await
    }
}

/// The poll interval grows by 1.3× up to `max`: a 5 s copy is seen within about a second
/// of finishing, and a 60 s copy costs about a dozen calls.
pub fn next_interval(current: Duration, max: Duration) -> Duration {
    current.mul_f64(1.3).min(max)
}
