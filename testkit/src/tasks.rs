//! A faithful fake of Cloud Tasks v2 (HTTP targets) for the official `google-cloud-tasks-v2`
//! client: queues with rate limits, concurrency and retries that dispatch HTTP tasks to
//! servers on 127.0.0.1. Cloud Tasks has no emulator.
//!
//! # Surface (the bindings of the client's `transport.rs`)
//! - `POST /v2/{parent=projects/*/locations/*/queues/*}/tasks` (CreateTask), body
//!   `{"task": Task, "responseView": …}` → the Task.
//! - `GET /v2/{parent}/tasks` (ListTasks, `pageSize` up to 1000, `pageToken`,
//!   `responseView`) → `{"tasks": […], "nextPageToken": …}`, by name.
//! - `GET /v2/{name=…/tasks/*}` (GetTask, `responseView` query) → the Task while it exists.
//! - `DELETE /v2/{name=…/tasks/*}` (DeleteTask) → `{}`.
//! - `GET /v2/{name=projects/*/locations/*/queues/*}` (GetQueue), `POST /v2/{name}:pause`
//!   (PauseQueue) and `POST /v2/{name}:resume` (ResumeQueue) → the Queue: `name`,
//!   `rateLimits`, `retryConfig` and `state` (RUNNING or PAUSED).
//! - Enums answer as numbers when the query asks `enum-encoding=int` (the Rust client always
//!   does), as names otherwise; both are accepted in requests.
//! - Errors are google.rpc bodies: 400 INVALID_ARGUMENT (malformed request, task or page
//!   token), 404 NOT_FOUND (unknown queue, task or path), 409 ALREADY_EXISTS (name taken or
//!   used too recently).
//!
//! # Behaviour, each rule with its source (the sources sit next to the code too)
//! - Queues come from [`TasksFake::create_queue`]; [`QueueConfig::default`] is what
//!   `gcloud tasks queues describe` shows for a new queue (cloud.google.com/tasks/docs/configuring-queues):
//!   500/s, 1000 concurrent, 100 attempts, backoff 0.1 s to 3600 s, 16 doublings.
//! - Task names: server-generated when absent ("the system will generate a random unique task
//!   id", CreateTaskRequest.task); a name that exists, or whose task succeeded, was deleted or
//!   gave up within the de-duplication window answers ALREADY_EXISTS. Google: "up to 24 hours"
//!   (CreateTaskRequest.task in google/cloud/tasks/v2/cloudtasks.proto; older pages said about
//!   an hour); the fake keeps 24 h, see [`TasksFake::set_dedup_window`].
//! - INVALID_ARGUMENT for: a name outside the queue or a task id other than
//!   `[A-Za-z0-9_-]{1,500}` (Task.name); no `httpRequest`; a URL not starting `http://` or
//!   `https://` (HttpRequest.url); a body with a method other than POST, PUT or PATCH
//!   (HttpRequest.body); an `oidcToken` without `serviceAccountEmail`; a `dispatchDeadline`
//!   outside 15 s to 30 min; a task over 100 KB (CreateTask: URL, headers and body counted,
//!   102,400 bytes); unknown JSON fields.
//! - Rate: a token bucket of [`QueueConfig::burst_size`] tokens refilled at
//!   `max_dispatches_per_second` (RateLimits.max_burst_size, google/cloud/tasks/v2/queue.proto);
//!   at most `max_concurrent_dispatches` attempts in flight (RateLimits). Retries take tokens
//!   like first attempts ("regardless of whether the dispatch is a first task attempt or a
//!   retry", RateLimits).
//! - `scheduleTime` in the future delays the first attempt until both the monotonic and the
//!   wall clock have reached it; past or absent means now.
//! - No order: tasks ready at the same time go in an order a seeded RNG draws (ListTasks: "The
//!   tasks may be returned in any order"; nothing orders dispatch beyond `scheduleTime`). One
//!   seed ([`TasksFake::set_seed`]) gives one sequence of draws.
//! - At least once: "In some rare circumstances, multiple task execution is possible"
//!   (cloud.google.com/tasks/docs/concepts). [`TasksFake::set_duplicate_rate`] (0 by default)
//!   delivers that share of attempts twice at once: the same headers (name, counts, ETA) and
//!   body. The queue counts the attempt once: the duplicate takes no token or concurrency slot,
//!   is not in `dispatchCount`, and its answer changes nothing.
//! - PauseQueue stops dispatching ("Tasks can still be added when the queue is paused");
//!   ResumeQueue dispatches what waited ([`TasksFake::pause`], [`TasksFake::resume`]).
//!   Attempts in flight finish.
//! - Each attempt sends the task's method, headers and body to its URL with the service's own
//!   headers (`X-CloudTasks-QueueName`, `-TaskName`, `-TaskRetryCount`,
//!   `-TaskExecutionCount`, `-TaskETA`; on retries `-TaskPreviousResponse` when there was an
//!   answer and `-TaskRetryReason`; `User-Agent: Google-Cloud-Tasks`) and, for an
//!   `oidcToken`, `Authorization: Bearer` with a token from
//!   [`IssuerKeys::mint_for`](crate::IssuerKeys::mint_for)`(serviceAccountEmail, audience)`;
//!   the audience defaults to the URL (OidcToken.audience).
//! - `dispatchDeadline` (default 10 min, allowed 15 s to 30 min, Task.dispatch_deadline) bounds
//!   each attempt; no answer by then counts as a failure with status 0.
//! - 2xx: the task is done and removed. Anything else, or no answer: retried after the
//!   RetryConfig backoff (min_backoff doubling max_doublings times, then growing linearly, capped
//!   at max_backoff: RetryConfig.max_doublings), until `max_attempts` (and
//!   `max_retry_duration`, when set) are both reached; then the task is deleted and listed by
//!   [`TasksFake::given_up`].
//! - 429 and 503: Google says Cloud Tasks "will use a higher backoff rate" and considers
//!   `Retry-After` (HttpRequest, google/cloud/tasks/v2/target.proto). The fake waits at least
//!   `Retry-After` (seconds or an HTTP-date) before that task's retry; it does not lower the
//!   queue's rate, as no amount is documented.
//!
//! # Not modelled
//! App Engine tasks, queue-level routing and overrides (HttpTarget), CreateQueue,
//! UpdateQueue, DeleteQueue and ListQueues over REST (queues come from
//! [`TasksFake::create_queue`]), PurgeQueue, RunTask, BufferTask, the DISABLED state,
//! task-level `retryConfig`, `oauthToken` (accepted, no header), https targets (an attempt to
//! one gets no answer), redirects (3xx is a failure), the slow ramp-up of a new, idle or
//! resumed queue and system throttling after errors, duplicates that arrive later than their
//! attempt, the values of `X-CloudTasks-TaskRetryReason` (undocumented: the fake sends plain
//! text), `lastAttempt.responseStatus`, and IAM.

// Layout: `config` (QueueConfig), `wire` (paths, errors, enums), `json` (Task, Queue and list
// bodies), `request` (CreateTaskRequest validation), `api` (the handler), `state` (queues
// and tasks), `schedule` (what to dispatch, how attempts end), `limits` (token bucket,
// backoff), `random` (the seeded RNG), `dispatch` (the HTTP side).
mod api;
mod config;
mod dispatch;
mod json;
mod limits;
mod random;
mod request;
mod schedule;
mod state;
mod wire;

pub use config::{QueueConfig, check_queue_name};

use crate::oidc::IssuerKeys;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

type Shared = Arc<Mutex<state::State>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, state::State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// One delivery of an attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    /// The full task name.
    pub task: String,
    /// When the delivery started.
    pub at: Instant,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// The HTTP status answered; 0 while in flight, or when there was no answer.
    pub status: u16,
    /// A second delivery of the same attempt ([`TasksFake::set_duplicate_rate`]).
    pub duplicate: bool,
}

/// A task still in its queue (waiting, in flight or waiting for a retry), as
/// [`TasksFake::tasks`] shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskView {
    /// The full task name.
    pub name: String,
    /// HttpRequest.url.
    pub url: String,
    /// When the next attempt may start (`scheduleTime`; moved on by each retry).
    pub schedule_time: SystemTime,
    /// HttpRequest.body.
    pub body: Vec<u8>,
    /// Attempts dispatched so far (`dispatchCount`).
    pub dispatch_count: u32,
}

/// The running fake; the server and the dispatcher stop when this is dropped.
pub struct TasksFake {
    shared: Shared,
    wake: Arc<Notify>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    dispatcher: JoinHandle<()>,
}

impl TasksFake {
    /// Serves the fake on a free port of 127.0.0.1 (in the current tokio runtime). `keys` mint
    /// the ID tokens of tasks with an `oidcToken`; without keys such tasks go out without an
    /// `Authorization` header.
    pub async fn start(keys: Option<IssuerKeys>) -> anyhow::Result<TasksFake> {
        Self::start_on(0, keys).await
    }

    /// Serves the fake on `port` of 127.0.0.1 (0: a free one), as [`TasksFake::start`].
    pub async fn start_on(port: u16, keys: Option<IssuerKeys>) -> anyhow::Result<TasksFake> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding the Cloud Tasks fake to 127.0.0.1:{port}"))?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::default();
        let wake = Arc::new(Notify::new());
        let router = axum::Router::new()
            .fallback(api::handle)
            .with_state((shared.clone(), wake.clone()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let dispatcher = tokio::spawn(dispatch::run(shared.clone(), wake.clone(), keys));
        Ok(TasksFake {
            shared,
            wake,
            addr,
            server,
            dispatcher,
        })
    }

    /// `http://127.0.0.1:PORT`, for the client's `ClientBuilder::with_endpoint` (with
    /// anonymous credentials) and `CLOUD_TASKS_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates the queue `projects/P/locations/L/queues/Q`, or changes the limits of an
    /// existing one (its tasks and state stay; its bucket starts full again).
    ///
    /// # Panics
    /// If the name is not a queue name, or the limits are outside what Cloud Tasks accepts
    /// ([`QueueConfig::check`]).
    pub fn create_queue(&self, name: &str, config: QueueConfig) {
        if let Err(e) = config::check_queue_name(name).and_then(|()| config.check()) {
            panic!("create_queue({name:?}): {e}");
        }
        lock(&self.shared).put_queue(name, config, Instant::now());
        self.wake.notify_one();
    }

    /// PauseQueue: the queue dispatches nothing until [`TasksFake::resume`], and still
    /// accepts tasks.
    ///
    /// # Panics
    /// If there is no such queue.
    pub fn pause(&self, queue: &str) {
        self.set_paused(queue, true);
    }

    /// ResumeQueue: the queue dispatches again, starting with what waited.
    ///
    /// # Panics
    /// If there is no such queue.
    pub fn resume(&self, queue: &str) {
        self.set_paused(queue, false);
    }

    fn set_paused(&self, queue: &str, paused: bool) {
        if lock(&self.shared).set_paused(queue, paused).is_err() {
            panic!("no queue {queue:?}: create it with create_queue first");
        }
        self.wake.notify_one();
    }

    /// Every delivery so far, duplicates included, in the order they started.
    pub fn dispatches(&self) -> Vec<Dispatch> {
        lock(&self.shared).dispatches.clone()
    }

    /// Tasks of `queue` not done yet: waiting, in flight or waiting for a retry.
    pub fn pending(&self, queue: &str) -> usize {
        lock(&self.shared).pending(queue)
    }

    /// The tasks of `queue` not done yet, by name (none for an unknown queue).
    pub fn tasks(&self, queue: &str) -> Vec<TaskView> {
        lock(&self.shared).views(queue)
    }

    /// The names of every task CreateTask accepted so far, in order (refused duplicates are
    /// not in it).
    pub fn created(&self) -> Vec<String> {
        lock(&self.shared).created.clone()
    }

    /// Tasks deleted because their last allowed attempt failed, in order.
    pub fn given_up(&self) -> Vec<String> {
        lock(&self.shared).given_up.clone()
    }

    /// How long a used task name stays reserved (default 24 h); applies from the next
    /// CreateTask on.
    pub fn set_dedup_window(&self, window: Duration) {
        lock(&self.shared).dedup_window = window;
    }

    /// The share of attempts delivered a second time (0.0, the default, to 1.0).
    ///
    /// # Panics
    /// If `rate` is not in 0.0..=1.0.
    pub fn set_duplicate_rate(&self, rate: f64) {
        assert!(
            (0.0..=1.0).contains(&rate),
            "set_duplicate_rate({rate}): the rate is a share, from 0.0 to 1.0"
        );
        lock(&self.shared).duplicate_rate = rate;
    }

    /// Restarts the RNG that orders ready tasks and draws duplicates from `seed`.
    pub fn set_seed(&self, seed: u64) {
        lock(&self.shared).rng = random::Rng::new(seed);
    }
}

impl Drop for TasksFake {
    fn drop(&mut self) {
        self.server.abort();
        self.dispatcher.abort();
    }
}
