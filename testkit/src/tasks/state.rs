//! The queues of the Cloud Tasks fake: tasks, token buckets, concurrency, retries and the names
//! kept for de-duplication. Pure bookkeeping, no I/O: [`super::dispatch`] asks it what to send
//! ([`State::take_ready`]) and tells it how each attempt ended ([`State::finish`]).

use super::limits::{Bucket, backoff};
use super::request::TaskSpec;
use super::wire::Failure;
use super::{Dispatch, QueueConfig};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

/// A task in a queue: what to send and what happened so far.
#[derive(Clone, Debug)]
pub(crate) struct Task {
    pub name: String,
    pub spec: TaskSpec,
    /// When the next attempt may start (`scheduleTime`), on both clocks: the monotonic one
    /// drives dispatch, the wall one is what the API shows.
    pub due: Instant,
    pub schedule_time: SystemTime,
    pub create_time: SystemTime,
    /// Attempts dispatched (`dispatchCount`), including one in flight.
    pub dispatch_count: u32,
    /// Attempts that got an HTTP answer (`responseCount`).
    pub response_count: u32,
    /// Answers that were not 5xx: `X-CloudTasks-TaskExecutionCount` counts only attempts that
    /// reached the handler's execution phase.
    pub executions: u32,
    pub previous_status: Option<u16>,
    pub first_dispatch: Option<(Instant, SystemTime)>,
    pub last_dispatch: Option<SystemTime>,
    pub last_response: Option<SystemTime>,
    pub in_flight: bool,
    /// Creation order, to dispatch due tasks oldest first (Cloud Tasks promises no order; the
    /// fake picks one so that tests are repeatable).
    seq: u64,
}

/// One attempt handed to the dispatcher.
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
    pub schedule_time: SystemTime,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answer {
    /// `None`: no answer before the dispatch deadline, or no connection.
    pub status: Option<u16>,
    /// The `Retry-After` header of the answer, in seconds.
    pub retry_after: Option<Duration>,
}

#[derive(Debug)]
struct Queue {
    config: QueueConfig,
    bucket: Bucket,
    in_flight: u32,
    tasks: BTreeMap<String, Task>,
}

/// Everything the fake knows, behind one lock.
#[derive(Debug)]
pub(crate) struct State {
    queues: BTreeMap<String, Queue>,
    /// Names of tasks that succeeded, were deleted or gave up, and when: they answer
    /// ALREADY_EXISTS until the window has passed.
    tombstones: HashMap<String, Instant>,
    pub dedup_window: Duration,
    pub dispatches: Vec<Dispatch>,
    /// Tasks deleted after their last allowed attempt failed.
    pub given_up: Vec<String>,
    /// Every task CreateTask accepted, in order.
    pub created: Vec<String>,
    next_seq: u64,
}

impl Default for State {
    fn default() -> State {
        State {
            queues: BTreeMap::new(),
            tombstones: HashMap::new(),
            // "It can take up to 24 hours (or 9 days if the task's queue was created using a
            // queue.yaml or queue.xml) for the task ID to be released" (CreateTaskRequest.task,
            // google/cloud/tasks/v2/cloudtasks.proto). The fake keeps the upper bound, longer
            // than any test.
            dedup_window: Duration::from_secs(24 * 3600),
            dispatches: Vec::new(),
            given_up: Vec::new(),
            created: Vec::new(),
            next_seq: 0,
        }
    }
}

impl State {
    /// Creates the queue, or changes its limits (tasks stay), like UpdateQueue.
    pub fn put_queue(&mut self, name: &str, config: QueueConfig, now: Instant) {
        let bucket = Bucket::new(&config, now);
        match self.queues.get_mut(name) {
            Some(queue) => {
                queue.config = config;
                queue.bucket = bucket;
            }
            None => {
                let queue = Queue {
                    config,
                    bucket,
                    in_flight: 0,
                    tasks: BTreeMap::new(),
                };
                self.queues.insert(name.to_string(), queue);
            }
        }
    }

    /// CreateTask after parsing: the name must be free of live tasks and tombstones.
    pub fn create(
        &mut self,
        parent: &str,
        name: String,
        spec: TaskSpec,
        now: Instant,
    ) -> Result<Task, Failure> {
        let window = self.dedup_window;
        self.tombstones
            .retain(|_, at| now.duration_since(*at) < window);
        let queue = self.queues.get_mut(parent).ok_or_else(queue_missing)?;
        if queue.tasks.contains_key(&name) {
            return Err(Failure::AlreadyExists(
                "Requested entity already exists".into(),
            ));
        }
        if self.tombstones.contains_key(&name) {
            return Err(Failure::AlreadyExists(
                "The task cannot be created because a task with this name existed too \
                 recently. For more information about task de-duplication see \
                 https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create#body.request_body.FIELDS.task."
                    .into(),
            ));
        }
        let wall = SystemTime::now();
        // "If schedule_time is not set or is in the past then Cloud Tasks will set it to the
        // current time" (CreateTaskRequest.task).
        let schedule_time = spec.schedule_time.filter(|t| *t > wall).unwrap_or(wall);
        let ahead = schedule_time.duration_since(wall).unwrap_or_default();
        self.next_seq += 1;
        let task = Task {
            name: name.clone(),
            spec,
            due: now + ahead,
            schedule_time,
            create_time: wall,
            dispatch_count: 0,
            response_count: 0,
            executions: 0,
            previous_status: None,
            first_dispatch: None,
            last_dispatch: None,
            last_response: None,
            in_flight: false,
            seq: self.next_seq,
        };
        queue.tasks.insert(name.clone(), task.clone());
        self.created.push(name);
        Ok(task)
    }

    pub fn get(&self, queue: &str, name: &str) -> Result<Task, Failure> {
        let queue = self.queues.get(queue).ok_or_else(queue_missing)?;
        queue.tasks.get(name).cloned().ok_or_else(task_missing)
    }

    /// DeleteTask: the task goes (an attempt in flight still finishes) and its name is kept.
    pub fn delete(&mut self, queue: &str, name: &str, now: Instant) -> Result<(), Failure> {
        let queue = self.queues.get_mut(queue).ok_or_else(queue_missing)?;
        queue.tasks.remove(name).ok_or_else(task_missing)?;
        self.tombstones.insert(name.to_string(), now);
        Ok(())
    }

    /// Tasks of `queue` not done yet, in flight or waiting.
    pub fn pending(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, |q| q.tasks.len())
    }

    /// Starts every attempt the limits allow now, and says when to look again (`None`: only
    /// when an attempt ends or something is created).
    pub fn take_ready(&mut self, now: Instant) -> (Vec<Attempt>, Option<Instant>) {
        let mut ready = Vec::new();
        let mut next: Option<Instant> = None;
        let mut earliest = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        for (queue_name, queue) in &mut self.queues {
            queue.bucket.refill(now);
            loop {
                let due = queue
                    .tasks
                    .values()
                    .filter(|t| !t.in_flight)
                    .min_by_key(|t| (t.due, t.seq));
                let Some(task) = due else { break };
                if task.due > now {
                    earliest(task.due);
                    break;
                }
                // RateLimits.max_concurrent_dispatches: "After this threshold has been
                // reached, Cloud Tasks stops dispatching tasks until the number of concurrent
                // requests decreases."
                if queue.in_flight >= queue.config.max_concurrent_dispatches {
                    break;
                }
                if !queue.bucket.take() {
                    earliest(queue.bucket.next_token());
                    break;
                }
                let name = task.name.clone();
                let task = queue.tasks.get_mut(&name).expect("task just found");
                ready.push(start_attempt(queue_name, task, self.dispatches.len(), now));
                self.dispatches.push(Dispatch {
                    task: name,
                    at: now,
                    attempt: task.dispatch_count,
                    status: 0,
                });
                queue.in_flight += 1;
            }
        }
        (ready, next)
    }

    /// Applies the end of an attempt: success removes the task, failure schedules a retry or,
    /// past the RetryConfig limits, deletes it.
    pub fn finish(&mut self, attempt: &Attempt, answer: Answer, now: Instant) {
        self.dispatches[attempt.row].status = answer.status.unwrap_or(0);
        let Some(queue) = self.queues.get_mut(&attempt.queue) else {
            return;
        };
        queue.in_flight = queue.in_flight.saturating_sub(1);
        let config = queue.config.clone();
        // Deleted while in flight: nothing left to update.
        let Some(task) = queue.tasks.get_mut(&attempt.task) else {
            return;
        };
        task.in_flight = false;
        task.previous_status = answer.status;
        if let Some(status) = answer.status {
            task.response_count += 1;
            task.last_response = Some(SystemTime::now());
            if status < 500 {
                task.executions += 1;
            }
        }
        // HttpRequest: "If the worker ... acknowledges the task by returning a successful HTTP
        // response code ([`200` - `299`]), the task will be removed from the queue. If any
        // other HTTP response code is returned or no response is received, the task will be
        // retried" (google/cloud/tasks/v2/target.proto).
        let succeeded = answer.status.is_some_and(|s| (200..300).contains(&s));
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
        if matches!(answer.status, Some(429 | 503))
            && let Some(after) = answer.retry_after
        {
            delay = delay.max(after);
        }
        task.due = now + delay;
        task.schedule_time = SystemTime::now() + delay;
    }
}

fn start_attempt(queue: &str, task: &mut Task, row: usize, now: Instant) -> Attempt {
    let retry_count = task.dispatch_count;
    task.dispatch_count += 1;
    task.in_flight = true;
    let wall = SystemTime::now();
    task.first_dispatch.get_or_insert((now, wall));
    task.last_dispatch = Some(wall);
    Attempt {
        queue: queue.to_string(),
        task: task.name.clone(),
        row,
        spec: task.spec.clone(),
        retry_count,
        executions: task.executions,
        previous_status: task.previous_status,
        schedule_time: task.schedule_time,
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

fn queue_missing() -> Failure {
    Failure::NotFound("Queue does not exist.".into())
}

fn task_missing() -> Failure {
    Failure::NotFound("The task no longer exists, though a task with this name existed recently. The task either successfully completed or was deleted.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn give_up_needs_both_attempts_and_duration() {
        let now = Instant::now();
        let mut c = QueueConfig {
            max_attempts: 2,
            ..QueueConfig::default()
        };
        let spec = TaskSpec::for_tests("http://127.0.0.1:1/");
        let mut state = State::default();
        state.put_queue("q", c.clone(), now);
        let mut task = state.create("q", "q/tasks/t".into(), spec, now).unwrap();
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
}
