//! The burst rows (DESIGN.md §10, "Quotas"; issue 27, "Done when"): N copies of 60 s published
//! at once, against a Vertex AI fake that enforces Vertex AI's default quotas, with 1 or 4
//! worker instances. Pushes and task dispatches go through a [`Meter`](crate::meter::Meter)
//! that spreads them over the instances in turn, as Cloud Run does, behind a push-window front
//! for Pub/Sub's flow control. The two queues at Terraform's default rates (30 starts and
//! 210 polls a minute) are the only pacers of Vertex AI calls.
//!
//! Time-compressed by `BENCH_BURST_SCALE` (default 20; see `deploy.rs` for what shrinks);
//! every figure is reported in uncompressed time. `BENCH_BURST_N` sets N.

use std::time::{Duration, Instant};

use testkit::{Emulator, Rpc};

use crate::deploy::{Deployment, Plan};
use crate::meter;
use crate::queues::{COPY_RATE, READ_RATE, poll_rate};
use crate::schedule;
use crate::stats::{Row, mean, quantile};

pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub struct Burst {
    instances: usize,
    n: usize,
    scale: f64,
    makespan_s: f64,
    bound_s: f64,
    completed: usize,
    not_succeeded: usize,
    dead_letters: usize,
    calls: usize,
    rejections: usize,
    peak_polls: usize,
    peak_reads: usize,
    polls_per_copy: f64,
    lags_s: Vec<f64>,
    /// Requests and peak concurrency per instance.
    spread: Vec<(usize, usize)>,
    longest: Option<meter::Longest>,
}

pub async fn burst(emu: &Emulator, instances: usize) -> anyhow::Result<Burst> {
    let n: usize = env_or("BENCH_BURST_N", 1000);
    let scale: f64 = env_or("BENCH_BURST_SCALE", 20.0);
    let copy = Duration::from_secs(60);
    let plan = Plan {
        project: format!("bench-burst-{instances}"),
        copy,
        scale,
        instances,
        quotas: true,
        push_window: true,
        rust_log: "warn",
    };
    let d = Deployment::start(emu, &plan).await?;
    progress!("burst: publishing {n} requests to {instances} instance(s) (×{scale} compressed)");
    let t0 = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let d = &d;
        let sends = chunk
            .iter()
            .map(|i| async move { d.publish(&format!("b{i}")).await });
        for r in futures::future::join_all(sends).await {
            r?;
        }
    }
    // The bound: one minute per rate's worth of copies after the first, plus one copy.
    let bound = Duration::from_secs_f64(((n as f64 / COPY_RATE).ceil() - 1.0) * 60.0) + copy;
    let deadline = t0 + bound.div_f64(scale).mul_f64(3.0) + Duration::from_secs(60);
    while d.events.distinct() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the last polls answer before the meter is read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = measure(&d, t0, bound, n);
    d.stop().await;
    Ok(b)
}

fn measure(d: &Deployment, t0: Instant, bound: Duration, n: usize) -> Burst {
    let scale = d.scale;
    let events = d.events.all();
    let last = events.iter().map(|e| e.at).max().unwrap_or(t0);
    let calls = d.vertex.calls();
    let copy = Duration::from_secs(60).div_f64(scale);
    let lags_s: Vec<f64> = events
        .iter()
        .filter_map(|e| {
            let s = schedule::seen(&calls, &e.request_id, e.operation.as_deref()?, copy)?;
            Some(schedule::lag_s(&s, e.at, scale))
        })
        .collect();
    let window = Duration::from_secs(60).div_f64(scale);
    let times = |keep: &dyn Fn(Rpc) -> bool| -> Vec<Instant> {
        let rpc = |c: &testkit::Call| c.rpc.is_some_and(keep);
        calls.iter().filter(|c| rpc(c)).map(|c| c.at).collect()
    };
    let mut polls = times(&|r| r == Rpc::GetOperation);
    let mut reads = times(&|r| r != Rpc::CopyModel);
    let records = d.meter.take();
    let row = format!("burst, {} instance(s)", d.workers.len());
    Burst {
        instances: d.workers.len(),
        n,
        scale,
        makespan_s: (last - t0).as_secs_f64() * scale,
        bound_s: bound.as_secs_f64(),
        completed: d.events.distinct(),
        not_succeeded: events.iter().filter(|e| e.status != "succeeded").count(),
        dead_letters: d.dead_letters.len(),
        calls: calls.len(),
        rejections: d.vertex.quota_rejections(),
        polls_per_copy: polls.len() as f64 / n as f64,
        peak_polls: schedule::peak_in_window(&mut polls, window),
        peak_reads: schedule::peak_in_window(&mut reads, window),
        lags_s,
        spread: meter::per_instance(&records, d.workers.len()),
        longest: meter::note_longest(&row, &records),
    }
}

pub fn rows(b: &Burst) -> Vec<Row> {
    let what = |s: &str| {
        format!(
            "burst of {} copies (60 s each, default quotas and queue rates, {} instance(s), ×{} compressed): {s}",
            b.n, b.instances, b.scale
        )
    };
    let ratio = b.makespan_s / b.bound_s;
    let share = 100.0 * b.rejections as f64 / b.calls.max(1) as f64;
    let polls = poll_rate();
    [
        Row::new(
            what("makespan ÷ quota bound"),
            format!(
                "{ratio:.3} ({:.0} s ÷ {:.0} s; {} of {} ended)",
                b.makespan_s, b.bound_s, b.completed, b.n
            ),
        )
        .goal("≤ 1.05", ratio <= 1.05 && b.completed == b.n),
        Row::new(
            what("peak Vertex AI reads in any minute: GetOperation / all reads"),
            format!(
                "{} / {} (poll queue {polls:.0}/min; read rate {READ_RATE:.0}/min; {:.1} GetOperation per copy)",
                b.peak_polls, b.peak_reads, b.polls_per_copy
            ),
        )
        // A queue dispatches at most its bucket (max_burst_size, at least the rate a second:
        // google/cloud/tasks/v2/queue.proto) plus rate × 60 in any minute; no queue-paced
        // design can promise less. The reads' budget is what must hold.
        .goal(
            "GetOperation ≤ the poll queue's rate × 60 + its bucket; all reads ≤ the read rate",
            b.peak_polls as f64 <= polls + (polls / 60.0).ceil()
                && b.peak_reads as f64 <= READ_RATE,
        ),
        Row::new(
            what("Vertex AI calls answered 429"),
            format!("{share:.2} % ({} of {})", b.rejections, b.calls),
        )
        .goal("0", b.rejections == 0),
        Row::new(
            what("dead letters / not succeeded"),
            format!("{} / {}", b.dead_letters, b.not_succeeded),
        )
        .goal("0 / 0", b.dead_letters == 0 && b.not_succeeded == 0),
        Row::new(
            what("copy's end → event: mean / p95"),
            format!(
                "{:.1} s / {:.1} s (over {} events)",
                mean(&b.lags_s),
                quantile(&b.lags_s, 0.95),
                b.lags_s.len()
            ),
        ),
    ]
    .into_iter()
    .chain(spread_rows(b, &what))
    .collect()
}

/// How requests spread over the instances, and the longest one.
fn spread_rows(b: &Burst, what: &dyn Fn(&str) -> String) -> [Row; 2] {
    let spread: Vec<String> = b
        .spread
        .iter()
        .map(|(n, p)| format!("{n} (≤ {p} at once)"))
        .collect();
    let longest = b.longest.as_ref().map_or("none".into(), |l| {
        format!("{:.0} ms ({})", l.took.as_secs_f64() * 1e3, l.path)
    });
    [
        Row::new(
            what("requests per instance (pushes and task dispatches)"),
            spread.join(", "),
        ),
        Row::new(what("longest request"), longest),
    ]
}
