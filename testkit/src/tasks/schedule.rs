//! The dispatch side of the fake's state: which attempts may start now
//! ([`State::take_ready`]) and what an attempt's end does to its task ([`State::finish`]).
//! Still no I/O: [`super::dispatch`] sends what this hands out.

use super::Dispatch;
use super::QueueConfig;
use super::limits::backoff;
use super::request::TaskSpec;
use super::state::{Queue, State, Task};
use std::time::{Duration, Instant, SystemTime};

/// One delivery handed to the dispatcher.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    pub queue: String,
    pub task: String,
    /// Index of its row in [`State::dispatches`].
    pub row: usize,
    pub spec: TaskSpec,
    /// Retries before this attempt (`X-CloudTasks-TaskRetryCount`).
    pub retry_count: u32,
    pub executions: u32,
    pub previous_status: Option<u16>,
    pub retry_reason: Option<String>,
    pub schedule_time: SystemTime,
    /// A second delivery of the same attempt: same headers and body, and its answer changes
    /// nothing (the queue counts the attempt once).
    pub duplicate: bool,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Answer {
    /// The worker answered with this status, and maybe a `Retry-After` (in seconds).
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer by the dispatch deadline.
    DeadlineExceeded,
    /// No connection, or the connection broke before an answer.
    Unreachable,
}

impl Answer {
    pub fn status(self) -> Option<u16> {
        match self {
            Answer::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// `X-CloudTasks-TaskRetryReason` of the retry this answer causes. The header is
    /// documented ("The reason for retrying the task", creating-http-target-tasks, "Reading
    /// request headers") but its values are not; the fake sends plain text that no worker
    /// should parse, naming DEADLINE_EXCEEDED as Task.dispatch_deadline does.
    fn retry_reason(self) -> String {
        match self {
            Answer::Status { status, .. } => format!("HTTP status {status}"),
            Answer::DeadlineExceeded => {
                "DEADLINE_EXCEEDED: no answer by the dispatch deadline".into()
            }
            Answer::Unreachable => "UNAVAILABLE: the target could not be reached".into(),
        }
    }
}

impl State {
    /// Starts every attempt the limits allow now, and says when to look again (`None`: only
    /// when an attempt ends, a task is created or a queue changes).
    pub fn take_ready(&mut self, now: Instant) -> (Vec<Attempt>, Option<Instant>) {
        let wall = SystemTime::now();
        let mut out = Vec::new();
        let mut next: Option<Instant> = None;
        for (queue_name, queue) in &mut self.queues {
            // PauseQueue: "the system will stop dispatching tasks until the queue is resumed"
            // (cloudtasks.proto); ResumeQueue wakes the dispatcher.
            if queue.paused {
                continue;
            }
            let mut ready = Vec::new();
            for task in queue.tasks.values().filter(|t| !t.in_flight) {
                match ready_at(task, now, wall) {
                    None => ready.push(task.name.clone()),
                    Some(at) => next = Some(next.map_or(at, |n: Instant| n.min(at))),
                }
            }
            let picked = pick(queue, &mut ready, &mut self.rng, now);
            if let Some(at) = picked.wait {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            for name in picked.names {
                let task = queue.tasks.get_mut(&name).expect("a ready task");
                out.push(start_attempt(queue_name, task, now));
            }
        }
        self.record(&mut out, now);
        (out, next)
    }

    /// Adds the dispatch rows of `attempts`, and a duplicate delivery of some of them.
    fn record(&mut self, attempts: &mut Vec<Attempt>, now: Instant) {
        let mut duplicates = Vec::new();
        for attempt in attempts.iter_mut() {
            attempt.row = self.dispatches.len();
            self.dispatches.push(row(attempt, now));
            // "Cloud Tasks is designed to provide "at least once" delivery ... In some rare
            // circumstances, multiple task execution is possible"
            // (cloud.google.com/tasks/docs/concepts).
            if self.rng.chance(self.duplicate_rate) {
                duplicates.push(attempt.clone());
            }
        }
        for mut duplicate in duplicates {
            duplicate.duplicate = true;
            duplicate.row = self.dispatches.len();
            self.dispatches.push(row(&duplicate, now));
            attempts.push(duplicate);
        }
    }

    /// Applies the end of an attempt: success removes the task, failure schedules a retry or,
    /// past the RetryConfig limits, deletes it. A duplicate delivery only records its status.
    pub fn finish(&mut self, attempt: &Attempt, answer: Answer, now: Instant) {
        self.dispatches[attempt.row].status = answer.status().unwrap_or(0);
        let Some(queue) = self
            .queues
            .get_mut(&attempt.queue)
            .filter(|_| !attempt.duplicate)
        else {
            return;
        };
        queue.in_flight = queue.in_flight.saturating_sub(1);
        let config = queue.config.clone();
        // Deleted while in flight: nothing left to update.
        let Some(task) = queue.tasks.get_mut(&attempt.task) else {
            return;
        };
        record_answer(task, answer);
        // HttpRequest: "If the worker ... acknowledges the task by returning a successful HTTP
        // response code ([`200` - `299`]), the task will be removed from the queue. If any
        // other HTTP response code is returned or no response is received, the task will be
        // retried" (google/cloud/tasks/v2/target.proto).
        let succeeded = answer.status().is_some_and(|s| (200..300).contains(&s));
        if succeeded || gives_up(&config, task, now) {
            if !succeeded {
                self.given_up.push(attempt.task.clone());
            }
            queue.tasks.remove(&attempt.task);
            self.tombstones.insert(attempt.task.clone(), now);
            return;
        }
        let mut delay = backoff(&config, task.dispatch_count);
        // HttpRequest: on 429 or 503 "Cloud Tasks will use a higher backoff rate. The retry
        // specified in the Retry-After HTTP response header is considered." The higher rate is
        // not quantified anywhere, so the fake honours only Retry-After.
        if let Answer::Status {
            status: 429 | 503,
            retry_after: Some(after),
        } = answer
        {
            delay = delay.max(after);
        }
        task.due = now + delay;
        task.schedule_time = SystemTime::now() + delay;
    }
}

/// `None` when `task` may start now; otherwise when to look again. Task.schedule_time: "The
/// time when the task is scheduled to be attempted or retried" (task.proto). Both clocks must
/// have reached it, so that no handler ever sees an attempt before its `scheduleTime`.
fn ready_at(task: &Task, now: Instant, wall: SystemTime) -> Option<Instant> {
    let wall_ahead = task.schedule_time.duration_since(wall).unwrap_or_default();
    let at = task.due.max(now + wall_ahead);
    (at > now).then_some(at)
}

/// The tasks of one queue that start now, and when its bucket has the next token.
struct Picked {
    names: Vec<String>,
    wait: Option<Instant>,
}

/// Takes ready tasks in a random order while the limits allow. Cloud Tasks promises no order:
/// ListTasks "may be returned in any order", and nothing in the API orders dispatch beyond
/// `scheduleTime`, so tasks ready together go in the order the seeded RNG draws.
fn pick(
    queue: &mut Queue,
    ready: &mut Vec<String>,
    rng: &mut super::random::Rng,
    now: Instant,
) -> Picked {
    let mut picked = Picked {
        names: Vec::new(),
        wait: None,
    };
    queue.bucket.refill(now);
    while !ready.is_empty() {
        // RateLimits.max_concurrent_dispatches: "After this threshold has been reached, Cloud
        // Tasks stops dispatching tasks until the number of concurrent requests decreases."
        if queue.in_flight >= queue.config.max_concurrent_dispatches {
            break;
        }
        if !queue.bucket.take() {
            picked.wait = Some(queue.bucket.next_token());
            break;
        }
        let name = ready.swap_remove(rng.below(ready.len()));
        queue.in_flight += 1;
        picked.names.push(name);
    }
    picked
}

fn row(attempt: &Attempt, now: Instant) -> Dispatch {
    Dispatch {
        task: attempt.task.clone(),
        at: now,
        attempt: attempt.retry_count + 1,
        status: 0,
        duplicate: attempt.duplicate,
    }
}

/// Marks `task` in flight and describes its attempt (its row is set by [`State::record`]).
fn start_attempt(queue: &str, task: &mut Task, now: Instant) -> Attempt {
    let retry_count = task.dispatch_count;
    task.dispatch_count += 1;
    task.in_flight = true;
    let wall = SystemTime::now();
    task.first_dispatch.get_or_insert((now, wall));
    task.last_dispatch = Some(wall);
    Attempt {
        queue: queue.to_string(),
        task: task.name.clone(),
        row: 0,
        spec: task.spec.clone(),
        retry_count,
        executions: task.executions,
        previous_status: task.previous_status,
        retry_reason: task.retry_reason.clone(),
        schedule_time: task.schedule_time,
        duplicate: false,
    }
}

fn record_answer(task: &mut Task, answer: Answer) {
    task.in_flight = false;
    task.previous_status = answer.status();
    task.retry_reason = Some(answer.retry_reason());
    if let Some(status) = answer.status() {
        task.response_count += 1;
        task.last_response = Some(SystemTime::now());
        if status < 500 {
            task.executions += 1;
        }
    }
}

/// RetryConfig.max_attempts: "Cloud Tasks stops retrying only when max_attempts and
/// max_retry_duration are both satisfied" (-1: unlimited attempts; a zero duration sets no
/// time limit).
fn gives_up(config: &QueueConfig, task: &Task, now: Instant) -> bool {
    let attempts_done = config.max_attempts >= 0
        && i64::from(task.dispatch_count) >= i64::from(config.max_attempts);
    let first = task.first_dispatch.map_or(now, |(at, _)| at);
    let time_done = config.max_retry_duration.is_zero()
        || now.duration_since(first) >= config.max_retry_duration;
    attempts_done && time_done
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "projects/p/locations/l/queues/q";

    fn state_with(ids: &[&str], now: Instant) -> State {
        let mut state = State::default();
        state.put_queue(Q, QueueConfig::default(), now);
        for id in ids {
            let spec = TaskSpec::for_tests("http://127.0.0.1:1/");
            state
                .create(Q, format!("{Q}/tasks/{id}"), spec, now)
                .unwrap();
        }
        state
    }

    #[test]
    fn give_up_needs_both_attempts_and_duration() {
        let now = Instant::now();
        let mut c = QueueConfig {
            max_attempts: 2,
            ..QueueConfig::default()
        };
        let mut task = state_with(&["t"], now)
            .get(Q, &format!("{Q}/tasks/t"))
            .unwrap();
        task.dispatch_count = 1;
        assert!(!gives_up(&c, &task, now));
        task.dispatch_count = 2;
        task.first_dispatch = Some((now, SystemTime::now()));
        assert!(gives_up(&c, &task, now));
        c.max_retry_duration = Duration::from_secs(60);
        assert!(!gives_up(&c, &task, now + Duration::from_secs(1)));
        assert!(gives_up(&c, &task, now + Duration::from_secs(60)));
        c.max_attempts = -1;
        assert!(!gives_up(&c, &task, now + Duration::from_secs(600)));
    }

    #[test]
    fn tasks_ready_together_start_in_an_order_the_seed_decides() {
        let ids: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let order = |seed| {
            let now = Instant::now() + Duration::from_millis(5);
            let mut state = state_with(&ids, now);
            state.rng = super::super::random::Rng::new(seed);
            let (attempts, _) = state.take_ready(now + Duration::from_millis(5));
            attempts.into_iter().map(|a| a.task).collect::<Vec<_>>()
        };
        let first = order(7);
        assert_eq!(first.len(), 20);
        assert_eq!(first, order(7));
        assert_ne!(first, order(8));
        let mut sorted = first.clone();
        sorted.sort();
        assert_ne!(first, sorted, "not the creation order");
    }

    #[test]
    fn a_paused_queue_starts_nothing_until_resumed() {
        let now = Instant::now();
        let mut state = state_with(&["a", "b"], now);
        state.set_paused(Q, true).unwrap();
        let later = now + Duration::from_millis(5);
        assert_eq!(state.take_ready(later).0.len(), 0);
        state.set_paused(Q, false).unwrap();
        assert_eq!(state.take_ready(later).0.len(), 2);
    }
}
