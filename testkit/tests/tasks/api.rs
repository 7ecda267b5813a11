//! The REST surface: CreateTask, GetTask, DeleteTask, ListTasks, GetQueue, PauseQueue and
//! ResumeQueue through the official client, with their errors and limits.

use crate::support::*;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::paginator::ItemPaginator as _;
use google_cloud_tasks_v2::client::CloudTasks;
use google_cloud_tasks_v2::model::queue::State;
use google_cloud_tasks_v2::model::{HttpMethod, HttpRequest, OidcToken, Task};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testkit::QueueConfig;

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
        // Task.dispatch_deadline: "The deadline must be in the interval [15 seconds, 30
        // minutes]".
        http_task("", "http://127.0.0.1:9/").set_dispatch_deadline(deadline(14)),
        http_task("", "http://127.0.0.1:9/").set_dispatch_deadline(deadline(1801)),
    ];
    for task in malformed {
        let result = create(&client, QUEUE, task.clone()).await;
        assert_eq!(code(result), Some(Code::InvalidArgument), "{task:?}");
    }
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

/// Creates five tasks `listed0..4` an hour ahead, each with body `body N`; returns that hour.
async fn five_waiting(client: &CloudTasks) -> SystemTime {
    let later = SystemTime::now() + Duration::from_secs(3600);
    for i in 0..5 {
        let request = HttpRequest::new()
            .set_url("http://127.0.0.1:9/run")
            .set_body(format!("body {i}").into_bytes());
        let task = Task::new()
            .set_name(task_name(&format!("listed{i}")))
            .set_http_request(request)
            .set_schedule_time(timestamp(later));
        create(client, QUEUE, task).await.expect("create");
    }
    later
}

fn listed_names() -> Vec<String> {
    (0..5).map(|i| task_name(&format!("listed{i}"))).collect()
}

#[tokio::test]
async fn list_tasks_pages_through_every_pending_task() {
    let (fake, client) = start(QueueConfig::default()).await;
    five_waiting(&client).await;
    let first = client
        .list_tasks()
        .set_parent(QUEUE)
        .set_page_size(2)
        .send()
        .await;
    let first = first.expect("first page");
    assert_eq!(first.tasks.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let mut items = client
        .list_tasks()
        .set_parent(QUEUE)
        .set_page_size(2)
        .by_item();
    let mut listed = Vec::new();
    while let Some(task) = items.next().await {
        listed.push(task.expect("a listed task").name);
    }
    assert_eq!(listed, listed_names());
    let bad = client
        .list_tasks()
        .set_parent(QUEUE)
        .set_page_token("not-a-token!")
        .send()
        .await;
    assert_eq!(code(bad), Some(Code::InvalidArgument));
    let empty = "projects/it-project/locations/europe-west4/queues/empty";
    fake.create_queue(empty, QueueConfig::default());
    let none = client
        .list_tasks()
        .set_parent(empty)
        .send()
        .await
        .expect("list empty");
    assert!(none.tasks.is_empty() && none.next_page_token.is_empty());
}

#[tokio::test]
async fn the_fake_shows_each_pending_task_with_its_schedule_body_and_attempts() {
    let (fake, client) = start(QueueConfig::default()).await;
    let later = five_waiting(&client).await;
    let views = fake.tasks(QUEUE);
    assert_eq!(
        views.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
        listed_names()
    );
    assert_eq!(views[3].body, b"body 3");
    assert_eq!(views[3].url, "http://127.0.0.1:9/run");
    assert_eq!(views[3].dispatch_count, 0);
    let off = views[3]
        .schedule_time
        .duration_since(later)
        .unwrap_or_default();
    assert!(
        off < Duration::from_millis(1),
        "scheduleTime moved by {off:?}"
    );
    assert!(
        fake.tasks("projects/p/locations/l/queues/unknown")
            .is_empty()
    );
}

#[tokio::test]
async fn get_queue_answers_its_rate_limits_retry_config_and_state() {
    let config = QueueConfig {
        max_dispatches_per_second: 3.5,
        max_concurrent_dispatches: 40,
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(60),
        max_doublings: 4,
        max_attempts: -1,
        ..QueueConfig::default()
    };
    let (_fake, client) = start(config).await;
    let queue = client
        .get_queue()
        .set_name(QUEUE)
        .send()
        .await
        .expect("get queue");
    assert_eq!(queue.name, QUEUE);
    assert_eq!(queue.state, State::Running);
    let limits = queue.rate_limits.expect("rateLimits");
    assert_eq!(limits.max_dispatches_per_second, 3.5);
    assert_eq!(limits.max_burst_size, 4);
    assert_eq!(limits.max_concurrent_dispatches, 40);
    let retry = queue.retry_config.expect("retryConfig");
    assert_eq!(retry.max_attempts, -1);
    assert_eq!(retry.max_doublings, 4);
    let secs = |d: Option<google_cloud_wkt::Duration>| d.map(|d| (d.seconds(), d.nanos()));
    assert_eq!(secs(retry.min_backoff), Some((0, 100_000_000)));
    assert_eq!(secs(retry.max_backoff), Some((60, 0)));
    assert_eq!(retry.max_retry_duration, None);
}

#[tokio::test]
async fn pause_and_resume_over_rest_answer_the_queue_with_its_new_state() {
    let (fake, client) = start(QueueConfig::default()).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let paused = client
        .pause_queue()
        .set_name(QUEUE)
        .send()
        .await
        .expect("pause");
    assert_eq!((paused.name.as_str(), paused.state), (QUEUE, State::Paused));
    // "Tasks can still be added when the queue is paused" (PauseQueue).
    create(&client, QUEUE, http_task("waits", &url))
        .await
        .expect("create while paused");
    let got = client
        .get_queue()
        .set_name(QUEUE)
        .send()
        .await
        .expect("get queue");
    assert_eq!(got.state, State::Paused);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.hits().is_empty(), "a paused queue dispatched");
    assert_eq!(fake.tasks(QUEUE)[0].dispatch_count, 0);
    let resumed = client
        .resume_queue()
        .set_name(QUEUE)
        .send()
        .await
        .expect("resume");
    assert_eq!(resumed.state, State::Running);
    wait_until("the waiting task done", || fake.pending(QUEUE) == 0).await;
    assert_eq!(receiver.hits().len(), 1);
}

#[tokio::test]
async fn every_method_on_a_missing_queue_answers_not_found() {
    let (_fake, client) = start(QueueConfig::default()).await;
    let missing = "projects/it-project/locations/europe-west4/queues/missing";
    let list = client.list_tasks().set_parent(missing).send().await;
    assert_eq!(code(list), Some(Code::NotFound));
    let get = client.get_queue().set_name(missing).send().await;
    assert_eq!(code(get), Some(Code::NotFound));
    let pause = client.pause_queue().set_name(missing).send().await;
    assert_eq!(code(pause), Some(Code::NotFound));
    let resume = client.resume_queue().set_name(missing).send().await;
    assert_eq!(code(resume), Some(Code::NotFound));
    let task = client
        .get_task()
        .set_name(format!("{missing}/tasks/t"))
        .send()
        .await;
    assert_eq!(code(task), Some(Code::NotFound));
}

#[tokio::test]
async fn a_task_of_100_kb_is_accepted_and_one_byte_more_is_refused() {
    let (_fake, client) = start(QueueConfig::default()).await;
    let url = "http://127.0.0.1:9/run";
    let with_body = |id: &str, len: usize| {
        let request = HttpRequest::new().set_url(url).set_body(vec![b'x'; len]);
        Task::new()
            .set_name(task_name(id))
            .set_http_request(request)
    };
    // The fake counts the URL, the headers and the body against 100 KB (102,400 bytes).
    let fits = 100 * 1024 - url.len();
    create(&client, QUEUE, with_body("fits", fits))
        .await
        .expect("a task of exactly 100 KB");
    let over = create(&client, QUEUE, with_body("over", fits + 1)).await;
    assert_eq!(code(over), Some(Code::InvalidArgument));
}
