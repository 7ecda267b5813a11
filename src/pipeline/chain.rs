//! The tasks a stage hands on (DESIGN.md §1, "The poll chain"): a copy start, the first poll of
//! a started copy, the next poll of a running one. Each is named from its place in its chain,
//! so a redelivery or a duplicated dispatch creates nothing new, and each is created (and
//! confirmed) before the stage answers 2xx.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::announce::log_dropped;
use super::decide::{self, AfterQueue};
use super::{Job, Pipeline, RetryReason, StepOutcome};
use crate::clients::tasks::{NewTask, Queue, poll_task_id, start_task_id};
use crate::contract::task::{CopyTask, carried, raw_request};
use crate::domain::OperationName;
use crate::retry::Failure;

/// The wait before the next poll of a copy that has been running for `age`:
/// `initial + growth × age`, at most `max`. With the defaults (1 s, 0.25, 60 s) this is the
/// schedule of Workflows' long-running-operation connector (a first poll after 1 s, each next
/// one 1.25 × longer, up to 60 s: cloud.google.com/workflows/docs/reference/googleapis,
/// "Connector retry and polling"), counted from the copy's age so that it survives any
/// number of dispatches: a 5 s copy is seen about 1 s after it ends, a 60 s copy costs about
/// 14 reads, a 30-minute copy about 45.
pub fn poll_delay(age: Duration, initial: Duration, growth: f64, max: Duration) -> Duration {
    (initial + age.mul_f64(growth)).min(max.max(initial))
}

/// The copy's age at which to poll next, after a poll planned for age `due` ran at age `age`:
/// `due + poll_delay(due)`, the connector's next poll, so that the queue's dispatch delays do
/// not add up along the chain. A poll that ran later than a quarter of its interval (a
/// backlog in the queue) plans from when it ran instead: catching up on a missed schedule
/// would only add reads to the backlog.
pub fn next_due(due: Duration, age: Duration, delay: impl Fn(Duration) -> Duration) -> Duration {
    let step = delay(due);
    if age <= due + step / 4 {
        due + step
    } else {
        age + delay(age)
    }
}

/// Where a copy start stands in its chain of start tasks.
#[derive(Debug, Clone)]
pub(crate) struct StartPlace {
    pub accepted_at: DateTime<Utc>,
    pub attempt: u32,
    /// The request's Pub/Sub message id, or the failed operation of a restart.
    pub origin: String,
    pub seq: u32,
    /// A restart: the operation whose failure it follows.
    pub previous_operation: Option<String>,
}

impl Pipeline {
    /// Queues a copy start (DESIGN.md §10): `place` says which attempt and which step of its
    /// chain, `after` how long the queue should hold it first.
    pub(crate) async fn queue_start(
        &self,
        job: Job<'_>,
        place: &StartPlace,
        after: Duration,
    ) -> StepOutcome {
        let task = CopyTask {
            request: request_json(job),
            attempt: place.attempt,
            accepted_at: place.accepted_at,
            operation: None,
            started_at: None,
            due_ms: None,
            previous_operation: place.previous_operation.clone(),
            origin: place.origin.clone(),
            seq: place.seq,
            attributes: carried(&job.d.msg.attributes),
        };
        let request_id = job.req.request_id.as_str();
        let id = start_task_id(&place.origin, request_id, place.attempt, place.seq);
        let created = self.create(Queue::Starts, &id, &task, after).await;
        self.after_created(job, created, place.accepted_at, place.attempt, || {
            tracing::info!(task = id, attempt = place.attempt, "copy start queued");
        })
        .await
    }

    /// Schedules poll `seq` of `op` for when its copy is `due` old (at once if that is past).
    pub(crate) async fn queue_poll(
        &self,
        job: Job<'_>,
        poll: PollPlace<'_>,
    ) -> Result<String, StepOutcome> {
        let at = poll.started_at + chrono::Duration::from_std(poll.due).unwrap_or_default();
        let after = (at - Utc::now()).to_std().unwrap_or_default();
        let task = CopyTask {
            request: request_json(job),
            attempt: poll.attempt,
            accepted_at: poll.accepted_at,
            operation: Some(poll.operation.to_string()),
            started_at: Some(poll.started_at),
            due_ms: Some(u64::try_from(poll.due.as_millis()).unwrap_or(u64::MAX)),
            previous_operation: None,
            origin: poll.operation.to_string(),
            seq: poll.seq,
            attributes: carried(&job.d.msg.attributes),
        };
        let id = poll_task_id(poll.operation.as_str(), poll.seq);
        let created = self.create(Queue::Polls, &id, &task, after).await;
        match decide::after_queue(created) {
            AfterQueue::Queued => Ok(id),
            other => Err(self
                .queue_refused(job, other, poll.accepted_at, poll.attempt)
                .await),
        }
    }

    /// The next poll's wait for a copy of age `age`.
    pub(crate) fn next_poll_after(&self, age: Duration) -> Duration {
        let s = &self.settings;
        poll_delay(age, s.poll_initial, s.poll_growth, s.poll_max)
    }

    /// The age at which to poll a copy next, after the poll planned for `due` ran at `age`.
    pub(crate) fn next_poll_due(&self, due: Duration, age: Duration) -> Duration {
        next_due(due, age, |a| self.next_poll_after(a))
    }

    async fn create(
        &self,
        queue: Queue,
        id: &str,
        task: &CopyTask,
        after: Duration,
    ) -> Result<(), Failure> {
        let (body, dropped) = task.to_body();
        log_dropped(&dropped);
        let schedule = (!after.is_zero())
            .then(|| Utc::now() + chrono::Duration::from_std(after).unwrap_or_default());
        self.queues
            .create(NewTask {
                queue,
                id: id.to_owned(),
                body,
                schedule,
            })
            .await
    }

    async fn after_created(
        &self,
        job: Job<'_>,
        created: Result<(), Failure>,
        accepted_at: DateTime<Utc>,
        attempt: u32,
        on_queued: impl FnOnce(),
    ) -> StepOutcome {
        match decide::after_queue(created) {
            AfterQueue::Queued => {
                on_queued();
                StepOutcome::Acked
            }
            other => self.queue_refused(job, other, accepted_at, attempt).await,
        }
    }

    /// A task that was not created: a retry is asked for while the cause may pass, else the copy fails.
    async fn queue_refused(
        &self,
        job: Job<'_>,
        row: AfterQueue,
        accepted_at: DateTime<Utc>,
        attempt: u32,
    ) -> StepOutcome {
        match row {
            AfterQueue::Queued => StepOutcome::Acked,
            AfterQueue::Retry(f) => {
                tracing::error!(error.message = %f, "Cloud Tasks did not take the next task; asking for a retry");
                StepOutcome::Retry(RetryReason::Queue(f))
            }
            AfterQueue::Fail(f) => {
                tracing::error!(error.message = %f, "Cloud Tasks refused the next task for good");
                let mut end = super::announce::Ending::failed(&f, accepted_at);
                end.attempts = attempt;
                self.announce(job, end).await
            }
        }
    }
}

/// The request as the task carries it: the bytes the request stage received (the stages
/// parse them again; a dead letter carries them as received).
fn request_json(job: Job<'_>) -> Box<serde_json::value::RawValue> {
    raw_request(&job.d.msg.data)
        .or_else(|_| raw_request(&job.req.to_bytes()))
        .expect("a parsed request is JSON")
}

/// Which poll of which copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollPlace<'a> {
    pub operation: &'a OperationName,
    pub seq: u32,
    pub attempt: u32,
    pub accepted_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    /// The copy's age (after `started_at`) the poll is planned for.
    pub due: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulated polls of a copy that takes `copy`: how many reads until it is seen done,
    /// and how long after its end.
    fn reads(copy: Duration) -> (u32, Duration) {
        let s = Duration::from_secs;
        let (mut age, mut n) = (poll_delay(s(0), s(1), 0.25, s(60)), 0);
        loop {
            n += 1;
            if age >= copy {
                return (n, age - copy);
            }
            age += poll_delay(age, s(1), 0.25, s(60));
        }
    }

    #[test]
    fn the_schedule_is_workflows_connector_schedule() {
        let s = Duration::from_secs;
        assert_eq!(poll_delay(s(0), s(1), 0.25, s(60)), s(1));
        assert_eq!(poll_delay(s(4), s(1), 0.25, s(60)), s(2));
        assert_eq!(poll_delay(s(3600), s(1), 0.25, s(60)), s(60));
        // 1 s × 1.25ⁿ: the n-th wait is 1 + 0.25 × (the sum of the waits before it).
        let (mut age, mut want) = (1.0_f64, 1.25_f64);
        for _ in 0..10 {
            let got = poll_delay(Duration::from_secs_f64(age), s(1), 0.25, s(60));
            assert!((got.as_secs_f64() - want).abs() < 1e-6, "{got:?} vs {want}");
            age += want;
            want *= 1.25;
        }
        let (n, lag) = reads(s(5));
        assert!(n <= 5 && lag < s(2), "{n} reads, {lag:?} late");
        let (n, _) = reads(s(60));
        assert!(n <= 15, "{n}");
        let (n, _) = reads(s(1800));
        assert!((40..=50).contains(&n), "{n}");
    }

    /// Polls planned from the plan land on the connector's times however late each one runs
    /// within its tolerance; a poll past it plans from when it ran.
    #[test]
    fn dispatch_delays_do_not_add_up_along_the_chain() {
        let s = Duration::from_secs_f64;
        let delay = |a| poll_delay(a, s(1.0), 0.25, s(60.0));
        // Connector times: 1, 2.25, 3.8125, …; each poll runs 0.2 s late.
        let (mut due, mut want) = (s(1.0), 1.0_f64);
        for n in 1..=20 {
            let next = next_due(due, due + s(0.2), delay);
            want += (1.25_f64.powi(n)).min(60.0);
            assert!(
                (next.as_secs_f64() - want).abs() < 1e-6,
                "poll {n}: {next:?} vs {want}"
            );
            due = next;
        }
        // Late by more than a quarter of its interval (a backlog): 10 s after a 10 s plan.
        let due = s(36.0);
        let late = s(36.0 + 10.0);
        assert_eq!(next_due(due, late, delay), late + delay(late));
        assert_eq!(next_due(due, s(36.0 + 2.5), delay), due + delay(due));
    }
}
