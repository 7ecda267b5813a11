//! Results that can be looked up later (DESIGN.md §6, §9): `status` and `wait` seek their new
//! subscription back in time, so an event published before they started is found, as long as
//! `copy-completions` retains it (topic message retention, set in terraform/pubsub.tf).
//!
//! The emulator supports both halves, which these tests rely on and pin down: a topic created
//! with `message_retention_duration`, and Seek to a time, which with topic retention marks
//! unacknowledged the messages published after that time, even before the subscription
//! existed; without topic retention it finds none of those.

use std::time::Duration;

use serde_json::Value;

use testkit::pubsub::{Inbox, TopologyOptions};

use crate::bin;
use crate::cli_input::{sigterm, spawn_cli};
use crate::helpers::{Knobs, SRC, TestApp, request, spawn_app};
use crate::publish::cli;

/// A deployment whose `copy-completions` retains a day of messages, as Terraform's retains
/// seven (google.pubsub.v1.Topic.message_retention_duration), and an inbox on it. The
/// emulator retains only for a topic created so: UpdateTopic stores the field, but what is
/// published afterwards is still not retained (DESIGN.md §9).
async fn retaining_app(name: &str) -> (TestApp, Inbox) {
    let knobs = Knobs {
        topology: TopologyOptions {
            create_completions_topic: false,
            ..TopologyOptions::default()
        },
        ..Knobs::default()
    };
    let app = spawn_app(name, knobs).await;
    app.topology
        .topic_admin()
        .create_topic()
        .set_name(app.topology.topic("copy-completions"))
        .set_message_retention_duration(google_cloud_wkt::Duration::clamp(86_400, 0))
        .send()
        .await
        .expect("a topic with retention");
    app.topology
        .create_pull_subscription("seen-completions", "copy-completions")
        .await
        .unwrap();
    let seen = Inbox::open(&app.topology, "seen-completions")
        .await
        .unwrap();
    (app, seen)
}

/// Waits until the completion event of `id` is out, before any command runs.
async fn completed(seen: &Inbox, id: &str) {
    seen.of_request(id, 1, Duration::from_secs(60))
        .await
        .expect("the completion event");
}

fn events_of(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("status").is_some_and(Value::is_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_finds_an_event_published_before_it_started() {
    let (app, seen) = retaining_app("look-status").await;
    app.publish(&request("look-1", "target-look-1")).await;
    completed(&seen, "look-1").await;
    let before = app.subscriptions().await;
    let run = cli(&app, "status", &["look-1", "look-none"], None, &[]).await;
    assert_eq!(run.code, 3, "look-none has no event: {}", run.stderr);
    let events = events_of(&run.stdout);
    assert_eq!(events.len(), 1, "{}", run.stdout);
    assert_eq!(
        (&events[0]["request_id"], &events[0]["status"]),
        (&Value::from("look-1"), &Value::from("succeeded"))
    );
    let last: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    let s = &last["status"];
    assert_eq!(s["succeeded"], 1, "{last}");
    assert_eq!(s["not_found"], serde_json::json!(["look-none"]));
    assert_eq!(
        app.subscriptions().await,
        before,
        "its subscription is deleted"
    );
    // Every request found and succeeded: exit 0.
    let run = cli(&app, "status", &["look-1"], None, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// `publish > published.jsonl`, the copy ends, then `wait --file published.jsonl`: the wait
/// goes back to the publish time and finds the event instead of waiting until its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_on_publish_output_finds_an_event_published_before_it_started() {
    let (app, seen) = retaining_app("look-wait").await;
    let args = ["--source-model", SRC, "--request-id", "look-w1"];
    let published = cli(&app, "publish", &args, None, &[]).await;
    assert_eq!(published.code, 0, "{}", published.stderr);
    assert!(
        published.stdout.contains("\"published_at\":"),
        "{}",
        published.stdout
    );
    completed(&seen, "look-w1").await;
    let wait = ["--file", "-", "--timeout", "60s"];
    let run = cli(&app, "wait", &wait, Some(&published.stdout), &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let events = events_of(&run.stdout);
    assert_eq!(events.len(), 1, "{}", run.stdout);
    assert_eq!(events[0]["request_id"], "look-w1");
    assert!(
        run.stderr.contains("events published since"),
        "{}",
        run.stderr
    );
    // By id alone, --since (default 1h) reaches it too.
    let run = cli(&app, "wait", &["--request-id", "look-w1"], None, &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

/// Without topic retention there is nothing to seek back to, on the emulator as on Pub/Sub:
/// the event published before the command started is not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_topic_retention_an_earlier_event_is_not_found() {
    let app = spawn_app("look-noret", Knobs::default()).await;
    app.publish(&request("look-n1", "target-look-n1")).await;
    app.completion_of("look-n1", 1, 60).await;
    let run = cli(&app, "status", &["look-n1", "--read-for", "3s"], None, &[]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(events_of(&run.stdout).is_empty(), "{}", run.stdout);
}

/// A completion event as the worker publishes it, at `time`.
async fn event(app: &TestApp, id: &str, status: &str, time: &str) {
    let data = format!(
        r#"{{"request_id":"{id}","status":"{status}","attempts":1,"accepted_at":"{time}","finished_at":"{time}","context":{{}}}}"#
    );
    let ce_id = format!("{id}:{status}");
    let attrs = [
        ("request_id", id),
        ("status", status),
        ("ce-id", ce_id.as_str()),
        ("ce-time", time),
    ];
    app.topology
        .publish("copy-completions", data.as_bytes(), &attrs)
        .await
        .expect("publish an event");
}

/// A request that failed and, once replayed, succeeded has two events: `status` answers with
/// the newest by event time (even when it was published first) and counts the earlier one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_newest_event_of_a_request_and_counts_the_earlier_ones() {
    let (app, seen) = retaining_app("look-newest").await;
    event(&app, "look-m1", "succeeded", "2026-11-22T10:05:00Z").await;
    event(&app, "look-m1", "failed", "2026-11-22T10:00:00Z").await;
    event(&app, "look-m2", "failed", "2026-11-22T10:01:00Z").await;
    completed(&seen, "look-m2").await;
    let run = cli(&app, "status", &["look-m1", "--since", "24h"], None, &[]).await;
    assert_eq!(
        run.code, 0,
        "newest succeeded: {}\n{}",
        run.stdout, run.stderr
    );
    let events = events_of(&run.stdout);
    assert_eq!(events.len(), 1, "one line a request: {}", run.stdout);
    assert_eq!(events[0]["status"], "succeeded", "{}", run.stdout);
    let last: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"]["succeeded"], 1, "{last}");
    assert_eq!(
        last["status"]["earlier_events"],
        serde_json::json!({"look-m1": 1}),
        "{last}"
    );
    assert!(
        run.stderr
            .contains("look-m1: the newest of 2 events is shown; earlier: failed"),
        "{}",
        run.stderr
    );
    // With one that only failed, the answer is 1.
    let run = cli(&app, "status", &["look-m1,look-m2"], None, &[]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let last: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&last["status"]["succeeded"], &last["status"]["failed"]),
        (&Value::from(1), &Value::from(1)),
        "{last}"
    );
}

/// SIGTERM (CI cancellation, `timeout`) stops `status` as Ctrl-C does: its summary names what
/// was not found, exit 3, and its subscription is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_status_with_its_summary_and_deletes_its_subscription() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (app, _seen) = retaining_app("look-term").await;
    let before = app.subscriptions().await;
    let args = ["status", "look-t1", "--read-for", "5m"];
    let mut child = spawn_cli(&app, &args, std::process::Stdio::null());
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let reading = bin::next_line(&mut stderr, "status starts reading").await;
    assert!(reading.contains("reading through"), "{reading}");
    sigterm(&child);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("status exits within 30 s of SIGTERM")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let last: Value = serde_json::from_str(stdout.lines().last().expect("a summary")).unwrap();
    assert_eq!(
        last["status"]["not_found"],
        serde_json::json!(["look-t1"]),
        "{last}"
    );
    assert_eq!(
        app.subscriptions().await,
        before,
        "its subscription is deleted"
    );
}
