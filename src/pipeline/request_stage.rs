//! The request stage: validate, start the copy, publish the watch message, ack.

use chrono::{DateTime, Utc};
use google_cloud_gax::error::rpc::Code;
use tokio::time::Instant;

use super::announce::{Ending, WatchNote};
pub(super) use super::decide::Admission;
use super::decide::{self, AfterStart, OnQuota, StartSite};
use super::{Delivery, Job, Pipeline, RetryReason, StepOutcome};
use crate::clients::vertex::OperationState;
use crate::contract::dead_letter::FailedStage;
use crate::contract::push::PushMessage;
use crate::contract::watch::Watch;
use crate::domain::{CopyRequest, Existing, OperationName};
use crate::retry::{Failure, FailureClass, retry_transient};

/// How long a delivery may wait for a CopyModel slot before the copy is handed on as a
/// pending watch (well inside the 45 s request budget).
pub const ADMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One copy start: when the request was accepted, which attempt, where it starts (and so
/// what a refusal means), and when the delivery must be answered.
#[derive(Debug, Clone)]
pub(super) struct Start {
    pub accepted_at: DateTime<Utc>,
    /// The attempt the start belongs to (a restart's watch carries the next one).
    pub attempt: u32,
    pub site: StartSite,
    pub answer_by: Instant,
}

impl Start {
    /// The attempt of the watch a started copy hands on.
    fn next_attempt(&self) -> u32 {
        match self.site {
            StartSite::Restart(_) => self.attempt + 1,
            _ => self.attempt,
        }
    }

    /// How a permanent failure of this start ends the copy: a request's first start
    /// counts as one attempt; a watch's start keeps its attempt and operation.
    fn ending(&self, f: &Failure) -> Ending {
        let mut end = Ending::failed(f, self.accepted_at);
        match &self.site {
            StartSite::Request(_) => {}
            StartSite::PendingWatch => end.attempts = self.attempt,
            StartSite::Restart(op) => {
                end.attempts = self.attempt;
                end.operation = Some(op.to_string());
            }
        }
        end
    }
}

/// The answer of a step that may still be waiting for Vertex AI.
#[derive(Debug)]
pub(super) enum Poll {
    /// Nothing decided yet: the copy still runs, or the destination is not readable.
    Running,
    /// Decided, and the delivery's answer is this.
    Done(StepOutcome),
}

impl Poll {
    /// The answer of a start whose site never keeps reading (see `decide::after_start`).
    fn answered(self) -> StepOutcome {
        match self {
            Poll::Done(outcome) => outcome,
            Poll::Running => unreachable!("only a pending watch keeps reading after a start"),
        }
    }
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
        let job = Job { d: &d, req: &req };
        let accepted_at = Utc::now();
        if self.queue.is_some() {
            let first = Watch {
                operation: None,
                attempt: 1,
                accepted_at,
            };
            return self.queue_start(job, msg.data.clone(), first).await;
        }
        let start = Start {
            accepted_at,
            attempt: 1,
            site: StartSite::Request(Admission::Budget),
            answer_by: Instant::now() + self.settings.request_budget,
        };
        self.first_start(job, start).await
    }

    /// A `parent_model` destination: CopyModel adds a version every time it is called, so
    /// look before starting.
    ///
    /// 1. The parent already holds a version copied from our source → `succeeded`.
    /// 2. This process started the same copy and it has not failed → watch that operation.
    /// 3. Otherwise start the copy and record its operation for (2).
    ///
    pub(super) async fn copy_into_parent(&self, job: Job<'_>, start: Start) -> StepOutcome {
        let req = job.req;
        let accepted_at = start.accepted_at;
        let found = async {
            let source = self.source_identity(req).await?;
            let existing = self.find_existing_copy_of(req, &source).await?;
            Ok::<_, Failure>((source, existing))
        }
        .await;
        let source = match found {
            Ok((_, Existing::Ours(m))) => {
                return self.announce(job, Ending::succeeded(m, accepted_at)).await;
            }
            Ok((source, Existing::NotYet | Existing::Conflict(_))) => source,
            Err(f) => match f.class() {
                FailureClass::QuotaExhausted => return self.on_quota(job, &start, f).await,
                FailureClass::Transient => return StepOutcome::Retry(f.into()),
                FailureClass::AlreadyExists | FailureClass::Permanent => {
                    return self.announce(job, start.ending(&f)).await;
                }
            },
        };
        let parent = self.numbers.canonical(&req.destination.model());
        let slot = self.in_flight.slot(&source, &parent);
        let mut running = slot.lock().await;
        if let Some(op) = running.clone() {
            let polled = retry_transient("get_operation", || self.vertex.get_operation(&op)).await;
            match polled.as_ref().map_err(Failure::class) {
                Err(FailureClass::Transient | FailureClass::QuotaExhausted) => {
                    return StepOutcome::Retry(polled.unwrap_err().into());
                }
                // Ended in failure (or gone): a new copy is what the request asks for.
                Ok(OperationState::Failed(_))
                | Err(FailureClass::AlreadyExists | FailureClass::Permanent) => *running = None,
                Ok(OperationState::Running | OperationState::Succeeded(_)) => {
                    tracing::info!(operation = %op, "this copy is already running; watching its operation");
                    let watch = Watch {
                        operation: Some(op.to_string()),
                        attempt: start.attempt,
                        accepted_at,
                    };
                    return self.publish_watch(job, watch, WatchNote::Watching).await;
                }
            }
        }
        self.start_copy(job, start, &mut running).await.answered()
    }

    /// The first start of a request: a `parent_model` destination looks first.
    pub(super) async fn first_start(&self, job: Job<'_>, start: Start) -> StepOutcome {
        let req = job.req;
        if req.destination.lists_versions() {
            return self.copy_into_parent(job, start).await;
        }
        self.start_copy(job, start, &mut None).await.answered()
    }

    /// CopyModel, then the watch message; ALREADY_EXISTS is resolved by reading the
    /// destination.
    ///
    /// A started operation is recorded in `running` before the watch is published, so that a
    /// redelivery (the publish not confirmed, or the budget spent) watches this copy instead
    /// of starting another one.
    pub(super) async fn start_copy(
        &self,
        job: Job<'_>,
        start: Start,
        running: &mut Option<OperationName>,
    ) -> Poll {
        let req = job.req;
        if start.site == StartSite::Request(Admission::Budget)
            && let Some(why) = self.no_copy_slot(req).await
        {
            return Poll::Done(self.on_quota(job, &start, why).await);
        }
        let started = if req.destination.lists_versions() {
            match self.copy_into_parent_once(req, &start).await {
                Ok(started) => started,
                Err(outcome) => return Poll::Done(outcome),
            }
        } else {
            retry_transient("copy_model", || self.vertex.start_copy(req)).await
        };
        Poll::Done(match decide::after_start(started, &start.site) {
            AfterStart::Watch(op) => {
                tracing::Span::current().record("operation", op.as_str());
                self.numbers.learn(&req.destination.project, op.as_str());
                let watch = Watch {
                    operation: Some(op.to_string()),
                    attempt: start.next_attempt(),
                    accepted_at: start.accepted_at,
                };
                *running = Some(op);
                self.publish_watch(job, watch, WatchNote::Started).await
            }
            AfterStart::Resolve => {
                self.resolve_existing(job, start.accepted_at, start.attempt)
                    .await
            }
            AfterStart::KeepReading => return Poll::Running,
            AfterStart::Quota(_, f) => self.on_quota(job, &start, f).await,
            AfterStart::Retry(f) => StepOutcome::Retry(f.into()),
            AfterStart::Fail(f) => self.announce(job, start.ending(&f)).await,
        })
    }

    /// Asks this instance's budget for a CopyModel slot; the refusal when none comes soon.
    async fn no_copy_slot(&self, req: &CopyRequest) -> Option<Failure> {
        let region = &req.destination.location;
        let wait = self.budget.scaled(ADMIT_WAIT);
        let project = req.destination.project.as_str();
        if self.budget.copy_within(project, region, wait).await {
            return None;
        }
        let why = format!(
            "no CopyModel slot in {region} within {:.1} s (VERTEX_COPY_RATE)",
            wait.as_secs_f64()
        );
        Some(Failure::new(Code::ResourceExhausted, why))
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
        start: &Start,
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
            Err(f) if f.class() == FailureClass::Transient => {
                tracing::warn!(error.message = %f, "CopyModel into a parent failed ambiguously; not repeated, the redelivery looks for the version first");
                Err(StepOutcome::Retry(f.into()))
            }
            other => Ok(other),
        }
    }

    /// A quota refusal (this instance's budget, or Vertex AI's quota), carried out as
    /// `decide::on_quota` says for this start's site.
    ///
    /// - Defer: the copy is handed on as a pending watch, which the watch stage starts when
    ///   the budget allows. The request is acked, so waiting never spends the request
    ///   subscription's delivery attempts (and never dead-letters); `COPY_MAX_DURATION` still
    ///   bounds it from `accepted_at`.
    /// - Retry: a start paced by the copy-start queue (or a restart) answers non-2xx, and the
    ///   sender tries again after its backoff, still within its rate.
    /// - ContinueAsNew: a pending watch hands the same pending watch on.
    async fn on_quota(&self, job: Job<'_>, start: &Start, why: Failure) -> StepOutcome {
        let note = match decide::on_quota(&start.site) {
            OnQuota::Retry => return StepOutcome::Retry(why.into()),
            OnQuota::Defer => WatchNote::Pending,
            OnQuota::ContinueAsNew => WatchNote::Continued,
        };
        tracing::info!(
            reason = why.message,
            "copy not started yet; handed on as a pending watch"
        );
        let pending = Watch {
            operation: None,
            attempt: start.attempt,
            accepted_at: start.accepted_at,
        };
        self.publish_watch(job, pending, note).await
    }
}
