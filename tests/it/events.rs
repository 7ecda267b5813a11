//! `copy-worker events` as a subprocess against the emulator (DESIGN.md §6).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::bin;
use crate::helpers::{Knobs, SRC, request, spawn_app};

const MISSING_SRC: &str = "projects/src-proj/locations/us-central1/models/404404";

/// Starts `copy-worker events ARGS`, waits until its subscription exists, publishes
/// `requests`, and returns (exit code, stdout, the "reading" line).
async fn events_around(
    app: &crate::helpers::TestApp,
    args: &[&str],
    requests: &[String],
    ids: &[&str],
) -> (i32, String, String) {
    let mut child = bin::command_for(app, ["events"])
        .args(args)
        .spawn()
        .expect("spawn copy-worker events");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let reading = bin::next_line(&mut stderr, "events starts").await;
    assert!(reading.contains("reading"), "{reading}");
    for r in requests {
        app.publish(r).await;
    }
    for id in ids {
        app.completion_of(id, 1, 60).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("events exits after its idle timeout")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        reading,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_shows_only_the_matching_events_and_deletes_its_subscription() {
    let app = spawn_app("events", Knobs::default()).await;
    let requests = [
        request("ev-ok", "target-ev-ok"),
        format!(r#"{{"request_id":"ev-missing","source_model":"{MISSING_SRC}"}}"#),
    ];
    let (code, stdout, reading) = events_around(
        &app,
        &["--status", "failed", "--idle-timeout", "5s"],
        &requests,
        &["ev-ok", "ev-missing"],
    )
    .await;
    assert!(
        reading.contains(r#"filter: attributes.status = "failed""#),
        "{reading}"
    );
    assert_eq!(code, 0, "{stdout}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "only the failed event: {stdout}");
    assert_eq!(lines[0]["request_id"], "ev-missing");
    assert_eq!(lines[0]["status"], "failed");
    assert_eq!(lines[0]["error"]["code"], "NOT_FOUND");
    let left = app.subscriptions().await;
    assert!(
        !left.iter().any(|s| s.contains("copy-worker-events-")),
        "{left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_as_a_table_shows_each_outcome_on_one_line() {
    let app = spawn_app("events-table", Knobs::default()).await;
    let requests = [
        request("evt-ok", "target-evt-ok"),
        format!(r#"{{"request_id":"evt-missing","source_model":"{MISSING_SRC}"}}"#),
        format!(
            r#"{{"request_id":"evt-bad","source_model":"{SRC}","destination":{{"model_id":"Bad!"}}}}"#
        ),
    ];
    let (code, stdout, _) = events_around(
        &app,
        &["--format", "table", "--idle-timeout", "5s"],
        &requests,
        &["evt-ok", "evt-missing", "evt-bad"],
    )
    .await;
    assert_eq!(code, 0, "{stdout}");
    let rows: Vec<&str> = stdout.lines().collect();
    assert!(rows[0].starts_with("time"), "a header: {stdout}");
    assert_eq!(rows.len(), 4, "{stdout}");
    let row = |id: &str| *rows.iter().find(|r| r.contains(id)).unwrap();
    assert!(row("evt-ok").contains("succeeded") && row("evt-ok").contains("/models/target-evt-ok"));
    assert!(row("evt-missing").contains("failed") && row("evt-missing").contains("NOT_FOUND"));
    assert!(row("evt-bad").contains("rejected") && row("evt-bad").contains("INVALID_REQUEST"));
}
