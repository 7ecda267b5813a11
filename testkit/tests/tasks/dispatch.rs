//! When and in what order tasks go out: scheduleTime, rate and burst, concurrency, no
//! order, duplicate deliveries, and a paused queue.

use crate::support::*;
use google_cloud_tasks_v2::model::{HttpRequest, Task};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::{QueueConfig, TasksFake};

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
async fn no_attempt_starts_before_its_schedule_time() {
    let (fake, client) = start(QueueConfig::default()).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let mut scheduled = Vec::new();
    for (i, ahead_ms) in [300u64, 150, 450].into_iter().enumerate() {
        let at = SystemTime::now() + Duration::from_millis(ahead_ms);
        let task = http_task(&format!("later{i}"), &url).set_schedule_time(timestamp(at));
        let created = create(&client, QUEUE, task).await.expect("create");
        let at = SystemTime::try_from(created.schedule_time.expect("scheduleTime"));
        scheduled.push(at.expect("schedule time"));
    }
    wait_until("all three done", || fake.pending(QUEUE) == 0).await;
    for hit in receiver.hits() {
        let id = header(&hit, "x-cloudtasks-taskname");
        let i: usize = id.trim_start_matches("later").parse().expect("task id");
        assert!(
            hit.wall >= scheduled[i],
            "{id} arrived before its scheduleTime"
        );
        // X-CloudTasks-TaskETA is that schedule time, in seconds since the epoch.
        let eta: f64 = header(&hit, "x-cloudtasks-tasketa").parse().expect("ETA");
        let want = scheduled[i]
            .duration_since(UNIX_EPOCH)
            .expect("epoch")
            .as_secs_f64();
        assert!((eta - want).abs() < 1e-5, "ETA {eta}, scheduleTime {want}");
    }
    let order: Vec<String> = receiver
        .hits()
        .iter()
        .map(|h| header(h, "x-cloudtasks-taskname").to_string())
        .collect();
    assert_eq!(order, ["later1", "later0", "later2"], "by schedule time");
}

/// Creates 20 tasks while `fake`'s queue is paused, resumes it and returns the order in which
/// they were dispatched, one at a time.
async fn order_of_twenty(seed: Option<u64>) -> Vec<String> {
    let config = QueueConfig {
        max_concurrent_dispatches: 1,
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    if let Some(seed) = seed {
        fake.set_seed(seed);
    }
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    fake.pause(QUEUE);
    for i in 0..20 {
        let task = http_task(&format!("t{i:02}"), &url);
        create(&client, QUEUE, task).await.expect("create");
    }
    fake.resume(QUEUE);
    wait_until("all twenty done", || fake.pending(QUEUE) == 0).await;
    fake.dispatches().into_iter().map(|d| d.task).collect()
}

#[tokio::test]
async fn tasks_ready_together_go_in_no_particular_order_but_one_seed_repeats_it() {
    let created: Vec<String> = (0..20).map(|i| task_name(&format!("t{i:02}"))).collect();
    let default = order_of_twenty(None).await;
    let mut sorted = default.clone();
    sorted.sort();
    assert_eq!(sorted, created, "each task once");
    assert_ne!(default, created, "not the order of creation (or of names)");
    assert_eq!(
        order_of_twenty(None).await,
        default,
        "the default seed repeats"
    );
    let other = order_of_twenty(Some(42)).await;
    assert_ne!(other, default);
    assert_eq!(order_of_twenty(Some(42)).await, other, "a seed repeats");
}

#[tokio::test]
async fn a_duplicated_attempt_carries_the_same_name_body_and_counts() {
    let (fake, client) = start(QueueConfig {
        min_backoff: Duration::from_millis(50),
        ..QueueConfig::default()
    })
    .await;
    fake.set_duplicate_rate(1.0);
    // Both deliveries of the first attempt fail, both of the second succeed.
    let receiver = Receiver::scripted(&[500, 500], Duration::from_millis(50));
    let url = receiver.serve().await;
    let request = HttpRequest::new()
        .set_url(&url)
        .set_body(b"{\"poll\":1}".as_slice());
    let task = Task::new()
        .set_name(task_name("twice"))
        .set_http_request(request);
    create(&client, QUEUE, task).await.expect("create");
    wait_until("the task done", || fake.pending(QUEUE) == 0).await;
    wait_until("every delivery answered", || {
        fake.dispatches().iter().all(|d| d.status != 0)
    })
    .await;
    let hits = receiver.hits();
    assert_eq!(hits.len(), 4, "two attempts, each delivered twice");
    assert!(hits.iter().all(|h| h.body == b"{\"poll\":1}"));
    assert_eq!(service_headers(&hits[0]), service_headers(&hits[1]));
    assert_eq!(service_headers(&hits[2]), service_headers(&hits[3]));
    let retries: Vec<&str> = hits
        .iter()
        .map(|h| header(h, "x-cloudtasks-taskretrycount"))
        .collect();
    assert_eq!(retries, ["0", "0", "1", "1"]);
    assert_eq!(header(&hits[3], "x-cloudtasks-taskname"), "twice");
    assert_eq!(header(&hits[3], "x-cloudtasks-taskpreviousresponse"), "500");
    let rows = fake.dispatches();
    let shape: Vec<(u32, bool)> = rows.iter().map(|d| (d.attempt, d.duplicate)).collect();
    assert_eq!(shape, [(1, false), (1, true), (2, false), (2, true)]);
    assert_eq!(fake.created(), [task_name("twice")]);
}

#[tokio::test]
async fn without_a_duplicate_rate_every_attempt_is_delivered_once() {
    let (fake, client) = start(QueueConfig::default()).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    run_all(&fake, &client, &url, 20).await;
    assert_eq!(receiver.hits().len(), 20);
    assert!(fake.dispatches().iter().all(|d| !d.duplicate));
}

#[tokio::test]
async fn a_paused_queue_keeps_its_tasks_and_resuming_dispatches_them_all() {
    let config = QueueConfig {
        max_dispatches_per_second: 50.0,
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    fake.pause(QUEUE);
    for i in 0..3 {
        create(&client, QUEUE, http_task(&format!("held{i}"), &url))
            .await
            .expect("create");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.hits().is_empty(), "a paused queue dispatched");
    let held = fake.tasks(QUEUE);
    assert_eq!(held.len(), 3);
    assert!(held.iter().all(|t| t.dispatch_count == 0));
    fake.resume(QUEUE);
    wait_until("the held tasks done", || fake.pending(QUEUE) == 0).await;
    assert_eq!(receiver.hits().len(), 3);
    assert!(fake.tasks(QUEUE).is_empty());
}

#[tokio::test]
async fn pausing_lets_the_attempt_in_flight_finish_and_holds_its_retry() {
    let config = QueueConfig {
        min_backoff: Duration::from_millis(50),
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver::scripted(&[500], Duration::from_millis(200));
    let url = receiver.serve().await;
    create(&client, QUEUE, http_task("slow", &url))
        .await
        .expect("create");
    wait_until("the first attempt under way", || {
        receiver.in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    fake.pause(QUEUE);
    wait_until("the first attempt answered", || {
        fake.dispatches()[0].status == 500
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.dispatches().len(), 1, "the retry waits for resume");
    assert_eq!(fake.tasks(QUEUE)[0].dispatch_count, 1);
    let resumed = Instant::now();
    fake.resume(QUEUE);
    wait_until("the retry done", || fake.pending(QUEUE) == 0).await;
    assert!(fake.dispatches()[1].at >= resumed);
}

#[tokio::test]
#[should_panic(expected = "no queue")]
async fn pausing_an_unknown_queue_is_a_test_bug() {
    let fake = TasksFake::start(None).await.expect("start");
    fake.pause("projects/p/locations/l/queues/never-created");
}
