//! `copy-worker replay` run as the real binary against the emulator (issue #5).

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use testkit::pubsub::{Inbox, Received, Topology};
use tokio::process::Command;

use crate::helpers::{Knobs, emulator, spawn_app};

const REPLAY_SUB: &str = "copy-dead-letter-replay";
/// A second subscription on the dead-letter topic that nothing ever streams; see
/// [`Bench::left_in_place`].
const WITNESS_SUB: &str = "dead-letter-witness";

/// A project with only what replay touches: the dead-letter topic and its replay subscription,
/// and (unless `with_target` is false) the requests topic with a pull subscription that sees
/// every republished message.
struct Bench {
    topology: Topology,
    target: Option<Inbox>,
}

async fn bench(name: &str, with_target: bool) -> Bench {
    static N: AtomicU32 = AtomicU32::new(0);
    let project = format!(
        "it-replay-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let topology = Topology::connect(&emulator().endpoint(), &project)
        .await
        .unwrap();
    topology.create_topic("copy-dead-letter").await.unwrap();
    // A 10 s ack deadline (the least Pub/Sub allows) so that what a SIGKILLed run held comes
    // back within the test: the emulator leases by the subscription's deadline, not the
    // client's 10 s stream deadline as the real service does.
    topology
        .subscription_admin()
        .create_subscription()
        .set_name(topology.subscription(REPLAY_SUB))
        .set_topic(topology.topic("copy-dead-letter"))
        .set_ack_deadline_seconds(10)
        .send()
        .await
        .unwrap();
    topology
        .create_pull_subscription(WITNESS_SUB, "copy-dead-letter")
        .await
        .unwrap();
    let target = if with_target {
        topology.create_topic("copy-requests").await.unwrap();
        topology
            .create_pull_subscription("requests-all", "copy-requests")
            .await
            .unwrap();
        Some(Inbox::open(&topology, "requests-all").await.unwrap())
    } else {
        None
    };
    Bench { topology, target }
}

impl Bench {
    fn target(&self) -> &Inbox {
        self.target.as_ref().expect("target inbox")
    }

    /// Puts a dead letter like the worker's on `copy-dead-letter`.
    async fn dead_letter(&self, request_id: &str, error_code: &str, extra: &[(&str, &str)]) {
        let body = format!(r#"{{"request_id":"{request_id}","source_model":"m"}}"#);
        let mut attrs = vec![
            ("request_id", request_id),
            ("error_code", error_code),
            ("error_message", "source model not found"),
            ("failed_stage", "request"),
            ("dead_lettered_at", "2026-11-22T10:00:00Z"),
        ];
        attrs.extend_from_slice(extra);
        self.topology
            .publish("copy-dead-letter", body.as_bytes(), &attrs)
            .await
            .unwrap();
    }

    /// Exactly the messages still unacked on the replay subscription.
    ///
    /// It snapshots the replay subscription (a snapshot records what is unacked), seeks the
    /// witness subscription to that snapshot, and drains the witness with unary pulls through
    /// the emulator's REST surface. Reading the replay subscription itself is unreliable on
    /// this emulator build: it mishandles the end of a streaming pull (its log shows a
    /// `NoSuchMethodError` in `ServerImpl...closed` on RST_STREAM) and keeps the dead stream
    /// registered, so a message handed back around the close can sit leased to it for many
    /// seconds. The witness never had a stream, so it answers at once.
    async fn left_in_place(&self) -> Vec<Received> {
        static N: AtomicU32 = AtomicU32::new(0);
        let v1 = format!("{}/v1", self.topology.endpoint);
        let snapshot = format!(
            "projects/{}/snapshots/left-{}",
            self.topology.project,
            N.fetch_add(1, Ordering::SeqCst)
        );
        let http = reqwest::Client::new();
        let body = serde_json::json!({ "subscription": self.topology.subscription(REPLAY_SUB) });
        http.put(format!("{v1}/{snapshot}"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let witness = self.topology.subscription(WITNESS_SUB);
        http.post(format!("{v1}/{witness}:seek"))
            .json(&serde_json::json!({ "snapshot": snapshot }))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let mut got = Vec::new();
        let mut empty_pulls = 0;
        while empty_pulls < 3 {
            let batch = self.pull_now(&witness).await;
            if batch.is_empty() {
                empty_pulls += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            got.extend(batch);
        }
        got
    }

    /// One unary pull (up to 1,000 messages, acked) through the emulator's REST surface.
    async fn pull_now(&self, subscription: &str) -> Vec<Received> {
        use base64::Engine;
        let base = format!("{}/v1/{subscription}", self.topology.endpoint);
        let http = reqwest::Client::new();
        let body = serde_json::json!({"maxMessages": 1000, "returnImmediately": true});
        let resp: serde_json::Value = http
            .post(format!("{base}:pull"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut ack_ids = Vec::new();
        for rm in resp["receivedMessages"].as_array().into_iter().flatten() {
            ack_ids.push(rm["ackId"].clone());
            let m = &rm["message"];
            let data = base64::engine::general_purpose::STANDARD
                .decode(m["data"].as_str().unwrap_or(""))
                .unwrap();
            let attributes = serde_json::from_value(m["attributes"].clone()).unwrap_or_default();
            out.push(Received {
                message_id: m["messageId"].as_str().unwrap_or("").to_owned(),
                data,
                attributes,
            });
        }
        if !ack_ids.is_empty() {
            http.post(format!("{base}:acknowledge"))
                .json(&serde_json::json!({ "ackIds": ack_ids }))
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
        }
        out
    }
}

struct Outcome {
    code: i32,
    summary: serde_json::Value,
    stderr: String,
}

fn replay_command(project: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_copy-worker"));
    cmd.arg("replay")
        .args(args)
        .env("PUBSUB_EMULATOR_HOST", emulator().host())
        .env("GOOGLE_CLOUD_PROJECT", project)
        .env_remove("COPY_REQUESTS_TOPIC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn replay(project: &str, args: &[&str]) -> Outcome {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        replay_command(project, args).output(),
    )
    .await
    .expect("replay finished within 90 s")
    .expect("replay ran");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let summary = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("summary is JSON ({e}): {stdout:?}; stderr: {stderr}"));
    Outcome {
        code: out.status.code().unwrap_or(-1),
        summary,
        stderr,
    }
}

fn request_ids(messages: &[Received]) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .filter_map(|m| m.attribute("request_id").map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_republishes_dead_letters_without_failure_attributes_and_empties_the_subscription() {
    let b = bench("basic", true).await;
    for id in ["r1", "r2", "r3"] {
        b.dead_letter(
            id,
            "NOT_FOUND",
            &[
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("CloudPubSubDeadLetterSourceDeliveryCount", "10"),
                ("operation", "projects/p/locations/l/operations/1"),
            ],
        )
        .await;
    }
    let out = replay(&b.topology.project, &["--idle-timeout", "2s"]).await;

    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.summary["replayed"], 3, "{}", out.summary);
    assert_eq!(out.summary["skipped_filter"], 0);
    assert_eq!(out.summary["failed"], 0);
    assert!(out.summary["elapsed_s"].as_f64().unwrap() >= 2.0);
    let got = b
        .target()
        .wait_for(3, Duration::from_secs(10), |_| true)
        .await
        .unwrap();
    assert_eq!(request_ids(&got), ["r1", "r2", "r3"]);
    let m = &got[0];
    let mut keys: Vec<&str> = m.attributes.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["replay_count", "replayed_at", "request_id", "traceparent"]
    );
    assert_eq!(m.attribute("replay_count"), Some("1"));
    assert_eq!(m.json()["request_id"], m.attribute("request_id").unwrap());
    assert!(
        b.left_in_place().await.is_empty(),
        "every dead letter was acked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_the_replay_guard_leave_other_dead_letters_in_place_counted_once() {
    let b = bench("filter", true).await;
    b.dead_letter("a", "NOT_FOUND", &[("pipeline", "nightly")])
        .await;
    b.dead_letter("b", "INVALID_REQUEST", &[("pipeline", "nightly")])
        .await;
    b.dead_letter(
        "c",
        "NOT_FOUND",
        &[("pipeline", "nightly"), ("replay_count", "3")],
    )
    .await;
    b.dead_letter("d", "NOT_FOUND", &[("pipeline", "hourly")])
        .await;
    b.dead_letter(
        "e",
        "NOT_FOUND",
        &[("pipeline", "nightly"), ("replay_count", "1")],
    )
    .await;
    let args = [
        "--error-code",
        "NOT_FOUND",
        "--attribute",
        "pipeline=nightly",
        "--idle-timeout",
        "3s",
    ];
    let out = replay(&b.topology.project, &args).await;

    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.summary["replayed"], 2, "{}", out.summary);
    assert_eq!(out.summary["skipped_filter"], 2, "b and d, once each");
    assert_eq!(out.summary["skipped_max_replays"], 1, "c");
    let got = b
        .target()
        .wait_for(2, Duration::from_secs(10), |_| true)
        .await
        .unwrap();
    assert_eq!(request_ids(&got), ["a", "e"]);
    let e = got
        .iter()
        .find(|m| m.attribute("request_id") == Some("e"))
        .unwrap();
    assert_eq!(e.attribute("replay_count"), Some("2"));

    let left = b.left_in_place().await;
    assert_eq!(request_ids(&left), ["b", "c", "d"]);
    assert_eq!(b.target().snapshot().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_filter_replays_only_the_named_requests() {
    let b = bench("reqid", true).await;
    for id in ["x", "y", "z"] {
        b.dead_letter(id, "NOT_FOUND", &[]).await;
    }
    let args = [
        "--request-id",
        "x",
        "--request-id",
        "z",
        "--idle-timeout",
        "2s",
    ];
    let out = replay(&b.topology.project, &args).await;

    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.summary["replayed"], 2, "{}", out.summary);
    assert_eq!(out.summary["skipped_filter"], 1, "y, once");
    let got = b
        .target()
        .wait_for(2, Duration::from_secs(10), |_| true)
        .await
        .unwrap();
    assert_eq!(request_ids(&got), ["x", "z"]);
    assert_eq!(request_ids(&b.left_in_place().await), ["y"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_acks_nothing_and_groups_what_it_would_replay_by_error_code() {
    let b = bench("dry", true).await;
    for id in ["n1", "n2", "n3"] {
        b.dead_letter(id, "NOT_FOUND", &[]).await;
    }
    b.dead_letter("i1", "INVALID_REQUEST", &[]).await;
    b.dead_letter("old", "NOT_FOUND", &[("replay_count", "3")])
        .await;
    let out = replay(&b.topology.project, &["--dry-run", "--idle-timeout", "2s"]).await;

    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let s = &out.summary;
    assert_eq!(s["replayed"], 0, "{s}");
    assert_eq!(s["skipped_max_replays"], 1);
    assert_eq!(s["dry_run"]["would_replay"], 4);
    let groups = &s["dry_run"]["by_error_code"];
    assert_eq!(groups["NOT_FOUND"]["count"], 3);
    let mut sample: Vec<String> =
        serde_json::from_value(groups["NOT_FOUND"]["sample_request_ids"].clone()).unwrap();
    sample.sort();
    assert_eq!(sample, ["n1", "n2", "n3"]);
    assert_eq!(groups["INVALID_REQUEST"]["sample_request_ids"][0], "i1");
    let left = b.left_in_place().await;
    assert_eq!(request_ids(&left), ["i1", "n1", "n2", "n3", "old"]);
    assert!(
        b.target().snapshot().is_empty(),
        "a dry run publishes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_stops_the_run_and_rate_holds_over_it() {
    let b = bench("limit", true).await;
    for i in 0..10 {
        b.dead_letter(&format!("l{i}"), "NOT_FOUND", &[]).await;
    }
    let started = Instant::now();
    let out = replay(&b.topology.project, &["--limit", "6", "--rate", "5"]).await;

    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.summary["replayed"], 6, "{}", out.summary);
    // Six replays at 5/s: the last may start 1 s after the first, and not sooner.
    assert!(
        out.summary["elapsed_s"].as_f64().unwrap() >= 1.0,
        "{}",
        out.summary
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "--limit stops the run without waiting for --idle-timeout"
    );
    b.target()
        .wait_for(6, Duration::from_secs(10), |_| true)
        .await
        .unwrap();
    assert_eq!(b.left_in_place().await.len(), 4);
    assert_eq!(b.target().snapshot().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_target_topic_leaves_every_dead_letter_in_place_and_exits_4() {
    let b = bench("notopic", false).await;
    for i in 0..5 {
        b.dead_letter(&format!("m{i}"), "NOT_FOUND", &[]).await;
    }
    let out = replay(&b.topology.project, &["--idle-timeout", "2s"]).await;

    assert_eq!(out.code, 4, "stderr: {}", out.stderr);
    assert_eq!(out.summary["replayed"], 0, "{}", out.summary);
    assert!(
        out.summary["failed"].as_u64().unwrap() >= 1,
        "{}",
        out.summary
    );
    let topic = format!("projects/{}/topics/copy-requests", b.topology.project);
    assert!(
        out.stderr.contains(&topic) && out.stderr.contains("does not exist"),
        "the message names the topic and the cause: {}",
        out.stderr
    );
    let left = b.left_in_place().await;
    assert_eq!(request_ids(&left), ["m0", "m1", "m2", "m3", "m4"]);
}

/// Publishes `n` dead letters concurrently, 100 at a time.
async fn many_dead_letters(b: &Bench, n: usize) -> HashSet<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("k{i:04}")).collect();
    for chunk in ids.chunks(100) {
        futures::future::join_all(chunk.iter().map(|id| b.dead_letter(id, "NOT_FOUND", &[]))).await;
    }
    ids.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_replay_of_1000_dead_letters_loses_none_when_run_again() {
    const N: usize = 1000;
    let b = bench("kill", true).await;
    let ids = many_dead_letters(&b, N).await;

    // First run, paced so that the kill surely lands part-way.
    let mut child = replay_command(&b.topology.project, &["--rate", "200"])
        .spawn()
        .unwrap();
    b.target()
        .wait_for(200, Duration::from_secs(30), |_| true)
        .await
        .unwrap();
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = b.target().snapshot().len();
    assert!(
        before < N,
        "the kill landed part-way ({before} of {N} replayed)"
    );

    // What the killed run held comes back when its lease (the subscription's 10 s ack
    // deadline on the emulator) runs out; the idle timeout outlasts that.
    let out = replay(&b.topology.project, &["--idle-timeout", "20s"]).await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    b.target()
        .wait_for(N, Duration::from_secs(30), |_| true)
        .await
        .unwrap();
    // Let any late duplicate arrive before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = b.target().snapshot();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for id in request_ids(&got) {
        *per_id.entry(id).or_default() += 1;
    }
    let reached: HashSet<String> = per_id.keys().cloned().collect();
    let missing: Vec<_> = ids.difference(&reached).collect();
    assert!(
        missing.is_empty(),
        "lost {} request ids: {missing:?}",
        missing.len()
    );
    let duplicates: usize = per_id.values().map(|c| c - 1).sum();
    let secs = out.summary["elapsed_s"].as_f64().unwrap();
    let replayed = out.summary["replayed"].as_u64().unwrap();
    println!(
        "kill test: {before} on the target at the kill; second run replayed {replayed} in \
         {secs:.2} s ({:.0} msg/s incl. the 20 s idle timeout); duplicates {duplicates}",
        replayed as f64 / secs
    );
    // Duplicates can only be messages published but not yet acked at the kill: at --rate 200
    // that is a fraction of a second's worth, far below the 1,000 a replay of all would give.
    assert!(duplicates <= 200, "{duplicates} duplicates");
    assert!(
        b.left_in_place().await.is_empty(),
        "the subscription is empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_dead_lettered_for_a_missing_model_succeeds_after_the_model_exists_and_replay() {
    let app = spawn_app("replay-flow", Knobs::default()).await;
    let missing = "projects/src-proj/locations/us-central1/models/505505";
    let body = format!(
        r#"{{"request_id":"flow-1","source_model":"{missing}","destination":{{"model_id":"target-flow"}}}}"#
    );
    app.publish(&body).await;
    let first = app.completion_of("flow-1", 1, 30).await.remove(0).json();
    assert_eq!(first["status"], "failed");
    app.dead_letter_of("flow-1", 30).await;

    app.vertex.add_model(missing);
    let out = replay(
        &app.topology.project,
        &["--request-id", "flow-1", "--idle-timeout", "2s"],
    )
    .await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.summary["replayed"], 1, "{}", out.summary);

    let events = app.completion_of("flow-1", 2, 60).await;
    let statuses: Vec<String> = events
        .iter()
        .map(|e| e.json()["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["failed", "succeeded"]);
    let destination = "projects/dst-proj/locations/us-central1/models/target-flow";
    assert_eq!(events[1].json()["destination_model"], destination);
    assert!(app.vertex.model_exists(destination));
}
