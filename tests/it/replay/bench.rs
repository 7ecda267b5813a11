//! A bare project for replay tests, the replay binary as a subprocess, and a way to see
//! exactly what is left on the dead-letter subscription.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use testkit::pubsub::{Inbox, Received, Topology};
use tokio::process::Command;

use crate::bin;
use crate::helpers::emulator;

pub const REPLAY_SUB: &str = "copy-dead-letter-replay";
/// A second subscription on the dead-letter topic that nothing ever streams; see
/// [`Bench::left_in_place`].
const WITNESS_SUB: &str = "dead-letter-witness";

/// A project with only what replay touches: the dead-letter topic and its replay subscription,
/// and (unless `with_target` is false) the requests topic with a pull subscription that sees
/// every republished message.
pub struct Bench {
    pub topology: Topology,
    target: Option<Inbox>,
}

pub async fn bench(name: &str, with_target: bool) -> Bench {
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
    pub fn target(&self) -> &Inbox {
        self.target.as_ref().expect("target inbox")
    }

    /// Puts a dead letter like the worker's on `copy-dead-letter`.
    pub async fn dead_letter(&self, request_id: &str, error_code: &str, extra: &[(&str, &str)]) {
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
    pub async fn left_in_place(&self) -> Vec<Received> {
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

pub struct Outcome {
    pub code: i32,
    pub summary: serde_json::Value,
    pub stderr: String,
}

pub fn replay_command(project: &str, args: &[&str]) -> Command {
    let mut cmd = bin::command_in(project, ["replay"]);
    cmd.args(args);
    cmd
}

pub async fn replay(project: &str, args: &[&str]) -> Outcome {
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

pub fn request_ids(messages: &[Received]) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .filter_map(|m| m.attribute("request_id").map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// Publishes `n` dead letters concurrently, 100 at a time.
pub async fn many_dead_letters(b: &Bench, n: usize) -> HashSet<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("k{i:04}")).collect();
    for chunk in ids.chunks(100) {
        futures::future::join_all(chunk.iter().map(|id| b.dead_letter(id, "NOT_FOUND", &[]))).await;
    }
    ids.into_iter().collect()
}
