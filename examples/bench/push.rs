//! Push acceptance: real push envelopes with valid OIDC tokens POSTed straight to a
//! `copy-worker serve` pinned to one core. The request stage validates each request and
//! queues its copy-start task on testkit's Cloud Tasks fake (the queue is paused, so the
//! tasks pile up undispatched: this row is the request stage alone); plus the emulator's own
//! publish round trip as a reference.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use serde_json::json;
use testkit::oidc::{DEFAULT_EMAIL, OidcIssuer};
use testkit::{Emulator, Topology, VertexFake};

use crate::load::{Load, LoadResult};
use crate::proc::{self, Worker};
use crate::queues::Queues;
use crate::stats::{Row, median, p99};

const SOURCE: &str = "projects/bench-src/locations/us-central1/models/4242";

const AUD: &str = "https://copy-worker-bench.a.run.app/pubsub/copy-requests";
const TASKS_ACCOUNT: &str = "copy-worker-tasks@bench.iam.gserviceaccount.com";
pub const CONCURRENCY: usize = 64;
const RUN: Duration = Duration::from_secs(10);

/// A push envelope around copy request number `n` (a unique request id and model id).
fn envelope(tag: &str, n: u64) -> String {
    let data = format!(
        r#"{{"request_id":"{tag}-{n}","source_model":"{SOURCE}@1","destination":{{"project":"bench-dst","location":"us-central1","model_id":"{tag}{n}"}}}}"#
    );
    json!({
        "subscription": "projects/bench/subscriptions/copy-requests-push",
        "message": {
            "attributes": {"request_id": format!("{tag}-{n}")},
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "messageId": n.to_string(), "message_id": n.to_string(),
            "publishTime": "2026-11-22T10:00:00Z", "publish_time": "2026-11-22T10:00:00Z",
        }
    })
    .to_string()
}

/// The worker's topics, each with a pull subscription so that publishes are stored as in
/// production (nobody pulls them).
async fn topics(emu: &Emulator, project: &str) -> anyhow::Result<Topology> {
    let t = Topology::connect(&emu.endpoint(), project).await?;
    for topic in ["copy-completions", "copy-callbacks", "copy-dead-letter"] {
        t.create_topic(topic).await?;
        t.create_pull_subscription(&format!("{topic}-sink"), topic)
            .await?;
    }
    Ok(t)
}

/// One push-acceptance row set; `rust_log` is e.g. `Some("warn")`.
pub async fn acceptance(
    emu: &Emulator,
    pin: bool,
    rust_log: Option<&str>,
) -> anyhow::Result<Vec<Row>> {
    let label = rust_log.map_or("default log level (info)".to_owned(), |l| {
        format!("RUST_LOG={l}")
    });
    let project = format!("bench-push-{}", rust_log.unwrap_or("info"));
    let _topology = topics(emu, &project).await?;
    let vertex = VertexFake::start().await?;
    vertex.add_model(SOURCE);
    let queues = Queues::start(&project, 1.0).await?;
    queues.fake.pause(&queues.starts);
    let issuer = OidcIssuer::start(AUD, DEFAULT_EMAIL).await?;
    let mut env = proc::base_env(&project, &emu.host(), &vertex.endpoint());
    env.extend(queues.env("http://127.0.0.1:9"));
    with_oidc(&mut env, &issuer.jwks_url(), rust_log);
    let worker = Worker::spawn(
        &env,
        &format!("copy-worker-bench-{project}.log"),
        pin.then_some("0"),
    )?;
    worker.wait_healthy(&reqwest::Client::new()).await?;
    if pin {
        // Everything else (this process with the load generator and the Cloud Tasks fake,
        // and the emulator) on the other core(s), so the worker has core 0 to itself.
        pin_others(emu, &format!("1-{}", num_cpus() - 1))?;
    }
    let tag = if rust_log.is_some() { "w" } else { "i" };
    let load = |duration, offset: u64| Load {
        url: format!("{}/pubsub/copy-requests", worker.base_url()),
        bearer: Some(format!("Bearer {}", issuer.mint(json!({})))),
        concurrency: CONCURRENCY,
        duration,
        max_requests: 200_000,
        body: Arc::new(move |n| envelope(tag, n + offset)),
    };
    progress!(
        "push acceptance ({label}): 2 s warm-up, then {} s at {CONCURRENCY} concurrent",
        RUN.as_secs()
    );
    load(Duration::from_secs(2), 1_000_000).run().await?;
    let pids = [worker.pid, std::process::id(), emu.pid().unwrap_or(0)];
    let before = pids.map(proc::cpu_seconds);
    let r = load(RUN, 0).run().await?;
    let cpu = std::array::from_fn(|i| {
        100.0 * (proc::cpu_seconds(pids[i]) - before[i]) / r.elapsed.as_secs_f64()
    });
    let hwm = proc::proc_mib(worker.pid, "VmHWM")?;
    if pin {
        pin_others(emu, &format!("0-{}", num_cpus() - 1))?;
    }
    worker.stop().await;
    Ok(rows(&label, &r, hwm, cpu, pin))
}

/// Push authentication as in production (OIDC, the push account on `/pubsub/*`, the tasks'
/// account required), and the log level.
fn with_oidc(env: &mut Vec<(String, String)>, jwks: &str, rust_log: Option<&str>) {
    for (k, v) in [
        ("TASKS_SERVICE_ACCOUNT", TASKS_ACCOUNT),
        ("PUSH_AUTH", "oidc"),
        ("PUSH_AUDIENCE", AUD),
        ("PUSH_SERVICE_ACCOUNTS", DEFAULT_EMAIL),
        ("PUSH_JWKS_URL", jwks),
    ] {
        proc::set_env(env, k, v);
    }
    if let Some(l) = rust_log {
        proc::set_env(env, "RUST_LOG", l);
    }
}

/// Moves this process and the emulator to `cpus`.
fn pin_others(emu: &Emulator, cpus: &str) -> anyhow::Result<()> {
    proc::pin(std::process::id(), cpus)?;
    proc::pin_group(emu.pid().unwrap_or(0), cpus)
}

/// `cpu`: percent of one core used by the worker, this process (load generator, Cloud Tasks
/// fake, OIDC issuer) and the emulator during the measured run.
fn rows(label: &str, r: &LoadResult, hwm: f64, cpu: [f64; 3], pin: bool) -> Vec<Row> {
    let core = if pin {
        "one core (taskset -c 0)"
    } else {
        "unpinned (no taskset)"
    };
    let ok = r.per_second(204);
    let (p50, p99v) = (median(&r.latencies_ms), p99(&r.latencies_ms));
    let others: Vec<String> = r
        .statuses
        .iter()
        .filter(|(s, _)| **s != 204)
        .map(|(s, c)| format!("{c}×{s}"))
        .collect();
    let others = if others.is_empty() {
        "none".into()
    } else {
        others.join(", ")
    };
    vec![
        Row::new(
            format!("push acceptance, {core}, {label}: request-stage deliveries/s (204)"),
            format!(
                "{ok:.0}/s ({} in {:.1} s; other answers: {others})",
                r.count(204),
                r.elapsed.as_secs_f64()
            ),
        )
        .goal("≥ 5,000/s", ok >= 5000.0),
        Row::new(
            format!("push acceptance, {label}: latency p50 / p99 ({CONCURRENCY} concurrent)"),
            format!("{p50:.1} ms / {p99v:.1} ms"),
        )
        .goal("p99 < 20 ms", p99v < 20.0),
        Row::new(
            format!("push acceptance, {label}: peak RSS (VmHWM)"),
            format!("{hwm:.1} MiB"),
        ),
        Row::new(
            format!("push acceptance, {label}: CPU used (% of one core)"),
            format!(
                "worker {:.0} %; load generator + Cloud Tasks fake {:.0} %; emulator {:.0} %",
                cpu[0], cpu[1], cpu[2]
            ),
        ),
    ]
}

/// The cores this process may use, as first seen (before the harness pins itself).
pub fn num_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The reference: the same Publisher settings as the worker's (2 ms delay threshold),
/// `CONCURRENCY` tasks each publishing and awaiting one message at a time.
pub async fn emulator_publish_reference(emu: &Emulator) -> anyhow::Result<Row> {
    let t = topics(emu, "bench-publish-ref").await?;
    let publisher = Publisher::builder(t.topic("copy-completions"))
        .with_endpoint(emu.endpoint())
        .with_credentials(testkit::pubsub::anonymous())
        .set_delay_threshold(Duration::from_millis(2))
        .build()
        .await?;
    progress!("emulator publish round trip alone: 5 s at {CONCURRENCY} concurrent");
    let deadline = Instant::now() + Duration::from_secs(5);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let p = publisher.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let msg = Message::new().set_data(vec![b'x'; 300]);
                if p.publish(msg).await.is_ok() {
                    lat.push(sent.elapsed().as_secs_f64() * 1e3);
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await?);
    }
    let rate = lat.len() as f64 / t0.elapsed().as_secs_f64();
    Ok(Row::new(
        format!(
            "reference: emulator publish round trip alone (same client and settings, {CONCURRENCY} concurrent, unpinned)"
        ),
        format!(
            "{rate:.0} msg/s; p50 {:.1} ms / p99 {:.1} ms",
            median(&lat),
            p99(&lat)
        ),
    ))
}
