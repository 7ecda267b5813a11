//! What the tests share: a fake with one queue and an official client pointed at it, task
//! builders, and a [`Receiver`] that stands in for the worker.

use axum::http::{HeaderMap, StatusCode};
use google_cloud_gax::error::rpc::Code;
use google_cloud_tasks_v2::client::CloudTasks;
use google_cloud_tasks_v2::model::{HttpRequest, Task};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use testkit::pubsub::anonymous;
use testkit::{QueueConfig, TasksFake};
use tokio::net::TcpListener;

pub const QUEUE: &str = "projects/it-project/locations/europe-west4/queues/copies";

/// A fake with [`QUEUE`] configured as `config`, and an official client pointed at it.
pub async fn start(config: QueueConfig) -> (TasksFake, CloudTasks) {
    start_with_keys(config, None).await
}

pub async fn start_with_keys(
    config: QueueConfig,
    keys: Option<testkit::IssuerKeys>,
) -> (TasksFake, CloudTasks) {
    let fake = TasksFake::start(keys).await.expect("start fake");
    fake.create_queue(QUEUE, config);
    let client = CloudTasks::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(anonymous())
        .build()
        .await
        .expect("build client");
    (fake, client)
}

pub fn task_name(id: &str) -> String {
    format!("{QUEUE}/tasks/{id}")
}

/// An HTTP task named `id` (unnamed when empty) that POSTs to `url`.
pub fn http_task(id: &str, url: &str) -> Task {
    let task = Task::new().set_http_request(HttpRequest::new().set_url(url));
    if id.is_empty() {
        task
    } else {
        task.set_name(task_name(id))
    }
}

/// `at` as the client's timestamp.
pub fn timestamp(at: SystemTime) -> google_cloud_wkt::Timestamp {
    google_cloud_wkt::Timestamp::try_from(at).expect("timestamp")
}

/// A dispatch deadline of `secs` seconds.
pub fn deadline(secs: u64) -> google_cloud_wkt::Duration {
    google_cloud_wkt::Duration::try_from(Duration::from_secs(secs)).expect("duration")
}

pub async fn create(
    client: &CloudTasks,
    parent: &str,
    task: Task,
) -> google_cloud_gax::Result<Task> {
    client
        .create_task()
        .set_parent(parent)
        .set_task(task)
        .send()
        .await
}

pub fn code<T: std::fmt::Debug>(result: google_cloud_gax::Result<T>) -> Option<Code> {
    result
        .expect_err("expected an error")
        .status()
        .map(|s| s.code)
}

/// What the receiver saw of one request.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The wall clock at arrival, to compare with `scheduleTime`.
    pub wall: SystemTime,
    pub method: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A worker stand-in: answers the scripted statuses in order (then 200) after `delay`, and
/// records every request and the peak of requests in flight.
#[derive(Clone, Default)]
pub struct Receiver {
    pub script: Arc<Mutex<VecDeque<u16>>>,
    pub delay: Duration,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    pub in_flight: Arc<AtomicU32>,
    pub peak: Arc<AtomicU32>,
    /// Sent as `Retry-After` with every answer that is not 2xx.
    pub retry_after: Option<&'static str>,
}

impl Receiver {
    pub fn scripted(statuses: &[u16], delay: Duration) -> Receiver {
        Receiver {
            script: Arc::new(Mutex::new(statuses.iter().copied().collect())),
            delay,
            ..Receiver::default()
        }
    }

    /// Serves on a free port and returns the URL of `/run` on it.
    pub async fn serve(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/run", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }
}

async fn receive(
    axum::extract::State(receiver): axum::extract::State<Receiver>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap) {
    let hit = Hit {
        wall: SystemTime::now(),
        method: method.to_string(),
        headers,
        body: body.to_vec(),
    };
    receiver.hits.lock().expect("hits").push(hit);
    let now = receiver.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    receiver.peak.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(receiver.delay).await;
    receiver.in_flight.fetch_sub(1, Ordering::SeqCst);
    let status = receiver.script.lock().expect("script").pop_front();
    let status = StatusCode::from_u16(status.unwrap_or(200)).expect("status");
    let mut headers = HeaderMap::new();
    if let Some(after) = receiver.retry_after.filter(|_| !status.is_success()) {
        headers.insert("retry-after", after.parse().expect("header"));
    }
    (status, headers)
}

/// Waits until `done`, failing after 5 s.
pub async fn wait_until(what: &str, done: impl Fn() -> bool) {
    wait_up_to(Duration::from_secs(5), what, done).await
}

/// Waits until `done`, failing after `limit`.
pub async fn wait_up_to(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Creates `n` tasks for `url`, waits until all succeeded, and returns when each was
/// dispatched.
pub async fn run_all(fake: &TasksFake, client: &CloudTasks, url: &str, n: usize) -> Vec<Instant> {
    for i in 0..n {
        create(client, QUEUE, http_task(&format!("t{i}"), url))
            .await
            .expect("create");
    }
    wait_until("every task done", || fake.pending(QUEUE) == 0).await;
    fake.dispatches().iter().map(|d| d.at).collect()
}

pub fn header<'a>(hit: &'a Hit, name: &str) -> &'a str {
    let value = hit.headers.get(name);
    value.and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// The `X-CloudTasks-*` headers of `hit`, sorted, to compare two deliveries.
pub fn service_headers(hit: &Hit) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = hit
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-cloudtasks-"))
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    out.sort();
    out
}
