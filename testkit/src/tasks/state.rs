//! The queues of the Cloud Tasks fake: tasks, queue states and the names kept for
//! de-duplication. Pure bookkeeping, no I/O; [`super::schedule`] holds the dispatch side of the
//! same state (what to send next, how an attempt ended).

use super::limits::Bucket;
use super::random::{DEFAULT_SEED, Rng};
use super::request::TaskSpec;
use super::wire::Failure;
use super::{Dispatch, QueueConfig, TaskView};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
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
    /// Attempts dispatched (`dispatchCount`), including one in flight; duplicate deliveries
    /// are not attempts.
    pub dispatch_count: u32,
    /// Attempts that got an HTTP answer (`responseCount`).
    pub response_count: u32,
    /// Answers that were not 5xx: `X-CloudTasks-TaskExecutionCount` counts only attempts that
    /// reached the handler's execution phase.
    pub executions: u32,
    pub previous_status: Option<u16>,
    /// Why the last attempt failed (`X-CloudTasks-TaskRetryReason` of the next one).
    pub retry_reason: Option<String>,
    pub first_dispatch: Option<(Instant, SystemTime)>,
    pub last_dispatch: Option<SystemTime>,
    pub last_response: Option<SystemTime>,
    pub in_flight: bool,
}

/// A queue: its settings, whether it is paused, and its tasks by name.
#[derive(Debug)]
pub(crate) struct Queue {
    pub config: QueueConfig,
    pub bucket: Bucket,
    /// Queue.state PAUSED (true) or RUNNING.
    pub paused: bool,
    pub in_flight: u32,
    pub tasks: BTreeMap<String, Task>,
}

/// Everything the fake knows, behind one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub queues: BTreeMap<String, Queue>,
    /// Names of tasks that succeeded, were deleted or gave up, and when: they answer
    /// ALREADY_EXISTS until the window has passed.
    pub tombstones: HashMap<String, Instant>,
    pub dedup_window: Duration,
    pub dispatches: Vec<Dispatch>,
    /// Tasks deleted after their last allowed attempt failed.
    pub given_up: Vec<String>,
    /// Every task CreateTask accepted, in order.
    pub created: Vec<String>,
    /// Picks among ready tasks and draws duplicate deliveries.
    pub rng: Rng,
    /// The chance that an attempt is delivered twice ([`super::TasksFake::set_duplicate_rate`]).
    pub duplicate_rate: f64,
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
            rng: Rng::new(DEFAULT_SEED),
            duplicate_rate: 0.0,
        }
    }
}

impl State {
    /// Creates the queue, or changes its limits (tasks and state stay), like UpdateQueue.
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
                    paused: false,
                    in_flight: 0,
                    tasks: BTreeMap::new(),
                };
                self.queues.insert(name.to_string(), queue);
            }
        }
    }

    pub fn queue(&self, name: &str) -> Result<&Queue, Failure> {
        self.queues.get(name).ok_or_else(queue_missing)
    }

    /// PauseQueue (`paused`) or ResumeQueue. PauseQueue: "If a queue is paused then the system
    /// will stop dispatching tasks until the queue is resumed via ResumeQueue. Tasks can still
    /// be added when the queue is paused" (cloudtasks.proto). Resuming refills nothing: the
    /// bucket kept filling while the queue was paused, up to its size.
    pub fn set_paused(&mut self, name: &str, paused: bool) -> Result<&Queue, Failure> {
        let queue = self.queues.get_mut(name).ok_or_else(queue_missing)?;
        queue.paused = paused;
        Ok(queue)
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
            retry_reason: None,
            first_dispatch: None,
            last_dispatch: None,
            last_response: None,
            in_flight: false,
        };
        queue.tasks.insert(name.clone(), task.clone());
        self.created.push(name);
        Ok(task)
    }

    pub fn get(&self, queue: &str, name: &str) -> Result<Task, Failure> {
        let queue = self.queue(queue)?;
        queue.tasks.get(name).cloned().ok_or_else(task_missing)
    }

    /// DeleteTask: the task goes (an attempt in flight still finishes) and its name is kept.
    pub fn delete(&mut self, queue: &str, name: &str, now: Instant) -> Result<(), Failure> {
        let queue = self.queues.get_mut(queue).ok_or_else(queue_missing)?;
        queue.tasks.remove(name).ok_or_else(task_missing)?;
        self.tombstones.insert(name.to_string(), now);
        Ok(())
    }

    /// One page of ListTasks: up to `size` tasks whose names sort after `after`, and whether
    /// more follow. Name order keeps pages stable while tasks come and go ("The tasks may be
    /// returned in any order", ListTasks).
    pub fn list(
        &self,
        queue: &str,
        after: Option<&str>,
        size: usize,
    ) -> Result<(Vec<Task>, bool), Failure> {
        let queue = self.queue(queue)?;
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_string()));
        let mut rest = queue.tasks.range((start, Bound::Unbounded));
        let page: Vec<Task> = rest.by_ref().take(size).map(|(_, t)| t.clone()).collect();
        Ok((page, rest.next().is_some()))
    }

    /// Tasks of `queue` not done yet, in flight or waiting.
    pub fn pending(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, |q| q.tasks.len())
    }

    /// What [`super::TasksFake::tasks`] shows of each pending task, by name.
    pub fn views(&self, queue: &str) -> Vec<TaskView> {
        let Some(queue) = self.queues.get(queue) else {
            return Vec::new();
        };
        let view = |t: &Task| TaskView {
            name: t.name.clone(),
            url: t.spec.url.clone(),
            schedule_time: t.schedule_time,
            body: t.spec.body.clone(),
            dispatch_count: t.dispatch_count,
        };
        queue.tasks.values().map(view).collect()
    }
}

pub(crate) fn queue_missing() -> Failure {
    Failure::NotFound("Queue does not exist.".into())
}

fn task_missing() -> Failure {
    Failure::NotFound("The task no longer exists, though a task with this name existed recently. The task either successfully completed or was deleted.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages_by_name_and_says_when_more_follow() {
        let now = Instant::now();
        let mut state = State::default();
        state.put_queue("q", QueueConfig::default(), now);
        for id in ["c", "a", "b"] {
            let spec = TaskSpec::for_tests("http://127.0.0.1:1/");
            state
                .create("q", format!("q/tasks/{id}"), spec, now)
                .unwrap();
        }
        let names = |page: &[Task]| page.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let (first, more) = state.list("q", None, 2).unwrap();
        assert_eq!(
            (names(&first), more),
            (vec!["q/tasks/a".into(), "q/tasks/b".into()], true)
        );
        let (second, more) = state.list("q", Some("q/tasks/b"), 2).unwrap();
        assert_eq!(
            (names(&second), more),
            (vec!["q/tasks/c".to_string()], false)
        );
        assert!(matches!(
            state.list("nope", None, 2),
            Err(Failure::NotFound(_))
        ));
    }
}
