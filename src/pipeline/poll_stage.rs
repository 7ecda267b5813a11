//! The poll stage: one poll task of the poll queue (`COPY_POLL_QUEUE`): one GetOperation, then
//! the next poll or the end of the copy (DESIGN.md §1, "The poll chain").

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::announce::Ending;
use super::chain::{PollPlace, StartPlace};
use super::decide::{self, AfterFailure, AfterPoll};
use super::start_stage::{Dispatch, Parsed};
use super::{Delivery, Job, Pipeline, StepOutcome};
use crate::contract::Rejection;
use crate::contract::dead_letter::FailedStage;
use crate::domain::OperationName;
use crate::retry::{Failure, FailureClass};
use crate::telemetry::events::{CountedEvent as _, VertexQuotaExhausted};

/// A poll task, parsed: the operation it follows and when its copy started.
struct Polled {
    op: OperationName,
    started_at: DateTime<Utc>,
    /// The copy's age this poll was planned for (its age now when the task does not say).
    due: Duration,
}

impl Pipeline {
    /// Handles one poll task (`POST /tasks/copy-polls`). It answers 2xx for everything it
    /// handled, Vertex AI's errors included (Cloud Tasks slows a whole queue down after every
    /// answer that asks for a retry), and asks for a retry only when what it hands on was not
    /// confirmed:
    ///
    /// 1. a body that is not a poll task → `rejected` + dead letter;
    /// 2. GetOperation, once;
    /// 3. still running → the next poll task, scheduled by the copy's age (counted from the
    ///    CopyModel call); a Vertex AI error → the next poll, later;
    /// 4. past `COPY_MAX_DURATION` (weighed after the poll) → `failed` DEADLINE_EXCEEDED;
    /// 5. succeeded → `succeeded` event (and callback message);
    /// 6. failed transiently with attempts left → a restart through the copy-start queue;
    ///    ALREADY_EXISTS → the destination is read; otherwise → `failed` + dead letter.
    pub async fn poll_stage(&self, dispatch: Dispatch<'_>) -> StepOutcome {
        self.within_budget("poll", self.poll_step(dispatch)).await
    }

    async fn poll_step(&self, dispatch: Dispatch<'_>) -> StepOutcome {
        let p = match self.parse_task(&dispatch, FailedStage::Operation).await {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let d = Delivery {
            msg: &p.msg,
            stage: FailedStage::Operation,
        };
        let job = Job { d: &d, req: &p.req };
        let polled = match polled(&p) {
            Ok(x) => x,
            Err(why) => return self.reject(&d, why).await,
        };
        tracing::Span::current().record("operation", polled.op.as_str());
        let state = self.vertex.get_operation(&polled.op).await;
        let model = p.req.destination.model_name();
        let too_old = self
            .settings
            .past_max_duration(p.task.accepted_at, &model, "still not done");
        match decide::after_poll(state, too_old) {
            AfterPoll::Next => self.next_poll(job, &p, &polled, None).await,
            AfterPoll::Backoff(f) => self.next_poll(job, &p, &polled, Some(f)).await,
            AfterPoll::Succeeded(m) => {
                self.in_flight.forget(&polled.op);
                let mut end = Ending::succeeded(m, p.task.accepted_at);
                end.operation = Some(polled.op.to_string());
                end.attempts = p.task.attempt;
                self.announce(job, end).await
            }
            AfterPoll::OperationFailed(f) => {
                self.in_flight.forget(&polled.op);
                self.operation_failed(job, &p, &polled.op, f).await
            }
            AfterPoll::Fail(f) => self.end_failed(job, &p, Some(&polled.op), &f).await,
        }
    }

    /// The next poll of a copy still running: by the copy's age, or after a Vertex AI error
    /// at least `quota_backoff` later.
    async fn next_poll(
        &self,
        job: Job<'_>,
        p: &Parsed,
        polled: &Polled,
        error: Option<Failure>,
    ) -> StepOutcome {
        let age = (Utc::now() - polled.started_at)
            .to_std()
            .unwrap_or_default();
        let mut due = self.next_poll_due(polled.due, age);
        if let Some(f) = &error {
            due = due.max(age + self.settings.quota_backoff);
            let after = due - age;
            if f.class() == FailureClass::QuotaExhausted {
                let dest = &job.req.destination;
                VertexQuotaExhausted {
                    project: dest.project.as_str(),
                    region: &dest.location,
                    kind: &"Read",
                    hold: after,
                    error: f,
                }
                .emit();
            } else {
                tracing::warn!(error.message = %f, after_s = after.as_secs_f64(), "GetOperation failed; polling again later");
            }
        }
        let place = PollPlace {
            operation: &polled.op,
            seq: p.task.seq + 1,
            attempt: p.task.attempt,
            accepted_at: p.task.accepted_at,
            started_at: polled.started_at,
            due,
        };
        match self.queue_poll(job, place).await {
            Ok(_) => StepOutcome::Acked,
            Err(outcome) => outcome,
        }
    }

    async fn operation_failed(
        &self,
        job: Job<'_>,
        p: &Parsed,
        op: &OperationName,
        f: Failure,
    ) -> StepOutcome {
        let attempt = p.task.attempt;
        let place = StartPlace {
            accepted_at: p.task.accepted_at,
            attempt,
            origin: op.to_string(),
            seq: 0,
            previous_operation: Some(op.to_string()),
        };
        match decide::after_failed_operation(&f, attempt, self.settings.max_attempts) {
            AfterFailure::Resolve => self.resolve_existing(job, &place).await,
            AfterFailure::Fail => self.end_failed(job, p, Some(op), &f).await,
            AfterFailure::Restart => {
                tracing::warn!(error.message = %f, attempt, "operation failed transiently; restarting the copy through the copy-start queue");
                let restart = StartPlace {
                    attempt: attempt + 1,
                    ..place
                };
                self.queue_start(job, &restart, Duration::ZERO).await
            }
        }
    }

    async fn end_failed(
        &self,
        job: Job<'_>,
        p: &Parsed,
        op: Option<&OperationName>,
        f: &Failure,
    ) -> StepOutcome {
        let mut end = Ending::failed(f, p.task.accepted_at);
        end.operation = op.map(ToString::to_string);
        end.attempts = p.task.attempt;
        self.announce(job, end).await
    }
}

/// A poll task names the operation it follows and when the copy started.
fn polled(p: &Parsed) -> Result<Polled, Rejection> {
    let op = p
        .task
        .operation
        .as_deref()
        .ok_or_else(|| Rejection::new("operation", "a poll task names its operation"))?;
    let started_at = p.task.started_at.unwrap_or(p.task.accepted_at);
    let due = match p.task.due_ms {
        Some(ms) => Duration::from_millis(ms),
        None => (Utc::now() - started_at).to_std().unwrap_or_default(),
    };
    Ok(Polled {
        op: OperationName::parse(op)?,
        started_at,
        due,
    })
}

#[cfg(test)]
mod end_tests;
#[cfg(test)]
mod tests;
