//! The burst rows (docs/DESIGN.md §10, "Quotas"): N copies published at once against a
//! Vertex AI fake that enforces Vertex AI's default quotas, the worker instances behind one
//! push-window front per subscription, the Terraform module's default subscription settings.
//! Two ways to start copies:
//! - [`Mode::Budget`]: three instances, fixed, each admitting copies from its share of
//!   `VERTEX_COPY_RATE` (`WORKER_INSTANCES=3`);
//! - [`Mode::Queue`]: copies start from a copy-start queue (testkit's Cloud Tasks fake at
//!   `VERTEX_COPY_RATE`), and instances are chosen by load as Cloud Run does: one at first,
//!   another whenever the pushes in flight exceed 60 % of 250 per instance (Cloud Run's
//!   target CPU and concurrency utilisation, cloud.google.com/run/docs/about-instance-autoscaling),
//!   up to `max_instances` = 10, which Terraform also passes as `WORKER_INSTANCES`.
//!
//! Time-compressed by `BENCH_BURST_SCALE` (default 20): every timing is divided by it, the
//! fake's quota window and copy time, the subscriptions' backoffs, `WATCH_HOLD`, and the
//! worker's own timings (`COPY_WORKER_TIME_SCALE`: its poll intervals and the budget's minute,
//! bursts, back-offs and admission wait). Two cannot shrink: the subscriptions' ack deadlines
//! (the emulator's minimum is 10 s; they bound worst cases, not the steady state) and the
//! request stage's 45 s budget (the same). Results are reported in unscaled time.

use std::time::{Duration, Instant};

use testkit::vertex::{Quotas, Rpc};
use testkit::{
    Emulator, Inbox, PushFront, PushWindow, QueueConfig, TasksFake, Topology, TopologyOptions,
};

use crate::proc::{self, Worker};
use crate::stats::Row;

const SOURCE: &str = "projects/bench-src/locations/us-central1/models/1500";
/// `VERTEX_COPY_RATE`'s default: CopyModel calls a minute for the deployment.
const COPY_RATE: f64 = 30.0;
const INSTANCES: usize = 3;
/// Terraform's default `max_instances`, and so `WORKER_INSTANCES`, in [`Mode::Queue`].
const MAX_INSTANCES: usize = 10;
/// Pushes in flight per instance before Cloud Run adds one: 60 % of the concurrency of 250.
const IN_FLIGHT_PER_INSTANCE: u32 = 150;
const QUEUE: &str = "projects/bench-burst/locations/us-central1/queues/copy-starts";

/// How copies start.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Three fixed instances, each with its share of the copy rate.
    Budget,
    /// A copy-start queue at the copy rate; instances chosen by load.
    Queue,
}

pub struct Burst {
    mode: Mode,
    /// The most instances that ran at once.
    instances: usize,
    n: usize,
    scale: f64,
    makespan_s: f64,
    bound_s: f64,
    calls: usize,
    rejections: usize,
    reads: usize,
    dead_letters: usize,
    not_succeeded: usize,
    lowest_requests: u32,
    lowest_operations: u32,
    completed: usize,
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub async fn burst(emu: &Emulator, mode: Mode) -> anyhow::Result<Burst> {
    let n: usize = env_or("BENCH_BURST_N", 1000);
    let scale: f64 = env_or("BENCH_BURST_SCALE", 20.0);
    let s = |secs: f64| Duration::from_secs_f64(secs / scale);
    let copy = s(60.0);
    let project = match mode {
        Mode::Budget => "bench-burst",
        Mode::Queue => "bench-burst-queue",
    };
    let vertex = crate::push::vertex_copying(SOURCE, copy).await?;
    vertex.set_quotas(Quotas {
        window: s(60.0),
        ..Quotas::VERTEX_DEFAULTS
    });
    let mut env = proc::base_env(project, &emu.host(), &vertex.endpoint());
    for (k, v) in [
        ("VERTEX_COPY_RATE", COPY_RATE.to_string()),
        ("VERTEX_READ_RATE", "300".to_string()),
        (
            "WORKER_INSTANCES",
            match mode {
                Mode::Budget => INSTANCES,
                Mode::Queue => MAX_INSTANCES,
            }
            .to_string(),
        ),
        ("WATCH_HOLD", format!("{}ms", s(240.0).as_millis())),
        ("COPY_WORKER_TIME_SCALE", scale.to_string()),
        ("RUST_LOG", "warn".to_string()),
    ] {
        proc::set_env(&mut env, k, &v);
    }
    // The copy-start queue posts to its own front over the same instances (Cloud Run's).
    let tasks = TasksFake::start(None).await?;
    let starts_front = PushFront::start_balanced(&[], PushWindow::default()).await?;
    if mode == Mode::Queue {
        tasks.create_queue(
            QUEUE,
            QueueConfig {
                max_dispatches_per_second: COPY_RATE / 60.0 * scale,
                min_backoff: s(10.0),
                max_backoff: s(300.0),
                max_attempts: -1,
                ..QueueConfig::default()
            },
        );
        for (k, v) in [
            ("COPY_START_QUEUE", QUEUE.to_string()),
            ("CLOUD_TASKS_ENDPOINT", tasks.endpoint()),
            ("COPY_START_URL", starts_front.url()),
            (
                "COPY_START_SERVICE_ACCOUNT",
                "copy-worker-push@bench.iam.gserviceaccount.com".to_string(),
            ),
        ] {
            proc::set_env(&mut env, k, &v);
        }
    }
    let first = match mode {
        Mode::Budget => INSTANCES,
        Mode::Queue => 1,
    };
    let client = reqwest::Client::new();
    let mut workers = Vec::new();
    for _ in 0..first {
        workers.push(start_worker(&env, workers.len(), &client).await?);
    }
    let urls: Vec<String> = workers.iter().map(Worker::base_url).collect();
    let targets: Vec<&str> = urls.iter().map(String::as_str).collect();
    let requests_front = PushFront::start_balanced(&targets, PushWindow::default()).await?;
    let operations_front = PushFront::start_balanced(&targets, PushWindow::default()).await?;
    for u in &urls {
        starts_front.add_target(u)?;
    }
    // The Terraform module's defaults, scaled; ack deadlines as they are (see the top).
    let opts = TopologyOptions {
        push_base_url: requests_front.url(),
        operations_push_base_url: Some(operations_front.url()),
        request_backoff: (s(10.0), s(600.0)),
        operations_backoff: (s(10.0), s(60.0)),
        ..TopologyOptions::default()
    };
    let topology = Topology::create(&emu.endpoint(), project, &opts).await?;
    topology
        .create_pull_subscription("burst-dead-letters", "copy-dead-letter")
        .await?;
    let completions = Inbox::open(&topology, "copy-completions-all").await?;
    let dead_letters = Inbox::open(&topology, "burst-dead-letters").await?;

    progress!("burst: publishing {n} requests (×{scale} time compression)");
    let t0 = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let sends = chunk.iter().map(|i| {
            let body = format!(
                r#"{{"request_id":"b{i}","source_model":"{SOURCE}@1","destination":{{"project":"bench-dst","location":"us-central1","model_id":"b{i}"}}}}"#
            );
            let topology = &topology;
            async move { topology.publish("copy-requests", body.as_bytes(), &[]).await }
        });
        for r in futures::future::join_all(sends).await {
            r?;
        }
    }
    // The bound: one minute per rate's worth of copies after the first, plus one copy.
    let minutes = (n as f64 / COPY_RATE).ceil() - 1.0;
    let bound = s(minutes * 60.0) + copy;
    let deadline = t0 + bound.mul_f64(3.0) + Duration::from_secs(60);
    let (mut last, mut seen) = (t0, 0);
    loop {
        let got = completions.snapshot().len();
        if got > seen {
            (last, seen) = (Instant::now(), got);
        }
        if got >= n || Instant::now() > deadline {
            break;
        }
        let fronts = [&requests_front, &operations_front, &starts_front];
        let in_flight: u32 = fronts.iter().map(|f| f.stats().in_flight).sum();
        let wanted = (in_flight as usize).div_ceil(IN_FLIGHT_PER_INSTANCE as usize);
        if mode == Mode::Queue && wanted > workers.len() && workers.len() < MAX_INSTANCES {
            let w = start_worker(&env, workers.len(), &client).await?;
            for f in fronts {
                f.add_target(&w.base_url())?;
            }
            workers.push(w);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = completions.snapshot();
    let completed = {
        let mut ids: Vec<String> = events
            .iter()
            .filter_map(|e| e.attribute("request_id").map(str::to_owned))
            .collect();
        ids.sort();
        ids.dedup();
        ids.len()
    };
    let not_succeeded = events
        .iter()
        .filter(|e| e.attribute("status") != Some("succeeded"))
        .count();
    let makespan = last.duration_since(t0);
    let read = |r: Rpc| vertex.rpc_count(r).calls;
    let reads = read(Rpc::GetOperation) + read(Rpc::GetModel) + read(Rpc::ListModelVersions);
    let calls = vertex.calls().len();
    let burst = Burst {
        mode,
        instances: workers.len(),
        n,
        scale,
        makespan_s: makespan.as_secs_f64() * scale,
        bound_s: bound.as_secs_f64() * scale,
        calls,
        rejections: vertex.quota_rejections(),
        reads,
        dead_letters: dead_letters.snapshot().len(),
        not_succeeded,
        lowest_requests: requests_front.stats().lowest,
        lowest_operations: operations_front.stats().lowest,
        completed,
    };
    for w in workers {
        w.stop().await;
    }
    Ok(burst)
}

/// One worker instance, started and healthy; `i` names its log.
async fn start_worker(
    env: &[(String, String)],
    i: usize,
    client: &reqwest::Client,
) -> anyhow::Result<Worker> {
    let w = Worker::spawn(env, &format!("copy-worker-bench-burst-{i}.log"), None)?;
    w.wait_healthy(client).await?;
    Ok(w)
}

pub fn burst_rows(b: &Burst) -> Vec<Row> {
    let ratio = b.makespan_s / b.bound_s;
    let share = 100.0 * b.rejections as f64 / b.calls.max(1) as f64;
    let how = match b.mode {
        Mode::Budget => "3 instances, each its share".to_string(),
        Mode::Queue => format!(
            "copy-start queue, instances by load: {} of {MAX_INSTANCES} ran",
            b.instances
        ),
    };
    let what = |s: &str| {
        format!(
            "burst of {} copies (60 s each, default quotas, {how}, ×{} compressed): {s}",
            b.n, b.scale
        )
    };
    vec![
        Row::new(
            what("makespan ÷ quota bound"),
            format!(
                "{ratio:.2} ({:.0} s ÷ {:.0} s; {} of {} ended)",
                b.makespan_s, b.bound_s, b.completed, b.n
            ),
        )
        .goal("≤ 1.1", ratio <= 1.1 && b.completed == b.n),
        Row::new(
            what("Vertex calls answered 429"),
            format!("{share:.2} % ({} of {})", b.rejections, b.calls),
        )
        .goal("≤ 1 %", share <= 1.0),
        Row::new(
            what("reads per copy"),
            format!("{:.1}", b.reads as f64 / b.n as f64),
        ),
        Row::new(
            what("dead letters / not succeeded"),
            format!("{} / {}", b.dead_letters, b.not_succeeded),
        )
        .goal("0 / 0", b.dead_letters == 0 && b.not_succeeded == 0),
        Row::new(
            what("lowest push window: copy-requests-push / copy-operations-push"),
            format!("{} / {}", b.lowest_requests, b.lowest_operations),
        ),
    ]
}
