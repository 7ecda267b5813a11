//! A waiter's own subscription (DESIGN.md §6, `publish --wait`): `publish --wait` tags its
//! requests and filters on the tag whatever the batch size, the worker carries the tag onto the
//! events, and each new waiter deletes the subscriptions of waiters that gave up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::helpers::{Knobs, SRC, TestApp, emulator, request, spawn_app};
use crate::publish::{cli, emulator_connection};

/// The subscriptions of the test's project as the emulator's REST API shows them, with
/// their filters and labels.
async fn subscriptions(app: &TestApp) -> Vec<Value> {
    list(&app.topology.project).await
}

/// The subscriptions of `project`, from the emulator's REST API.
async fn list(project: &str) -> Vec<Value> {
    let url = format!(
        "{}/v1/projects/{project}/subscriptions",
        emulator().endpoint()
    );
    let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    body["subscriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The first `copy-worker-wait-*` subscription to appear within 60 s.
async fn waiting_subscription(app: &TestApp) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let found = subscriptions(app).await.into_iter().find(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.contains("/copy-worker-wait-"))
        });
        if let Some(s) = found {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no waiting subscription appeared");
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// 20 requests with long ids would need a filter of about 1.4 KB by id (Pub/Sub allows 256
/// bytes, so the old waiter fell back to no filter at all). Tagged, the filter names only the
/// tag, and every event carries it: succeeded (watch stage), failed (with its dead letter, so
/// a replay keeps it) and rejected by the worker (request stage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_twenty_long_ids_waits_through_one_short_tag_filter_that_every_event_matches() {
    let app = spawn_app("waiter-tag", Knobs::default()).await;
    app.copies_take(Duration::from_secs(3));
    let id = |i: usize| format!("nightly-2026-11-22-pipeline-eu-model-copy-batch-{i:04}");
    let mut text: String = (0..20)
        .map(|i| request(&id(i), &format!("target-tag-{i}")) + "\n")
        .collect();
    text += r#"{"request_id":"wt-missing","source_model":"projects/src-proj/locations/us-central1/models/404404"}"#;
    text += "\n";
    // Publish accepts any https callback host; this worker allows none, so it rejects.
    text += &format!(
        r#"{{"request_id":"wt-hook","source_model":"{SRC}","callback_url":"https://hooks.example.com/done"}}"#
    );
    let started = unix_now();
    let args = ["--file", "-", "--wait", "--timeout", "90s"];
    let (run, sub) = tokio::join!(
        cli(&app, "publish", &args, Some(&text), &[]),
        waiting_subscription(&app)
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let summary = run.summary();
    for (k, n) in [
        ("requests", 22),
        ("succeeded", 20),
        ("failed", 1),
        ("rejected", 1),
    ] {
        assert_eq!(summary[k], n, "{k}: {summary}");
    }
    let name = sub["name"].as_str().unwrap();
    assert_eq!(summary["subscription"], name);
    let tag = name.rsplit("copy-worker-wait-").next().unwrap();
    assert_eq!(tag.len(), 16, "{name}");
    let filter = sub["filter"].as_str().unwrap();
    assert_eq!(filter, format!(r#"attributes.waiter = "{tag}""#));
    assert!(filter.len() <= 256, "{filter}");
    assert_eq!(sub["labels"]["copy-worker-waiter"], tag, "{sub}");
    let expires: u64 = sub["labels"]["expires"].as_str().unwrap().parse().unwrap();
    let expected = started + 90 + 3600;
    assert!(
        (expected..expected + 60).contains(&expires),
        "expires {expires}, expected about {expected}"
    );
    let events = app
        .completions()
        .wait_for(22, Duration::from_secs(60), |_| true)
        .await
        .unwrap();
    for e in &events {
        assert_eq!(e.attribute("waiter"), Some(tag), "{:?}", e.attributes);
    }
    let dead = app.dead_letter_of("wt-missing", 30).await;
    assert_eq!(dead.attribute("waiter"), Some(tag), "{:?}", dead.attributes);
    assert!(
        !subscriptions(&app).await.iter().any(|s| s["name"] == name),
        "the waiting subscription is deleted once every request has its event"
    );
}

/// A waiting subscription past its `expires` label is deleted by the next waiter; a fresh
/// one, an unlabelled one (an older waiter's) and anything not named `copy-worker-wait-*` are
/// left alone. `wait`, which follows requests it did not publish, filters on their ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_waiter_deletes_expired_waiting_subscriptions_and_keeps_the_rest() {
    let app = spawn_app("waiter-sweep", Knobs::default()).await;
    let admin = emulator_connection().subscription_admin().await.unwrap();
    let project = &app.topology.project;
    let full = |short: &str| format!("projects/{project}/subscriptions/{short}");
    let (past, future) = (
        (unix_now() - 60).to_string(),
        (unix_now() + 3600).to_string(),
    );
    let made = [
        ("copy-worker-wait-0000000000000001", Some(past.as_str())),
        ("copy-worker-wait-0000000000000002", Some(future.as_str())),
        ("copy-worker-wait-0000000000000003", None),
        ("copy-completions-ci", Some(past.as_str())),
    ];
    for (short, expires) in made {
        let mut labels = vec![("copy-worker-waiter", "0000000000000001")];
        labels.extend(expires.map(|e| ("expires", e)));
        admin
            .create_subscription()
            .set_name(full(short))
            .set_topic(format!("projects/{project}/topics/copy-completions"))
            .set_labels(labels)
            .send()
            .await
            .unwrap();
    }
    let args = ["--request-id", "nobody", "--timeout", "1s"];
    let run = cli(&app, "wait", &args, None, &[]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let expired = full(made[0].0);
    assert!(
        run.stderr.contains(&format!(
            "deleted 1 abandoned waiting subscription(s), past their waiters' timeout: {expired}"
        )),
        "{}",
        run.stderr
    );
    let left = subscriptions(&app).await;
    let names: Vec<&str> = left.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(!names.contains(&expired.as_str()), "{names:?}");
    for (short, _) in &made[1..] {
        assert!(
            names.contains(&full(short).as_str()),
            "{short} kept: {names:?}"
        );
    }
    // Its own subscription, kept for a resume, filters on the request id.
    let kept = run.summary()["subscription"].as_str().unwrap().to_owned();
    let own = left
        .iter()
        .find(|s| s["name"] == kept.as_str())
        .expect("kept");
    assert_eq!(own["filter"], r#"attributes.request_id = "nobody""#);
    assert!(own["labels"]["expires"].is_string(), "{own}");
}

/// The first subscription that appears in `waiters`, within 60 s.
async fn watch_waiters(waiters: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let subs = list(waiters).await;
        if let Some(s) = subs.into_iter().next() {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no subscription in {waiters}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--waiter-project`: the waiting subscription lives in a project of the waiters' own,
/// attached to the worker project's completions topic (Pub/Sub allows a subscription in
/// another project than its topic), so the waiters need no subscription permissions in the
/// worker project. Nothing is created among the worker's subscriptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_project_keeps_the_waiting_subscription_out_of_the_worker_project() {
    let app = spawn_app("waiter-proj", Knobs::default()).await;
    app.copies_take(Duration::from_secs(2));
    // A project id has at most 30 characters; the test's own project name may be close to it.
    let waiters = format!("waiters-{}", std::process::id());
    let before = list(&app.topology.project).await.len();
    let args = [
        "--source-model",
        SRC,
        "--destination-model-id",
        "wproj-target",
        "--request-id",
        "wproj-1",
        "--wait",
        "--timeout",
        "90s",
        "--waiter-project",
        &waiters,
    ];
    let (run, sub) = tokio::join!(
        cli(&app, "publish", &args, None, &[]),
        watch_waiters(&waiters)
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.summary()["succeeded"], 1, "{}", run.stdout);
    let name = sub["name"].as_str().unwrap();
    assert!(
        name.starts_with(&format!(
            "projects/{waiters}/subscriptions/copy-worker-wait-"
        )),
        "{name}"
    );
    let topic = format!("projects/{}/topics/copy-completions", app.topology.project);
    assert_eq!(sub["topic"], topic.as_str());
    assert_eq!(
        list(&app.topology.project).await.len(),
        before,
        "nothing created among the worker's subscriptions"
    );
    assert!(list(&waiters).await.is_empty(), "deleted on exit");
    let bad = cli(
        &app,
        "publish",
        &[
            "--source-model",
            SRC,
            "--wait",
            "--waiter-project",
            "No_Such",
        ],
        None,
        &[],
    )
    .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--waiter-project"), "{}", bad.stderr);
}
