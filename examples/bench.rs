//! Every measurement of docs/BENCHMARKS.md against the local stack, in one command:
//! `cargo run --release --example bench`.
//!
//! Starts the official Pub/Sub emulator, and for each row the fakes it needs (Vertex AI, and
//! testkit's Cloud Tasks fake with the `copy-starts` and `copy-polls` queues), runs the release
//! `copy-worker` binary as child processes, prints progress on stderr and a markdown table
//! (medians, percentiles where they apply, the core count) on stdout. Goals are reported,
//! never asserted. Takes about ten minutes; `docs/BENCHMARKS.md` holds the latest table.
//! `BENCH_ONLY` runs some groups only, comma-separated: `cold`, `push`, `isolated`, `cli`,
//! `burst` (or `burst-1`, `burst-4`).
//!
//! # Layout
//! - `bench/stats.rs`: means, medians, percentiles, the table.
//! - `bench/proc.rs`: the worker as a process, `/healthz`, `/proc` memory, `taskset`.
//! - `bench/queues.rs`: the two Cloud Tasks queues at Terraform's default rates, compressed.
//! - `bench/meter.rs`: a proxy before the instances that records every request: billable
//!   instance time, spread over instances, the longest request.
//! - `bench/deploy.rs`: one local deployment (fakes, queues, workers, meter, topology) and
//!   the completion events with their arrival instants.
//! - `bench/schedule.rs`: a copy's end and the poll that saw it, from the fake's call log;
//!   the Workflows connector's schedule for comparison.
//! - `bench/load.rs`: the load generator (N concurrent clients, 127.0.0.1 only).
//! - `bench/cold.rs`: cold start and idle memory.
//! - `bench/push.rs`: push acceptance on one core, and the emulator publish reference.
//! - `bench/isolated.rs`: isolated copies of 5 s, 60 s, 5 and 30 minutes: reads, lag,
//!   overhead, billable instance time.
//! - `bench/cli.rs`: `publish` one-shot, `replay` throughput and the emulator ceiling.
//! - `bench/burst.rs`: 1,000 copies at once within Vertex AI's quotas, on 1 and on 4
//!   instances (`BENCH_BURST_N`, `BENCH_BURST_SCALE` size it).

// An example's crate root resolves modules beside it, hence the paths; `stats` comes first
// for its `progress!` macro.
#[macro_use]
#[path = "bench/stats.rs"]
mod stats;
#[path = "bench/burst.rs"]
mod burst;
#[path = "bench/cli.rs"]
mod cli;
#[path = "bench/cold.rs"]
mod cold;
#[path = "bench/deploy.rs"]
mod deploy;
#[path = "bench/isolated.rs"]
mod isolated;
#[path = "bench/load.rs"]
mod load;
#[path = "bench/meter.rs"]
mod meter;
#[path = "bench/proc.rs"]
mod proc;
#[path = "bench/push.rs"]
mod push;
#[path = "bench/queues.rs"]
mod queues;
#[path = "bench/schedule.rs"]
mod schedule;

use std::time::{Duration, Instant};

use stats::Row;
use testkit::Emulator;

const DEAD_LETTERS: usize = 10_000;

fn main() -> anyhow::Result<()> {
    proc::build_binary()?;
    let size = std::fs::metadata(proc::binary())?.len();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let t0 = Instant::now();
            progress!("starting the Pub/Sub emulator");
            let mut emulator = Emulator::start().await?;
            let mut rows = measure(&emulator).await;
            emulator.stop();
            rows.push(Row::new(
                "release binary size (target/release/copy-worker)",
                format!("{:.1} MiB ({size} bytes)", size as f64 / (1024.0 * 1024.0)),
            ));
            print_report(&rows, t0.elapsed());
            Ok(())
        })
}

/// Whether `BENCH_ONLY` (empty: everything) asks for `group`.
fn wanted(group: &str) -> bool {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    only.is_empty()
        || only
            .split(',')
            .map(str::trim)
            .any(|o| o == group || (o == "burst" && group.starts_with("burst-")))
}

async fn measure(emu: &Emulator) -> Vec<Row> {
    let mut rows = Vec::new();
    if wanted("cold") {
        keep(&mut rows, "cold start", cold::cold_start(emu, 10).await);
    }
    if wanted("push") {
        push_rows(emu, &mut rows).await;
    }
    if wanted("isolated") {
        progress!(
            "isolated copies of 5 s, 60 s, 5 and 30 minutes, each in a deployment of its own"
        );
        let runs = isolated::kinds().map(|k| isolated::isolated(emu, k));
        for (k, r) in isolated::kinds()
            .iter()
            .zip(futures::future::join_all(runs).await)
        {
            let what = format!("isolated {} s copy", k.copy_s);
            keep(&mut rows, &what, r.map(|i| isolated::rows(&i)));
        }
    }
    if wanted("cli") {
        cli_rows(emu, &mut rows).await;
    }
    for instances in [1, 4] {
        if wanted(&format!("burst-{instances}")) {
            let b = burst::burst(emu, instances).await;
            keep(&mut rows, "burst", b.map(|b| burst::rows(&b)));
        }
    }
    if let Some(l) = meter::longest() {
        rows.push(Row::new(
            "longest request the worker held (every metered row: isolated copies and bursts)",
            format!(
                "{:.0} ms, {} in the {} row",
                l.took.as_secs_f64() * 1e3,
                l.path,
                l.row
            ),
        ));
    }
    rows
}

async fn push_rows(emu: &Emulator, rows: &mut Vec<Row>) {
    let pin = proc::has_taskset() && push::num_cpus() >= 2;
    if !pin {
        progress!("taskset missing or a single core: push acceptance runs unpinned");
    }
    keep(
        rows,
        "push acceptance",
        push::acceptance(emu, pin, None).await,
    );
    let warn = push::acceptance(emu, pin, Some("warn")).await;
    keep(rows, "push acceptance (warn)", warn);
    let reference = push::emulator_publish_reference(emu).await.map(|r| vec![r]);
    keep(rows, "emulator publish reference", reference);
}

async fn cli_rows(emu: &Emulator, rows: &mut Vec<Row>) {
    let publish = cli::publish_one_shot(emu, 10).await.map(|r| vec![r]);
    keep(rows, "publish one-shot", publish);
    let replay = cli::replay(emu, DEAD_LETTERS).await;
    let ceiling = cli::ceiling(emu, DEAD_LETTERS).await;
    let ratio = match (&replay, &ceiling) {
        (Ok((r, _)), Ok((c, _))) => Some(Row::new(
            "replay ÷ emulator ceiling",
            format!("{:.0} %", 100.0 * r / c),
        )),
        _ => None,
    };
    keep(rows, "replay", replay.map(|(_, row)| vec![row]));
    keep(rows, "ceiling", ceiling.map(|(_, row)| vec![row]));
    rows.extend(ratio);
}

/// A failed measurement becomes a row saying so, and the run goes on.
fn keep(rows: &mut Vec<Row>, what: &str, result: anyhow::Result<Vec<Row>>) {
    match result {
        Ok(r) => rows.extend(r),
        Err(e) => {
            progress!("{what} failed: {e:#}");
            rows.push(Row::new(what, format!("not measured: {e:#}")));
        }
    }
}

fn print_report(rows: &[Row], took: Duration) {
    println!(
        "copy-worker benchmarks — {} cores (nproc), {}, run took {:.0} s\n",
        push::num_cpus(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        took.as_secs_f64()
    );
    println!("{}", stats::render(rows));
}
