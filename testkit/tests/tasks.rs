//! Proves that the Cloud Tasks fake behaves as Google documents it, by driving it with the
//! official `google-cloud-tasks-v2` client only, and receiving its dispatches on a small axum
//! server.

use axum::http::{HeaderMap, StatusCode};
use google_cloud_gax::error::rpc::Code;
use google_cloud_tasks_v2::client::CloudTasks;
use google_cloud_tasks_v2::model::{HttpMethod, HttpRequest, OidcToken, Task};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::pubsub::anonymous;
use testkit::{OidcIssuer, QueueConfig, TasksFake};
use tokio::net::TcpListener;

const QUEUE: &str = "projects/it-project/locations/europe-west4/queues/copies";

/// A fake with [`QUEUE`] configured as `config`, and an official client pointed at it.
async fn start(config: QueueConfig) -> (TasksFake, CloudTasks) {
    start_with_keys(config, None).await
}

async fn start_with_keys(
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

fn task_name(id: &str) -> String {
    format!("{QUEUE}/tasks/{id}")
}

/// An HTTP task named `id` (unnamed when empty) that POSTs to `url`.
fn http_task(id: &str, url: &str) -> Task {
    let task = Task::new().set_http_request(HttpRequest::new().set_url(url));
    if id.is_empty() {
        task
    } else {
        task.set_name(task_name(id))
    }
}

async fn create(client: &CloudTasks, parent: &str, task: Task) -> google_cloud_gax::Result<Task> {
    client
        .create_task()
        .set_parent(parent)
        .set_task(task)
        .send()
        .await
}

fn code<T: std::fmt::Debug>(result: google_cloud_gax::Result<T>) -> Option<Code> {
    result
        .expect_err("expected an error")
        .status()
        .map(|s| s.code)
}

/// What the receiver saw of one request.
#[derive(Clone, Debug)]
struct Hit {
    at: Instant,
    method: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A worker stand-in: answers the scripted statuses in order (then 200) after `delay`, and
/// records every request and the peak of requests in flight.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<u16>>>,
    delay: Duration,
    hits: Arc<Mutex<Vec<Hit>>>,
    in_flight: Arc<AtomicU32>,
    peak: Arc<AtomicU32>,
    /// Sent as `Retry-After` with every answer that is not 2xx.
    retry_after: Option<&'static str>,
}

impl Receiver {
    fn scripted(statuses: &[u16], delay: Duration) -> Receiver {
        Receiver {
            script: Arc::new(Mutex::new(statuses.iter().copied().collect())),
            delay,
            ..Receiver::default()
        }
    }

    /// Serves on a free port and returns the URL of `/run` on it.
    async fn serve(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/run", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn hits(&self) -> Vec<Hit> {
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
        at: Instant::now(),
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
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Creates `n` tasks for `url`, waits until all succeeded, and returns when each was
/// dispatched.
async fn run_all(fake: &TasksFake, client: &CloudTasks, url: &str, n: usize) -> Vec<Instant> {
    for i in 0..n {
        create(client, QUEUE, http_task(&format!("t{i}"), url))
            .await
            .expect("create");
    }
    wait_until("every task done", || fake.pending(QUEUE) == 0).await;
    fake.dispatches().iter().map(|d| d.at).collect()
}

fn header<'a>(hit: &'a Hit, name: &str) -> &'a str {
    let value = hit.headers.get(name);
    value.and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn created_tasks_come_back_as_stored_and_unnamed_ones_get_a_name() {
    let (fake, client) = start(QueueConfig::default()).await;
    let request = HttpRequest::new()
        .set_url("http://127.0.0.1:9/run")
        .set_http_method(HttpMethod::Put)
        .set_headers([("Content-Type", "application/json")])
        .set_body(b"{\"copy\":1}".as_slice());
    let future = SystemTime::now() + Duration::from_secs(3600);
    let task = Task::new()
        .set_name(task_name("named"))
        .set_http_request(request.clone())
        .set_schedule_time(google_cloud_wkt::Timestamp::try_from(future).expect("ts"));
    let created = create(&client, QUEUE, task).await.expect("create");
    assert_eq!(created.name, task_name("named"));
    assert_eq!(created.http_request().map(|h| h.as_ref()), Some(&request));
    let scheduled = SystemTime::try_from(created.schedule_time.expect("scheduleTime"));
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).expect("epoch").as_secs_f64();
    let off = secs(scheduled.expect("time")) - secs(future);
    assert!(off.abs() < 1e-3, "scheduleTime off by {off} s");
    assert!(created.create_time.is_some());
    assert_eq!(created.dispatch_count, 0);

    let got = client.get_task().set_name(task_name("named")).send().await;
    assert_eq!(got.expect("get").name, created.name);

    let unnamed = create(&client, QUEUE, http_task("", "http://127.0.0.1:9/run")).await;
    let generated = unnamed.expect("create unnamed").name;
    let id = generated
        .strip_prefix(&format!("{QUEUE}/tasks/"))
        .expect("in queue");
    assert!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        "{id}"
    );
    assert_eq!(fake.pending(QUEUE), 2);
}

#[tokio::test]
async fn a_name_in_use_or_deleted_recently_answers_already_exists() {
    let (fake, client) = start(QueueConfig::default()).await;
    let future = SystemTime::now() + Duration::from_secs(3600);
    let later = google_cloud_wkt::Timestamp::try_from(future).expect("ts");
    let task = http_task("dup", "http://127.0.0.1:9/run").set_schedule_time(later);
    create(&client, QUEUE, task.clone()).await.expect("first");
    assert_eq!(
        code(create(&client, QUEUE, task.clone()).await),
        Some(Code::AlreadyExists)
    );
    let deleted = client.delete_task().set_name(task_name("dup")).send().await;
    deleted.expect("delete");
    assert_eq!(fake.pending(QUEUE), 0);
    let get = client.get_task().set_name(task_name("dup")).send().await;
    assert_eq!(code(get), Some(Code::NotFound));
    assert_eq!(
        code(create(&client, QUEUE, task.clone()).await),
        Some(Code::AlreadyExists)
    );
    // Once the window has passed the name is free again.
    fake.set_dedup_window(Duration::ZERO);
    create(&client, QUEUE, task)
        .await
        .expect("reuse after window");
    assert_eq!(fake.created(), [task_name("dup"), task_name("dup")]);
}

#[tokio::test]
async fn unknown_queues_and_malformed_tasks_are_refused_with_their_codes() {
    let (_fake, client) = start(QueueConfig::default()).await;
    let elsewhere = "projects/it-project/locations/europe-west4/queues/missing";
    let task = Task::new().set_http_request(HttpRequest::new().set_url("http://127.0.0.1:9/"));
    assert_eq!(
        code(create(&client, elsewhere, task).await),
        Some(Code::NotFound)
    );
    let get_body = HttpRequest::new()
        .set_url("http://127.0.0.1:9/")
        .set_http_method(HttpMethod::Get)
        .set_body(b"x".as_slice());
    let malformed = [
        Task::new().set_http_request(get_body),
        Task::new().set_http_request(HttpRequest::new().set_url("ftp://x")),
        http_task("bad.id", "http://127.0.0.1:9/"),
        Task::new()
            .set_name(format!("{elsewhere}/tasks/t"))
            .set_http_request(HttpRequest::new().set_url("http://127.0.0.1:9/")),
        Task::new().set_http_request(
            HttpRequest::new()
                .set_url("http://127.0.0.1:9/")
                .set_oidc_token(OidcToken::new()),
        ),
    ];
    for task in malformed {
        let result = create(&client, QUEUE, task.clone()).await;
        assert_eq!(code(result), Some(Code::InvalidArgument), "{task:?}");
    }
}

#[tokio::test]
async fn dispatches_after_the_burst_are_spaced_by_the_rate() {
    let config = QueueConfig {
        max_dispatches_per_second: 5.0,
        ..QueueConfig::default()
    };
    assert_eq!(config.burst_size(), 5);
    let (fake, client) = start(config).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let at = run_all(&fake, &client, &url, 9).await;
    assert_eq!(at.len(), 9);
    // The full bucket lets 5 go at once (the tasks arrive over a few milliseconds) ...
    assert!(at[4] - at[0] < Duration::from_millis(150), "{at:?}");
    // ... then one token every 200 ms.
    for pair in at[4..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(180), "gap {gap:?} in {at:?}");
        assert!(gap < Duration::from_millis(400), "gap {gap:?} in {at:?}");
    }
    assert_eq!(receiver.hits().len(), 9);
}

#[tokio::test]
async fn no_more_than_max_concurrent_dispatches_are_in_flight() {
    let config = QueueConfig {
        max_concurrent_dispatches: 2,
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver::scripted(&[], Duration::from_millis(250));
    let url = receiver.serve().await;
    let started = Instant::now();
    run_all(&fake, &client, &url, 6).await;
    assert_eq!(receiver.peak.load(Ordering::SeqCst), 2);
    assert_eq!(receiver.hits().len(), 6);
    assert!(started.elapsed() >= Duration::from_millis(750));
}

#[tokio::test]
async fn failures_are_retried_with_doubling_backoff_until_a_success() {
    let config = QueueConfig {
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver::scripted(&[503, 503, 503], Duration::ZERO);
    let url = receiver.serve().await;
    create(&client, QUEUE, http_task("retry", &url))
        .await
        .expect("create");
    wait_until("a success", || fake.pending(QUEUE) == 0).await;
    let dispatches = fake.dispatches();
    let statuses: Vec<u16> = dispatches.iter().map(|d| d.status).collect();
    assert_eq!(statuses, [503, 503, 503, 200]);
    let attempts: Vec<u32> = dispatches.iter().map(|d| d.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    let gaps: Vec<Duration> = dispatches.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, want_ms) in gaps.iter().zip([100, 200, 400]) {
        let want = Duration::from_millis(want_ms);
        assert!(
            *gap >= want && *gap < want + Duration::from_millis(300),
            "{gaps:?}"
        );
    }
    let hits = receiver.hits();
    let retries: Vec<&str> = hits
        .iter()
        .map(|h| header(h, "x-cloudtasks-taskretrycount"))
        .collect();
    assert_eq!(retries, ["0", "1", "2", "3"]);
    // 5xx answers never reached the execution phase.
    assert_eq!(header(&hits[3], "x-cloudtasks-taskexecutioncount"), "0");
    assert_eq!(header(&hits[3], "x-cloudtasks-taskpreviousresponse"), "503");
    // A task done keeps its name reserved.
    let again = create(&client, QUEUE, http_task("retry", &url)).await;
    assert_eq!(code(again), Some(Code::AlreadyExists));
}

#[tokio::test]
async fn a_task_is_deleted_after_its_last_allowed_attempt_fails() {
    let config = QueueConfig {
        min_backoff: Duration::from_millis(20),
        max_attempts: 3,
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver::scripted(&[500; 10], Duration::ZERO);
    let url = receiver.serve().await;
    // No server on this port: the attempts get no answer at all.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let nowhere = format!("http://{}/run", closed.local_addr().expect("addr"));
    drop(closed);
    create(&client, QUEUE, http_task("failing", &url))
        .await
        .expect("create");
    create(&client, QUEUE, http_task("unanswered", &nowhere))
        .await
        .expect("create");
    wait_until("both given up", || fake.given_up().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dispatches = fake.dispatches();
    let statuses = |task: &str| -> Vec<u16> {
        let name = task_name(task);
        let rows = dispatches.iter().filter(|d| d.task == name);
        rows.map(|d| d.status).collect()
    };
    assert_eq!(statuses("failing"), [500, 500, 500]);
    assert_eq!(statuses("unanswered"), [0, 0, 0]);
    assert_eq!(fake.pending(QUEUE), 0);
    let get = client
        .get_task()
        .set_name(task_name("failing"))
        .send()
        .await;
    assert_eq!(code(get), Some(Code::NotFound));
    // A task that gave up keeps its name reserved too.
    let again = create(&client, QUEUE, http_task("failing", &url)).await;
    assert_eq!(code(again), Some(Code::AlreadyExists));
}

#[tokio::test]
async fn attempts_carry_the_cloud_tasks_headers_and_a_verifiable_oidc_token() {
    let issuer = OidcIssuer::start("unused", "unused@example.com")
        .await
        .expect("issuer");
    let (fake, client) = start_with_keys(QueueConfig::default(), Some(issuer.keys())).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let email = "tasks-invoker@it-project.iam.gserviceaccount.com";
    let request = HttpRequest::new()
        .set_url(&url)
        .set_headers([
            ("Content-Type", "application/json"),
            ("User-Agent", "mine"),
            ("X-CloudTasks-TaskName", "forged"),
            ("X-Copy", "kept"),
        ])
        .set_body(b"{\"copy\":1}".as_slice())
        .set_oidc_token(OidcToken::new().set_service_account_email(email));
    let task = Task::new()
        .set_name(task_name("headers"))
        .set_http_request(request);
    create(&client, QUEUE, task).await.expect("create");
    wait_until("a success", || fake.pending(QUEUE) == 0).await;
    let hits = receiver.hits();
    let hit = &hits[0];
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.body, b"{\"copy\":1}");
    assert_eq!(header(hit, "x-cloudtasks-queuename"), "copies");
    assert_eq!(header(hit, "x-cloudtasks-taskname"), "headers");
    assert_eq!(header(hit, "x-cloudtasks-taskretrycount"), "0");
    assert_eq!(header(hit, "x-cloudtasks-taskexecutioncount"), "0");
    assert_eq!(header(hit, "user-agent"), "Google-Cloud-Tasks");
    assert_eq!(header(hit, "content-type"), "application/json");
    assert_eq!(header(hit, "x-copy"), "kept");
    let eta: f64 = header(hit, "x-cloudtasks-tasketa").parse().expect("ETA");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("now");
    assert!((now.as_secs_f64() - eta).abs() < 5.0, "ETA {eta}");
    let token = header(hit, "authorization")
        .strip_prefix("Bearer ")
        .expect("bearer token");
    let claims = issuer.keys().verify(token).expect("valid token");
    assert_eq!(claims["email"], email);
    // OidcToken.audience defaults to the task's URL.
    assert_eq!(claims["aud"], url.as_str());
}

#[tokio::test]
async fn a_future_schedule_time_delays_the_first_attempt() {
    let (fake, client) = start(QueueConfig::default()).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let created = Instant::now();
    let at = SystemTime::now() + Duration::from_millis(600);
    let task = http_task("later", &url)
        .set_schedule_time(google_cloud_wkt::Timestamp::try_from(at).expect("ts"));
    create(&client, QUEUE, task).await.expect("create");
    wait_until("a success", || fake.pending(QUEUE) == 0).await;
    let waited = receiver.hits()[0].at - created;
    assert!(waited >= Duration::from_millis(550), "{waited:?}");
}

#[tokio::test]
async fn a_larger_burst_size_lets_that_many_go_at_once() {
    let config = QueueConfig {
        max_dispatches_per_second: 2.0,
        max_burst_size: Some(4),
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let at = run_all(&fake, &client, &url, 5).await;
    assert!(at[3] - at[0] < Duration::from_millis(150), "{at:?}");
    assert!(at[4] - at[3] >= Duration::from_millis(450), "{at:?}");
}

#[tokio::test]
async fn retry_after_on_a_503_holds_the_retry_back() {
    let config = QueueConfig {
        min_backoff: Duration::from_millis(100),
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver {
        retry_after: Some("1"),
        ..Receiver::scripted(&[503], Duration::ZERO)
    };
    let url = receiver.serve().await;
    create(&client, QUEUE, http_task("after", &url))
        .await
        .expect("create");
    wait_until("a success", || fake.pending(QUEUE) == 0).await;
    let dispatches = fake.dispatches();
    let gap = dispatches[1].at - dispatches[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
}

#[tokio::test]
async fn get_task_shows_the_attempts_so_far() {
    let config = QueueConfig {
        min_backoff: Duration::from_secs(30),
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver::scripted(&[500], Duration::ZERO);
    let url = receiver.serve().await;
    let created = create(&client, QUEUE, http_task("counted", &url))
        .await
        .expect("create");
    assert_eq!((created.dispatch_count, created.response_count), (0, 0));
    wait_until("one answered attempt", || {
        fake.dispatches().first().is_some_and(|d| d.status == 500)
    })
    .await;
    let task = client
        .get_task()
        .set_name(task_name("counted"))
        .send()
        .await;
    let task = task.expect("get");
    assert_eq!((task.dispatch_count, task.response_count), (1, 1));
    assert!(
        task.first_attempt
            .is_some_and(|a| a.dispatch_time.is_some())
    );
    let last = task.last_attempt.expect("lastAttempt");
    assert!(last.response_time.is_some());
    // The retry waits for min_backoff: scheduleTime moved about 30 s ahead.
    let scheduled = SystemTime::try_from(task.schedule_time.expect("scheduleTime"));
    let ahead = scheduled.expect("time").duration_since(SystemTime::now());
    assert!(ahead.expect("in the future") > Duration::from_secs(25));
    assert_eq!(fake.pending(QUEUE), 1);
}
