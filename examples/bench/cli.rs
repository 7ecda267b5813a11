//! The one-shot CLI commands: `copy-worker publish` wall time, and `copy-worker replay`
//! throughput next to the emulator's own publish + streaming-pull ceiling.

use std::process::Stdio;
use std::time::{Duration, Instant};

use google_cloud_pubsub::client::{Publisher, Subscriber};
use google_cloud_pubsub::model::Message;
use testkit::{Emulator, Topology};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::proc::binary;
use crate::stats::{Row, median};

const IDLE: Duration = Duration::from_secs(2);

/// `copy-worker publish` from process start to its printed message id, `runs` times.
pub async fn publish_one_shot(emu: &Emulator, runs: usize) -> anyhow::Result<Row> {
    let t = Topology::connect(&emu.endpoint(), "bench-publish").await?;
    t.create_topic("copy-requests").await?;
    t.create_pull_subscription("copy-requests-sink", "copy-requests")
        .await?;
    progress!("copy-worker publish: {runs} runs");
    let mut times = Vec::new();
    for i in 0..runs {
        let t0 = Instant::now();
        let mut child = Command::new(binary())
            .arg("publish")
            .args([
                "--source-model",
                "projects/bench-src/locations/us-central1/models/1",
            ])
            .args([
                "--destination-project",
                "bench-dst",
                "--destination-model-id",
                &format!("p{i}"),
            ])
            .env("PUBSUB_EMULATOR_HOST", emu.host())
            .env("GOOGLE_CLOUD_PROJECT", "bench-publish")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .await?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(line.contains("message_id"), "publish printed {line:?}");
        child.wait().await?;
    }
    Ok(Row::new(
        format!(
            "`copy-worker publish` one-shot: process start → printed message id (median of {runs})"
        ),
        format!("{:.1} ms", median(&times)),
    ))
}

/// Puts `n` dead letters on `copy-dead-letter` of `project` (replay subscription with the 10 s
/// ack deadline the replay tests use) and returns the topology.
async fn seed(emu: &Emulator, project: &str, n: usize) -> anyhow::Result<Topology> {
    let t = Topology::connect(&emu.endpoint(), project).await?;
    t.create_topic("copy-dead-letter").await?;
    t.create_topic("copy-requests").await?;
    t.create_pull_subscription("copy-requests-sink", "copy-requests")
        .await?;
    t.subscription_admin()
        .create_subscription()
        .set_name(t.subscription("copy-dead-letter-replay"))
        .set_topic(t.topic("copy-dead-letter"))
        .set_ack_deadline_seconds(10)
        .send()
        .await?;
    let publisher = publisher(&t, "copy-dead-letter").await?;
    let pending: Vec<_> = (0..n)
        .map(|i| {
            let body = format!(r#"{{"request_id":"d{i}","source_model":"m"}}"#);
            publisher.publish(Message::new().set_data(body).set_attributes([
                ("request_id".to_owned(), format!("d{i}")),
                ("error_code".to_owned(), "NOT_FOUND".to_owned()),
                ("failed_stage".to_owned(), "request".to_owned()),
            ]))
        })
        .collect();
    for p in futures::future::join_all(pending).await {
        p?;
    }
    Ok(t)
}

async fn publisher(t: &Topology, topic: &str) -> anyhow::Result<Publisher> {
    Ok(Publisher::builder(t.topic(topic))
        .with_endpoint(&t.endpoint)
        .with_credentials(testkit::pubsub::anonymous())
        .build()
        .await?)
}

/// `copy-worker replay` of `n` dead letters; messages/s over its run minus the idle timeout.
pub async fn replay(emu: &Emulator, n: usize) -> anyhow::Result<(f64, Row)> {
    progress!("replay: seeding {n} dead letters");
    let _t = seed(emu, "bench-replay", n).await?;
    progress!("replay: running copy-worker replay");
    let out = Command::new(binary())
        .args(["replay", "--idle-timeout", "2s"])
        .env("PUBSUB_EMULATOR_HOST", emu.host())
        .env("GOOGLE_CLOUD_PROJECT", "bench-replay")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await?;
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let replayed = summary["replayed"].as_u64().unwrap_or(0);
    let busy = summary["elapsed_s"].as_f64().unwrap_or(f64::NAN) - IDLE.as_secs_f64();
    let rate = replayed as f64 / busy;
    Ok((
        rate,
        Row::new(
            format!("`copy-worker replay` of {n} dead letters (emulator)"),
            format!(
                "{rate:.0} msg/s ({replayed} replayed in {busy:.1} s, not counting the 2 s idle timeout)"
            ),
        ),
    ))
}

/// The emulator's ceiling: `n` messages published (all at once, default batching) while one
/// streaming pull acks them; messages/s from the first publish to the last receipt.
pub async fn ceiling(emu: &Emulator, n: usize) -> anyhow::Result<(f64, Row)> {
    progress!("emulator ceiling: publish + streaming pull of {n}");
    let t = Topology::connect(&emu.endpoint(), "bench-ceiling").await?;
    t.create_topic("ceiling").await?;
    t.subscription_admin()
        .create_subscription()
        .set_name(t.subscription("ceiling-sub"))
        .set_topic(t.topic("ceiling"))
        .set_ack_deadline_seconds(10)
        .send()
        .await?;
    let subscriber = Subscriber::builder()
        .with_endpoint(&t.endpoint)
        .with_credentials(testkit::pubsub::anonymous())
        .build()
        .await?;
    let mut stream = subscriber.subscribe(t.subscription("ceiling-sub")).build();
    let publisher = publisher(&t, "ceiling").await?;
    let t0 = Instant::now();
    let pull = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
                Ok(Some(Ok((_, handler)))) => {
                    handler.ack();
                    got += 1;
                }
                _ => break,
            }
        }
        got
    });
    let pending: Vec<_> = (0..n)
        .map(|i| publisher.publish(Message::new().set_data(format!(r#"{{"request_id":"d{i}"}}"#))))
        .collect();
    for p in futures::future::join_all(pending).await {
        p?;
    }
    let got = pull.await?;
    let secs = t0.elapsed().as_secs_f64();
    let rate = got as f64 / secs;
    Ok((
        rate,
        Row::new(
            format!("reference: emulator publish + streaming pull + ack of {n}, same client"),
            format!("{rate:.0} msg/s ({got} in {secs:.1} s)"),
        ),
    ))
}
