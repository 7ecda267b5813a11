//! The request stage: validate, start the copy, publish the watch message, ack.

use chrono::{DateTime, Utc};
use google_cloud_gax::error::rpc::Code;
use tokio::time::Instant;

use super::announce::{Ending, WatchNote};
use super::{Delivery, Pipeline, RetryReason, StepOutcome};
use crate::clients::vertex::OperationState;
use crate::contract::dead_letter::FailedStage;
use crate::contract::watch::Watch;
use crate::domain::{CopyRequest, Existing, OperationName};
use crate::contract::push::PushMessage;
use crate::retry::{Failure, retry_transient};

/// How long a delivery may wait for a CopyModel slot before the copy is handed on as a
/// pending watch (well inside the 45 s request budget).
pub const ADMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How a copy start was allowed to call CopyModel, and so what a quota refusal means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// Ask this instance's budget for a slot first; none soon → a pending watch.
    Budget,
    /// The caller holds a budget slot already (a pending watch that waited for one).
    Admitted,
    /// The copy-start queue paced it (`COPY_START_QUEUE`): a quota refusal is answered
    /// non-2xx and the queue tries again after its backoff, still at its rate.
    Queue,
}

/// One copy start: when the request was accepted, which attempt, how it was admitted, and
/// when the delivery must be answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Start {
    pub accepted_at: DateTime<Utc>,
    pub attempt: u32,
    pub admission: Admission,
    pub answer_by: Instant,
}

impl Pipeline {
    /// Handles one `copy-requests` delivery.
    ///
    /// 1. Invalid request → `rejected` event + dead letter, ack.
    /// 2. A `parent_model` destination that already holds a version copied from our source
    ///    → `succeeded` (CopyModel has no idempotency key, and a new version is not a conflict).
    /// 3. CopyModel started → watch message published → ack.
    /// 4. ALREADY_EXISTS → resolved by reading the destination (see `resolve_existing`).
    /// 5. Permanent failure → `failed` + dead letter; transient after in-request retries → 503.
    ///
    /// The whole step answers within `request_budget` (45 s): past it, 503 and redelivery.
    pub async fn request_stage(&self, msg: &PushMessage) -> StepOutcome {
        let budget = self.settings.request_budget;
        match tokio::time::timeout(budget, self.request_step(msg)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => StepOutcome::Retry(RetryReason::OutOfTime {
                stage: "request",
                budget,
            }),
        }
    }

    async fn request_step(&self, msg: &PushMessage) -> StepOutcome {
        let d = Delivery {
            msg,
            stage: FailedStage::Request,
        };
        let req = match CopyRequest::parse(&msg.data, &self.settings.defaults) {
            Ok(r) => r,
            Err(why) => return self.reject(&d, why).await,
        };
        tracing::Span::current().record("request_id", req.request_id.as_str());
        let accepted_at = Utc::now();
        if self.queue.is_some() {
            let first = Watch {
                operation: String::new(),
                attempt: 1,
                accepted_at,
            };
            return self.queue_start(&d, &req, msg.data.clone(), first).await;
        }
        let start = Start {
            accepted_at,
            attempt: 1,
            admission: Admission::Budget,
            answer_by: Instant::now() + self.settings.request_budget,
        };
        if req.destination.lists_versions() {
            return self.copy_into_parent(&d, &req, start).await;
        }
        self.start_copy(&d, &req, start, &mut None).await
    }

    /// A `parent_model` destination: CopyModel adds a version every time it is called, so
    /// look before starting.
    ///
    /// 1. The parent already holds a version copied from our source → `succeeded`.
    /// 2. This process started the same copy and it has not failed → watch that operation.
    /// 3. Otherwise start the copy and record its operation for (2).
    ///
    pub(super) async fn copy_into_parent(
        &self,
        d: &Delivery<'_>,
        req: &CopyRequest,
        start: Start,
    ) -> StepOutcome {
        let accepted_at = start.accepted_at;
        let found = async {
            let source = self.source_identity(req).await?;
            let existing = self.find_existing_copy_of(req, &source).await?;
            Ok::<_, Failure>((source, existing))
        }
        .await;
        let source = match found {
            Ok((_, Existing::Ours(m, v))) => {
                return self
                    .announce(d, req, Ending::succeeded(m, v, accepted_at))
                    .await;
            }
            Ok((source, _)) => source,
            Err(f) if f.code == Code::ResourceExhausted => {
                return self.defer(d, req, start, f).await;
            }
            Err(f) if f.is_transient() => return StepOutcome::Retry(f.into()),
            Err(f) => {
                return self.announce(d, req, Ending::failed(&f, accepted_at)).await;
            }
        };
        let parent = self.numbers.canonical(&req.destination.model());
        let slot = self.in_flight.slot(&source, &parent);
        let mut running = slot.lock().await;
        if let Some(op) = running.clone() {
            match retry_transient("get_operation", || self.vertex.get_operation(&op)).await {
                Err(f) if f.is_transient() => return StepOutcome::Retry(f.into()),
                // Ended in failure (or gone): a new copy is what the request asks for.
                Ok(OperationState::Failed(_)) | Err(_) => *running = None,
                Ok(OperationState::Running | OperationState::Succeeded(_)) => {
                    tracing::info!(operation = %op, "this copy is already running; watching its operation");
                    let watch = Watch {
                        operation: op.to_string(),
                        attempt: start.attempt,
                        accepted_at,
                    };
                    return self.publish_watch(d, req, watch, WatchNote::Watching).await;
                }
            }
        }
        self.start_copy(d, req, start, &mut running).await
    }

    /// CopyModel, then the watch message; ALREADY_EXISTS is resolved by reading the
    /// destination.
    ///
    /// A started operation is recorded in `running` before the watch is published, so that a
    /// redelivery (the publish not confirmed, or the budget spent) watches this copy instead
    /// of starting another one.
    pub(super) async fn start_copy(
        &self,
        d: &Delivery<'_>,
        req: &CopyRequest,
        start: Start,
        running: &mut Option<OperationName>,
    ) -> StepOutcome {
        let accepted_at = start.accepted_at;
        let region = &req.destination.location;
        let wait = self.budget.scaled(ADMIT_WAIT);
        let project = req.destination.project.as_str();
        if start.admission == Admission::Budget
            && !self.budget.copy_within(project, region, wait).await
        {
            let why = format!(
                "no CopyModel slot in {region} within {:.1} s (VERTEX_COPY_RATE)",
                wait.as_secs_f64()
            );
            return self
                .defer(d, req, start, Failure::new(Code::ResourceExhausted, why))
                .await;
        }
        let started = if req.destination.lists_versions() {
            match self.copy_into_parent_once(req, start).await {
                Ok(started) => started,
                Err(outcome) => return outcome,
            }
        } else {
            retry_transient("copy_model", || self.vertex.start_copy(req)).await
        };
        match started {
            Ok(op) => {
                tracing::Span::current().record("operation", op.as_str());
                self.numbers.learn(&req.destination.project, op.as_str());
                let watch = Watch {
                    operation: op.to_string(),
                    attempt: start.attempt,
                    accepted_at,
                };
                *running = Some(op);
                self.publish_watch(d, req, watch, WatchNote::Started).await
            }
            Err(f) if f.code == Code::AlreadyExists => {
                self.resolve_existing(d, req, accepted_at, start.attempt)
                    .await
            }
            Err(f) if f.code == Code::ResourceExhausted => self.defer(d, req, start, f).await,
            Err(f) if f.is_transient() => StepOutcome::Retry(f.into()),
            Err(f) => self.announce(d, req, Ending::failed(&f, accepted_at)).await,
        }
    }

    /// CopyModel into a parent, called once: it adds a version with every call and has no
    /// idempotency key, so a call that may have reached Vertex AI (a timeout, a dropped
    /// connection, UNAVAILABLE, INTERNAL) is never repeated in-request. It is answered 503, and
    /// the redelivery looks for the version before calling again ([`Self::copy_into_parent`]).
    /// Nor is it started with less time left than one call may take, so the stage's deadline
    /// never cancels it mid-call.
    async fn copy_into_parent_once(
        &self,
        req: &CopyRequest,
        start: Start,
    ) -> Result<Result<OperationName, Failure>, StepOutcome> {
        let left = start.answer_by.saturating_duration_since(Instant::now());
        if left < self.settings.vertex_call_timeout {
            let f = Failure::new(
                Code::DeadlineExceeded,
                format!(
                    "{:.0} s left in this delivery, less than one CopyModel call may take; not started",
                    left.as_secs_f64()
                ),
            );
            return Err(StepOutcome::Retry(f.into()));
        }
        match self.vertex.start_copy(req).await {
            Err(f) if f.is_transient() && f.code != Code::ResourceExhausted => {
                tracing::warn!(error.message = %f, "CopyModel into a parent failed ambiguously; not repeated, the redelivery looks for the version first");
                Err(StepOutcome::Retry(f.into()))
            }
            other => Ok(other),
        }
    }

    /// The copy cannot start yet (this instance's budget, or Vertex AI's quota): hand it on
    /// as a pending watch, which the watch stage starts when the budget allows. The request
    /// is acked, so waiting never spends the request subscription's delivery attempts (and
    /// never dead-letters); `COPY_MAX_DURATION` still bounds it from `accepted_at`.
    ///
    /// A start paced by the copy-start queue is not deferred: its answer is non-2xx, and the
    /// queue tries again after its backoff, still within its rate.
    async fn defer(
        &self,
        d: &Delivery<'_>,
        req: &CopyRequest,
        start: Start,
        why: Failure,
    ) -> StepOutcome {
        if start.admission == Admission::Queue {
            return StepOutcome::Retry(why.into());
        }
        tracing::info!(
            reason = why.message,
            "copy not started yet; handed on as a pending watch"
        );
        self.pending_watch(d, req, start.accepted_at, start.attempt)
            .await
    }
}
