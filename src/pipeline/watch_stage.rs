//! The watch stage: follow the operation, restart transient failures, announce the end.

use std::time::Duration;

use chrono::Utc;

use tokio::time::Instant;

use super::announce::{Ending, WatchNote};
use super::deadline::{self, Deadline};
use super::decide::{self, Admission, AfterFailure, AfterPoll, AfterRead, StartSite};
use super::request_stage::{Poll, Start};
use super::{Delivery, Job, Pipeline, RetryReason, StepOutcome};
use crate::clients::vertex::OperationState;
use crate::contract::Rejection;
use crate::contract::dead_letter::FailedStage;
use crate::contract::push::PushMessage;
use crate::contract::watch::Watch;
use crate::domain::{CopyRequest, Defaults, OperationName};
use crate::retry::{Failure, retry_transient};

/// A watch delivery, parsed.
struct Watched {
    req: CopyRequest,
    /// `None` for a pending watch (see [`Watch::operation`]).
    operation: Option<OperationName>,
    watch: Watch,
    /// The deadline's soft end: a copy this delivery starts leaves the publish after it
    /// this much room (see [`Deadline::soft`]).
    answer_by: Instant,
}

impl Watched {
    /// This watch's request inside delivery `d`.
    fn job<'a>(&'a self, d: &'a Delivery<'a>) -> Job<'a> {
        Job { d, req: &self.req }
    }
}

fn parse_watch(msg: &PushMessage, defaults: &Defaults) -> Result<Watched, Rejection> {
    // The data is the normalised request: only the callback policy of the defaults applies.
    let req = CopyRequest::parse(&msg.data, defaults)?;
    let watch = Watch::parse(&msg.attributes, msg.publish_time.as_deref())?;
    let operation = match &watch.operation {
        None => None,
        Some(op) => Some(OperationName::parse(op)?),
    };
    Ok(Watched {
        req,
        operation,
        watch,
        answer_by: Instant::now(),
    })
}

impl Pipeline {
    /// Handles one `copy-operations` delivery.
    ///
    /// Polls the operation (or, for a pending watch, reads the destination) for up to
    /// `WATCH_HOLD` inside the request, then:
    /// 1. still running → the same watch published again as a new message, then ack (204:
    ///    continue-as-new, which keeps Pub/Sub's push window open);
    /// 2. running past `COPY_MAX_DURATION` → `failed` DEADLINE_EXCEEDED + dead letter;
    /// 3. succeeded → `succeeded` event;
    /// 4. ended with a transient error and attempts left → start a new copy, publish a new
    ///    watch message with `attempt + 1`;
    /// 5. otherwise → `failed` + dead letter.
    ///
    /// On SIGTERM a held delivery stops polling at once and answers 429 (publishing nothing).
    pub async fn watch_stage(&self, msg: &PushMessage) -> StepOutcome {
        self.watch_stage_since(msg, Instant::now()).await
    }

    /// [`Self::watch_stage`] for a delivery that arrived at `arrived`: its deadline counts
    /// from there, so the time authentication and reading the body took is counted too.
    pub async fn watch_stage_since(&self, msg: &PushMessage, arrived: Instant) -> StepOutcome {
        let ack_deadline = self.settings.operations_ack_deadline;
        let deadline = Deadline::since(arrived, ack_deadline);
        match tokio::time::timeout_at(deadline.at(), self.watch_step(msg, &deadline)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => StepOutcome::Retry(RetryReason::OutOfTime {
                stage: "watch",
                budget: deadline::usable(ack_deadline),
            }),
        }
    }

    async fn watch_step(&self, msg: &PushMessage, deadline: &Deadline) -> StepOutcome {
        let d = Delivery {
            msg,
            stage: FailedStage::Operation,
        };
        let mut w = match parse_watch(msg, &self.settings.defaults) {
            Ok(w) => w,
            Err(why) => return self.reject(&d, why).await,
        };
        w.answer_by = deadline.soft();
        let span = tracing::Span::current();
        span.record("request_id", w.req.request_id.as_str());
        // The hold counts from the delivery's arrival (a pending watch's wait for a slot
        // included) and ends by the deadline's soft end, so the last publish still fits.
        let hold_end = (Instant::now() + self.settings.watch_hold).min(deadline.soft());
        if let Some(op) = &w.operation {
            span.record("operation", op.as_str());
        } else if let Poll::Done(outcome) = self.restart_pending(&d, &w, hold_end).await {
            return outcome;
        }

        let mut shutdown = self.shutdown.clone();
        loop {
            let model = w.req.destination.model_name();
            let accepted_at = w.watch.accepted_at;
            let too_old = self
                .settings
                .past_max_duration(accepted_at, &model, "still not done");
            if let Some(f) = too_old {
                return self.end_failed(&d, &w, &f).await;
            }
            let age = (Utc::now() - accepted_at).to_std().unwrap_or_default();
            let polled = match &w.operation {
                Some(op) => self.check_operation(&d, &w, op, hold_end).await,
                None => self.check_destination(&d, &w, hold_end).await,
            };
            if let Poll::Done(outcome) = polled {
                return outcome;
            }
            if *shutdown.borrow() {
                return StepOutcome::NotYet;
            }
            let left = hold_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return self.continue_as_new(&d, &w).await;
            }
            let interval = poll_interval(age, self.settings.poll_initial, self.settings.poll_max);
            tokio::select! {
                _ = tokio::time::sleep(interval.min(left)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return StepOutcome::NotYet,
            }
        }
    }

    /// The hold ended and the copy still runs: hand the same watch on as a new message, then
    /// ack. Answering 2xx keeps Pub/Sub's push window for `copy-operations-push` open (it
    /// shrinks on non-2xx answers, and a "not yet" 429 looks like a failing endpoint); the new
    /// message is delivered again at once, so the hold's own polling is the clock. A crash
    /// between the publish and the ack leaves two watches of one copy: both announce the same
    /// deterministic event (`ce-id`), and the copy is never started twice.
    async fn continue_as_new(&self, d: &Delivery<'_>, w: &Watched) -> StepOutcome {
        self.publish_watch(w.job(d), w.watch.clone(), WatchNote::Continued)
            .await
    }

    /// One poll of the operation; `Running` while it runs, or when the read would end after
    /// `hold_end` (the watch then continues as new in time).
    async fn check_operation(
        &self,
        d: &Delivery<'_>,
        w: &Watched,
        op: &OperationName,
        hold_end: Instant,
    ) -> Poll {
        let read = retry_transient("get_operation", || self.vertex.get_operation(op));
        let Ok(state) = tokio::time::timeout_at(hold_end, read).await else {
            return Poll::Running;
        };
        if !matches!(state, Ok(OperationState::Running)) {
            self.in_flight.forget(op);
        }
        Poll::Done(match decide::after_poll(state) {
            // Vertex AI's read quota counts as running: the budget holds the region back.
            AfterPoll::Running => return Poll::Running,
            AfterPoll::Succeeded(m) => {
                let mut end = Ending::succeeded(m, w.watch.accepted_at);
                end.operation = Some(op.to_string());
                end.attempts = w.watch.attempt;
                self.announce(w.job(d), end).await
            }
            AfterPoll::OperationFailed(f) => self.operation_failed(d, w, op, f).await,
            AfterPoll::Retry(f) => StepOutcome::Retry(f.into()),
            AfterPoll::Fail(f) => self.end_failed(d, w, &f).await,
        })
    }

    /// One read of the destination of a pending watch; `Running` while it is not readable,
    /// or when the read would end after `hold_end`.
    async fn check_destination(&self, d: &Delivery<'_>, w: &Watched, hold_end: Instant) -> Poll {
        let read = self.find_existing_copy(&w.req);
        let Ok(found) = tokio::time::timeout_at(hold_end, read).await else {
            return Poll::Running;
        };
        Poll::Done(match decide::after_read(found) {
            AfterRead::NotYet => return Poll::Running,
            AfterRead::Ours(m) => {
                let mut end = Ending::succeeded(m, w.watch.accepted_at);
                end.attempts = w.watch.attempt;
                self.announce(w.job(d), end).await
            }
            AfterRead::Retry(f) => StepOutcome::Retry(f.into()),
            AfterRead::Fail(f) => self.end_failed(d, w, &f).await,
        })
    }

    /// A pending watch first asks for the copy again: if the first copy failed and left
    /// nothing behind, CopyModel starts a new one (handed on as a normal watch); while it
    /// still runs, ALREADY_EXISTS, and the destination is read until it can be decided.
    ///
    /// A pending watch is also how a copy waits for its turn (the request stage's budget or
    /// Vertex AI's quota): it is started here once a CopyModel slot is free, or handed on
    /// again at the end of the hold.
    async fn restart_pending(&self, d: &Delivery<'_>, w: &Watched, hold_end: Instant) -> Poll {
        let Some(slot) = self.slot_for_pending(w, hold_end).await else {
            return Poll::Done(StepOutcome::NotYet);
        };
        if !slot {
            // No slot within this hold: spend the hold waiting, then hand the watch on. (Handing
            // it on at once would spin: the new message is delivered again immediately.)
            let mut shutdown = self.shutdown.clone();
            let stopped = tokio::select! {
                _ = tokio::time::sleep_until(hold_end) => false,
                _ = shutdown.wait_for(|stop| *stop) => true,
            };
            return Poll::Done(if stopped {
                StepOutcome::NotYet
            } else {
                self.continue_as_new(d, w).await
            });
        }
        if w.req.destination.lists_versions() {
            // CopyModel into a parent adds a version every time, so only after looking: the
            // request stage's own path, with the slot just taken.
            let start = admitted(&w.watch, w.answer_by);
            return Poll::Done(self.copy_into_parent(w.job(d), start).await);
        }
        let start = Start {
            site: StartSite::PendingWatch,
            ..admitted(&w.watch, w.answer_by)
        };
        self.start_copy(w.job(d), start, &mut None).await
    }

    /// Waits for a CopyModel slot for a pending watch, until there is no longer room for the
    /// call and the publish after it; `None` on SIGTERM (docs/DESIGN.md §4: held watches
    /// answer 429 at once).
    async fn slot_for_pending(&self, w: &Watched, hold_end: Instant) -> Option<bool> {
        let region = &w.req.destination.location;
        let call = self.settings.vertex_call_timeout;
        let slot_by = hold_end.min(w.answer_by.checked_sub(call).unwrap_or(hold_end));
        let hold = slot_by.saturating_duration_since(Instant::now());
        let project = w.req.destination.project.as_str();
        let mut stop = self.shutdown.clone();
        tokio::select! {
            got = self.budget.copy_within(project, region, hold) => Some(got),
            _ = stop.wait_for(|stop| *stop) => None,
        }
    }

    async fn operation_failed(
        &self,
        d: &Delivery<'_>,
        w: &Watched,
        op: &OperationName,
        f: Failure,
    ) -> StepOutcome {
        let attempt = w.watch.attempt;
        match decide::after_failed_operation(&f, attempt, self.settings.max_attempts) {
            AfterFailure::Resolve => {
                return self
                    .resolve_existing(w.job(d), w.watch.accepted_at, attempt)
                    .await;
            }
            AfterFailure::Fail => return self.end_failed(d, w, &f).await,
            AfterFailure::Restart => {}
        }
        tracing::warn!(error.message = %f, attempt, "operation failed transiently; restarting the copy");
        if self.queue.is_some() {
            let next = Watch {
                operation: None,
                attempt: attempt + 1,
                accepted_at: w.watch.accepted_at,
            };
            return self.queue_start(w.job(d), w.req.to_bytes(), next).await;
        }
        if w.req.destination.lists_versions() {
            // Into a parent: look first, and CopyModel once (the request stage's path).
            let mut next = admitted(&w.watch, w.answer_by);
            next.attempt += 1;
            return self.copy_into_parent(w.job(d), next).await;
        }
        let start = Start {
            site: StartSite::Restart(op.clone()),
            ..admitted(&w.watch, w.answer_by)
        };
        match self.start_copy(w.job(d), start, &mut None).await {
            Poll::Done(outcome) => outcome,
            Poll::Running => unreachable!("a restart resolves ALREADY_EXISTS at once"),
        }
    }

    async fn end_failed(&self, d: &Delivery<'_>, w: &Watched, f: &Failure) -> StepOutcome {
        let mut end = Ending::failed(f, w.watch.accepted_at);
        end.operation = w.operation.as_ref().map(ToString::to_string);
        end.attempts = w.watch.attempt;
        self.announce(w.job(d), end).await
    }
}

/// A pending watch that holds a budget slot: the start it makes, answered by `answer_by`.
fn admitted(watch: &Watch, answer_by: Instant) -> Start {
    Start {
        accepted_at: watch.accepted_at,
        attempt: watch.attempt,
        site: StartSite::Request(Admission::Admitted),
        answer_by,
    }
}

/// The wait before the next poll: 35 % of the copy's age (from `accepted_at`), between
/// `initial` and `max`. Counting from the copy's age rather than from the delivery makes the
/// backoff carry across holds, as a geometric backoff of ×1.35 would within one (Workflows'
/// long-running-operation connector backs off the same way, ×1.25 up to 60 s): a 5 s copy is
/// seen within about 1 s of finishing, a 60 s copy costs about 14 reads, and a 30-minute
/// copy about 45 (it was about 230: polling restarted at 1 s with every hold).
pub fn poll_interval(age: Duration, initial: Duration, max: Duration) -> Duration {
    age.mul_f64(0.35).clamp(initial, max.max(initial))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulated polls of a copy that takes `copy`: how many reads until it is seen done.
    fn reads(copy: Duration, initial: Duration, max: Duration) -> u32 {
        let (mut age, mut n) = (Duration::ZERO, 0);
        loop {
            n += 1;
            if age >= copy {
                return n;
            }
            age += poll_interval(age, initial, max);
        }
    }

    #[test]
    fn polling_stretches_with_the_copys_age_across_holds() {
        let s = Duration::from_secs;
        assert_eq!(poll_interval(s(0), s(1), s(60)), s(1));
        assert_eq!(poll_interval(s(100), s(1), s(60)), s(35));
        assert_eq!(poll_interval(s(3600), s(1), s(60)), s(60));
        let thirty_minutes = reads(s(1800), s(1), s(60));
        assert!((40..=50).contains(&thirty_minutes), "{thirty_minutes}");
        // The old rule (×1.3 from 1 s up to 10 s, restarted every 240 s hold): about 230.
        let minute = reads(s(60), s(1), s(60));
        assert!(minute <= 15, "{minute}");
    }
}
