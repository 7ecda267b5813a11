//! Every measurement of docs/BENCHMARKS.md against the local stack, in one command:
//! `cargo run --release --example bench`.
//!
//! Starts the official Pub/Sub emulator and the Vertex AI fake, runs the release
//! `copy-worker` binary as a child process for each row, prints progress on stderr and a
//! markdown table (medians, p99 where it applies, the core count) on stdout. Goals are
//! reported, never asserted. Takes about five minutes; `docs/BENCHMARKS.md` holds the
//! latest table.
//!
//! # Layout
//! - `bench/stats.rs`: medians, percentiles, the table.
//! - `bench/proc.rs`: the worker as a process, `/healthz`, `/proc` memory, `taskset`.
//! - `bench/load.rs`: the load generator (N concurrent clients, 127.0.0.1 only).
//! - `bench/push.rs`: push acceptance on one core, and the emulator publish reference.
//! - `bench/pipeline.rs`: cold start, completion overhead, Vertex calls per copy.
//! - `bench/cli.rs`: `publish` one-shot, `replay` throughput and the emulator ceiling.
//! - `bench/burst.rs`: a burst of 1,000 copies within Vertex AI's quotas (DESIGN.md §10);
//!   `BENCH_ONLY=burst` runs that row alone, `BENCH_BURST_N` / `BENCH_BURST_SCALE` size it;
//!   `BENCH_ONLY=burst-queue` the same burst through the copy-start queue, instances by load.

// An example's crate root resolves modules beside it, hence the paths; `stats` comes first
// for its `progress!` macro.
#[macro_use]
#[path = "bench/stats.rs"]
mod stats;
#[path = "bench/burst.rs"]
mod burst;
#[path = "bench/cli.rs"]
mod cli;
#[path = "bench/load.rs"]
mod load;
#[path = "bench/pipeline.rs"]
mod pipeline;
#[path = "bench/proc.rs"]
mod proc;
#[path = "bench/push.rs"]
mod push;

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

async fn measure(emu: &Emulator) -> Vec<Row> {
    let mut rows = Vec::new();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for (name, what, mode) in [
        ("burst", "burst", burst::Mode::Budget),
        (
            "burst-queue",
            "burst through the copy-start queue",
            burst::Mode::Queue,
        ),
    ] {
        if only == name {
            let measured = burst::burst(emu, mode).await;
            keep(&mut rows, what, measured.map(|b| burst::burst_rows(&b)));
            return rows;
        }
    }
    keep(&mut rows, "cold start", pipeline::cold_start(emu, 10).await);
    let pin = proc::has_taskset() && push::num_cpus() >= 2;
    if !pin {
        progress!("taskset missing or a single core: push acceptance runs unpinned");
    }
    keep(
        &mut rows,
        "push acceptance",
        push::acceptance(emu, pin, None).await,
    );
    keep(
        &mut rows,
        "push acceptance (warn)",
        push::acceptance(emu, pin, Some("warn")).await,
    );
    let reference = push::emulator_publish_reference(emu).await.map(|r| vec![r]);
    keep(&mut rows, "emulator publish reference", reference);
    progress!("completion overhead: five 5 s copies and two 60 s copies, concurrently");
    let (five, sixty) = tokio::join!(
        pipeline::completion(emu, Duration::from_secs(5), 5),
        pipeline::completion(emu, Duration::from_secs(60), 2),
    );
    keep(
        &mut rows,
        "completion 5 s",
        five.map(|c| pipeline::completion_rows(&c)),
    );
    keep(
        &mut rows,
        "completion 60 s",
        sixty.map(|c| pipeline::completion_rows(&c)),
    );
    let publish = cli::publish_one_shot(emu, 10).await.map(|r| vec![r]);
    keep(&mut rows, "publish one-shot", publish);
    let replay = cli::replay(emu, DEAD_LETTERS).await;
    let ceiling = cli::ceiling(emu, DEAD_LETTERS).await;
    if let (Ok((r, _)), Ok((c, _))) = (&replay, &ceiling) {
        let ratio = Row::new(
            "replay ÷ emulator ceiling",
            format!("{:.0} %", 100.0 * r / c),
        );
        keep(&mut rows, "replay", replay.map(|(_, row)| vec![row]));
        keep(&mut rows, "ceiling", ceiling.map(|(_, row)| vec![row]));
        rows.push(ratio);
    } else {
        keep(&mut rows, "replay", replay.map(|(_, row)| vec![row]));
        keep(&mut rows, "ceiling", ceiling.map(|(_, row)| vec![row]));
    }
    progress!("burst of copies within Vertex AI's quotas, three instances");
    keep(
        &mut rows,
        "burst",
        burst::burst(emu, burst::Mode::Budget)
            .await
            .map(|b| burst::burst_rows(&b)),
    );
    progress!("burst of copies through the copy-start queue, instances by load");
    keep(
        &mut rows,
        "burst through the copy-start queue",
        burst::burst(emu, burst::Mode::Queue)
            .await
            .map(|b| burst::burst_rows(&b)),
    );
    rows
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
