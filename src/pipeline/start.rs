//! The one start of a copy (DESIGN.md §1): every CopyModel call goes through here, and only
//! the start stage calls it, at the copy-start queue's rate. A `parent_model` destination
//! looks first (CopyModel adds a version with every call); ALREADY_EXISTS is resolved by
//! reading the destination; a started copy hands on its first poll.

use chrono::{DateTime, Utc};
use google_cloud_gax::error::rpc::Code;
use tokio::time::Instant;

use super::announce::Ending;
use super::chain::{PollPlace, StartPlace};
use super::decide::{self, AfterStart};
use super::{Job, Pipeline, RetryReason, StepOutcome};
use crate::clients::vertex::OperationState;
use crate::contract::Rejection;
use crate::domain::{
    CopyRequest, Existing, KmsKeyName, OperationName, SourceFacts, check_copy_limits,
};
use crate::retry::{Failure, FailureClass, retry_transient};
use crate::telemetry::events::{CopyStarted, CountedEvent as _, VertexQuotaExhausted};

/// One copy start: where it stands in its chain, and when the dispatch must be answered.
#[derive(Debug, Clone)]
pub(super) struct Start {
    pub place: StartPlace,
    pub answer_by: Instant,
    /// The key CopyModel encrypts the copy with, as [`Pipeline::within_copy_limits`] chose
    /// it; `None` until then, and for a copy under Google-managed encryption.
    pub key: Option<KmsKeyName>,
}

impl Start {
    /// How a permanent failure of this start ends the copy: it keeps its attempt, and a
    /// restart names the operation that failed before.
    fn ending(&self, f: &Failure) -> Ending {
        let mut end = Ending::failed(f, self.place.accepted_at);
        end.attempts = self.place.attempt;
        end.operation = self.place.previous_operation.clone();
        end
    }
}

impl Pipeline {
    /// Starts the copy: CopyModel's documented limits first, then a `parent_model`
    /// destination looks before it copies.
    pub(super) async fn first_start(&self, job: Job<'_>, mut start: Start) -> StepOutcome {
        match self.within_copy_limits(job.req).await {
            Ok(key) => start.key = key,
            Err(why) => {
                tracing::warn!(error.message = %why, "CopyModel would refuse or mis-encrypt this copy; rejected before it is started");
                return self.reject(job.d, why).await;
            }
        }
        if job.req.destination.lists_versions() {
            return self.copy_into_parent(job, start).await;
        }
        self.start_copy(job, start, &mut None).await
    }

    /// A `parent_model` destination: CopyModel adds a version every time it is called, so
    /// look before starting.
    ///
    /// 1. The parent already holds a version copied from our source → `succeeded`.
    /// 2. This process started the same copy and it has not failed → poll that operation.
    /// 3. Otherwise start the copy and record its operation for (2).
    async fn copy_into_parent(&self, job: Job<'_>, start: Start) -> StepOutcome {
        let req = job.req;
        let accepted_at = start.place.accepted_at;
        let found = async {
            let source = self.source_identity(req).await?;
            let existing = self.find_existing_copy_of(req, &source).await?;
            Ok::<_, Failure>((source, existing))
        }
        .await;
        let source = match found {
            Ok((_, Existing::Ours(m))) => {
                let mut end = Ending::succeeded(m, accepted_at);
                end.attempts = start.place.attempt;
                return self.announce(job, end).await;
            }
            Ok((source, Existing::NotYet | Existing::Conflict(_))) => source,
            Err(f) => match f.class() {
                FailureClass::QuotaExhausted => return self.on_quota(job, f),
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
                    tracing::info!(operation = %op, "this copy is already running; polling its operation");
                    // The first poll's name: if the chain exists, Cloud Tasks says so and
                    // nothing new is created.
                    return self.first_poll(job, &start, &op, Utc::now()).await;
                }
            }
        }
        self.start_copy(job, start, &mut running).await
    }

    /// CopyModel, then the first poll task; ALREADY_EXISTS is resolved by reading the
    /// destination.
    ///
    /// A started operation is recorded in `running` before the poll is created, so that a
    /// retried dispatch (the poll not created, or the budget spent) polls this copy instead of
    /// starting another one.
    async fn start_copy(
        &self,
        job: Job<'_>,
        start: Start,
        running: &mut Option<OperationName>,
    ) -> StepOutcome {
        let req = job.req;
        // The copy's age counts from the call, as Vertex AI's own clock does.
        let called_at = Utc::now();
        let started = if req.destination.lists_versions() {
            match self.copy_into_parent_once(req, &start).await {
                Ok(started) => started,
                Err(outcome) => return outcome,
            }
        } else {
            let key = start.key.as_ref();
            retry_transient("copy_model", || self.vertex.start_copy(req, key)).await
        };
        match decide::after_start(started) {
            AfterStart::Poll(op) => {
                tracing::Span::current().record("operation", op.as_str());
                self.numbers.learn(&req.destination.project, op.as_str());
                *running = Some(op.clone());
                self.first_poll(job, &start, &op, called_at).await
            }
            AfterStart::Resolve => self.resolve_existing(job, &start.place).await,
            AfterStart::Quota(f) => self.on_quota(job, f),
            AfterStart::Retry(f) => StepOutcome::Retry(f.into()),
            AfterStart::Fail(f) => self.announce(job, start.ending(&f)).await,
        }
    }

    /// Schedules the first poll of `op`, started at `started_at` (or found running), then
    /// answers 2xx.
    async fn first_poll(
        &self,
        job: Job<'_>,
        start: &Start,
        op: &OperationName,
        started_at: DateTime<Utc>,
    ) -> StepOutcome {
        let poll = PollPlace {
            operation: op,
            seq: 1,
            attempt: start.place.attempt,
            accepted_at: start.place.accepted_at,
            started_at,
            due: self.next_poll_after(std::time::Duration::ZERO),
        };
        match self.queue_poll(job, poll).await {
            // The first line is what Terraform's "copies started" metric counts (monitoring.tf).
            Ok(task) => {
                CopyStarted {
                    poll_task: &task,
                    attempt: start.place.attempt,
                }
                .emit();
                StepOutcome::Acked
            }
            Err(outcome) => outcome,
        }
    }

    /// CopyModel into a parent, called once: it adds a version with every call and has no
    /// idempotency key, so a call that may have reached Vertex AI (a timeout, a dropped
    /// connection, UNAVAILABLE, INTERNAL) is never repeated in-request. It asks for a retry, and
    /// the retried dispatch looks for the version before calling again
    /// ([`Self::copy_into_parent`]). Nor is it started with less time left than one call may
    /// take, so the stage's deadline never cancels it mid-call.
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
                    "{:.0} s left in this dispatch, less than one CopyModel call may take; not started",
                    left.as_secs_f64()
                ),
            );
            return Err(StepOutcome::Retry(f.into()));
        }
        match self.vertex.start_copy(req, start.key.as_ref()).await {
            Err(f) if f.class() == FailureClass::Transient => {
                tracing::warn!(error.message = %f, "CopyModel into a parent failed ambiguously; not repeated, the retried dispatch looks for the version first");
                Err(StepOutcome::Retry(f.into()))
            }
            other => Ok(other),
        }
    }

    /// CopyModel's documented limits (`domain::check_copy_limits`), judged from one read of the
    /// source model (it also teaches the source's project number, which the starts read
    /// anyway). Returns the key the copy is encrypted with: the request's, or for a source
    /// under a customer-managed key the default of the destination's region
    /// (`COPY_DEFAULT_KMS_KEYS`). A source that cannot be read is left to CopyModel, which
    /// answers for it, with the request's key.
    async fn within_copy_limits(&self, req: &CopyRequest) -> Result<Option<KmsKeyName>, Rejection> {
        let src = &req.source_model;
        let name = src.to_string();
        let read = retry_transient("get_model", || self.vertex.get_model(&name, &src.location));
        let Ok(Some(model)) = read.await else {
            return Ok(req.kms_key_name.clone());
        };
        self.numbers.learn(&src.project, &model.name);
        let facts = SourceFacts {
            project_number: model.name.split('/').nth(1).unwrap_or_default().to_owned(),
            container_image_uri: model.container_image_uri,
            kms_key_name: model.kms_key_name,
        };
        let default = self
            .settings
            .default_kms_keys
            .for_region(&req.destination.location);
        let key = check_copy_limits(
            src,
            &facts,
            &req.destination,
            req.kms_key_name.as_ref(),
            default,
        )?;
        if req.kms_key_name.is_none() && key.is_some() {
            tracing::info!(
                kms_key_name = key.as_ref().map(KmsKeyName::as_str),
                "the source is under a customer-managed key and the request names none; the copy is encrypted with the destination region's default key (COPY_DEFAULT_KMS_KEYS)"
            );
        }
        Ok(key)
    }

    /// Vertex AI's quota refused a start's call: a retry is asked for, so that the
    /// copy-start queue backs off (its rate is the deployment's share of that quota).
    fn on_quota(&self, job: Job<'_>, why: Failure) -> StepOutcome {
        let dest = &job.req.destination;
        VertexQuotaExhausted {
            project: dest.project.as_str(),
            region: &dest.location,
            kind: &"Copy",
            hold: self.settings.quota_backoff,
            error: &why,
        }
        .emit();
        StepOutcome::Retry(RetryReason::Vertex(why))
    }
}
