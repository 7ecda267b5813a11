//! A faithful fake of Cloud Tasks v2 (HTTP targets) for the official `google-cloud-tasks-v2`
//! client: queues with rate limits, concurrency and retries that dispatch HTTP tasks to
//! servers on 127.0.0.1. Cloud Tasks has no emulator.
//!
//! # Surface (the bindings of the client's `transport.rs`)
//! - `POST /v2/{parent=projects/*/locations/*/queues/*}/tasks` (CreateTask), body
//!   `{"task": Task, "responseView": …}` → the Task.
//! - `GET /v2/{name=…/tasks/*}` (GetTask, `responseView` query) → the Task while it exists.
//! - `DELETE /v2/{name=…/tasks/*}` (DeleteTask) → `{}`.
//! - Enums answer as numbers when the query asks `enum-encoding=int` (the Rust client always
//!   does), as names otherwise; both are accepted in requests.
//! - Errors are google.rpc bodies: 400 INVALID_ARGUMENT (malformed request or task), 404
//!   NOT_FOUND (unknown queue, task or path), 409 ALREADY_EXISTS (name taken or used too
//!   recently).
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
//!   outside 15 s to 30 min; a task over 100 KB (CreateTask); unknown JSON fields.
//! - Rate: a token bucket of [`QueueConfig::burst_size`] tokens refilled at
//!   `max_dispatches_per_second` (RateLimits.max_burst_size, google/cloud/tasks/v2/queue.proto);
//!   at most `max_concurrent_dispatches` attempts in flight (RateLimits). Retries take tokens
//!   like first attempts ("regardless of whether the dispatch is a first task attempt or a
//!   retry", RateLimits).
//! - `scheduleTime` in the future delays the first attempt; past or absent means now.
//! - Each attempt sends the task's method, headers and body to its URL with the service's own
//!   headers (`X-CloudTasks-*`, `User-Agent: Google-Cloud-Tasks`) and, for an
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
//!   `Retry-After` seconds before that task's retry; it does not lower the queue's rate, as no
//!   amount is documented.
//!
//! # Not modelled
//! App Engine tasks, queue-level routing and overrides (HttpTarget), the queue admin API,
//! pause/purge, RunTask, BufferTask, task-level `retryConfig`, `oauthToken` (accepted, no
//! header), https targets (an attempt to one gets no answer), redirects (3xx is a failure), the
//! slow ramp-up of a new or idle queue and system throttling after errors, dispatch order
//! (Cloud Tasks promises none; the fake goes by schedule time, then creation), duplicate
//! deliveries, `lastAttempt.responseStatus`, and IAM.

// Layout: `wire` (paths, errors, Task JSON), `request` (CreateTaskRequest validation),
// `state` (queues and tasks), `limits` (token bucket, backoff), `dispatch` (the HTTP side).
mod dispatch;
mod limits;
mod request;
mod state;
mod wire;

use crate::oidc::IssuerKeys;
use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State as Extract};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use request::CreateTask;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use wire::{Encoding, Failure, Route};

type Shared = Arc<Mutex<state::State>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, state::State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A queue's rate limits and retry configuration (Queue.rate_limits, Queue.retry_config).
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// RateLimits.max_dispatches_per_second: the refill rate of the token bucket (at most 500).
    pub max_dispatches_per_second: f64,
    /// RateLimits.max_concurrent_dispatches: attempts in flight at once (at most 5,000).
    pub max_concurrent_dispatches: u32,
    /// RetryConfig.min_backoff: the wait before the first retry.
    pub min_backoff: Duration,
    /// RetryConfig.max_backoff: the longest wait between attempts.
    pub max_backoff: Duration,
    /// RetryConfig.max_doublings: how many times the wait doubles before growing linearly.
    pub max_doublings: u32,
    /// RetryConfig.max_attempts, the first attempt included; -1 is unlimited.
    pub max_attempts: i32,
    /// RetryConfig.max_retry_duration, from the first attempt; zero is unlimited.
    pub max_retry_duration: Duration,
    /// RateLimits.max_burst_size is output only and picked by Cloud Tasks; `None` takes
    /// [`QueueConfig::burst_size`]'s documented floor, `Some` stands for a larger pick (the
    /// worst case for a caller that must stay under a quota).
    pub max_burst_size: Option<u32>,
}

impl Default for QueueConfig {
    /// The values a queue created without settings shows
    /// (cloud.google.com/tasks/docs/configuring-queues, `gcloud tasks queues describe`).
    fn default() -> QueueConfig {
        QueueConfig {
            max_dispatches_per_second: 500.0,
            max_concurrent_dispatches: 1000,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3600),
            max_doublings: 16,
            max_attempts: 100,
            max_retry_duration: Duration::ZERO,
            max_burst_size: None,
        }
    }
}

impl QueueConfig {
    /// The bucket size. RateLimits.max_burst_size: "Cloud Tasks automatically sets an
    /// appropriate max_burst_size based on the value of max_dispatches_per_second ... It is
    /// generally at least equal to max_dispatches_per_second but might be higher"
    /// (google/cloud/tasks/v2/queue.proto). The fake takes that floor, rounded up to a whole
    /// token, at least 1 and at most 500 (the maximum the v2beta3 reference gives), unless
    /// [`QueueConfig::max_burst_size`] picks another.
    pub fn burst_size(&self) -> u32 {
        self.max_burst_size.unwrap_or_else(|| {
            let floor = self.max_dispatches_per_second.ceil();
            floor.clamp(1.0, 500.0) as u32
        })
    }
}

/// One dispatch attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    /// The full task name.
    pub task: String,
    /// When the attempt started.
    pub at: Instant,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// The HTTP status answered; 0 while in flight, or when there was no answer.
    pub status: u16,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Cloud Tasks fake to 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::default();
        let wake = Arc::new(Notify::new());
        let router = axum::Router::new()
            .fallback(handle)
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
    /// anonymous credentials).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates the queue `projects/P/locations/L/queues/Q`, or changes the limits of an
    /// existing one (its tasks stay; its bucket starts full again).
    ///
    /// # Panics
    /// If the name is not a queue name, or the limits are outside what Cloud Tasks accepts.
    pub fn create_queue(&self, name: &str, config: QueueConfig) {
        let segments: Vec<&str> = name.split('/').collect();
        assert!(
            matches!(segments.as_slice(), ["projects", p, "locations", l, "queues", q]
                if !p.is_empty() && !l.is_empty() && !q.is_empty()),
            "create_queue: {name:?} is not projects/P/locations/L/queues/Q"
        );
        // The bounds of RateLimits and RetryConfig (queue.proto); the real API refuses others.
        let rate = config.max_dispatches_per_second;
        assert!(
            rate > 0.0 && rate <= 500.0,
            "max_dispatches_per_second {rate}"
        );
        let concurrent = config.max_concurrent_dispatches;
        assert!(
            (1..=5000).contains(&concurrent),
            "max_concurrent_dispatches"
        );
        assert!(config.max_attempts >= -1, "max_attempts must be >= -1");
        assert!(
            config.min_backoff <= config.max_backoff,
            "min_backoff > max_backoff"
        );
        lock(&self.shared).put_queue(name, config, Instant::now());
        self.wake.notify_one();
    }

    /// Every dispatch attempt so far, in the order they started.
    pub fn dispatches(&self) -> Vec<Dispatch> {
        lock(&self.shared).dispatches.clone()
    }

    /// Tasks of `queue` not done yet: waiting, in flight or waiting for a retry.
    pub fn pending(&self, queue: &str) -> usize {
        lock(&self.shared).pending(queue)
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
}

impl Drop for TasksFake {
    fn drop(&mut self) {
        self.server.abort();
        self.dispatcher.abort();
    }
}

/// The one handler behind every path: parse the route and body, apply it to the state, answer.
async fn handle(
    Extract((shared, wake)): Extract<(Shared, Arc<Notify>)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    let encoding = Encoding::from_query(uri.query());
    let answer = Route::parse(&method, uri.path()).and_then(|route| match route {
        Route::Create { parent } => {
            let body: Value = serde_json::from_slice(&body)
                .map_err(|e| Failure::Invalid(format!("Invalid JSON payload received. {e}")))?;
            let request = CreateTask::parse(&parent, &body)?;
            let name = request
                .name
                .unwrap_or_else(|| format!("{parent}/tasks/{}", generated_id()));
            let task = lock(&shared).create(&parent, name, request.spec, Instant::now())?;
            wake.notify_one();
            Ok(wire::task_json(&task, request.view, encoding))
        }
        Route::Get { queue, name } => {
            let task = lock(&shared).get(&queue, &name)?;
            let view = wire::view_from_query(uri.query());
            Ok(wire::task_json(&task, view, encoding))
        }
        Route::Delete { queue, name } => {
            lock(&shared).delete(&queue, &name, Instant::now())?;
            Ok(json!({}))
        }
    });
    match answer {
        Ok(body) => axum::Json(body).into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// A task id shaped like the ones Cloud Tasks generates (a long decimal number): a bijective
/// scramble of a process-wide counter, so ids never repeat and runs are repeatable.
fn generated_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_string()
}
