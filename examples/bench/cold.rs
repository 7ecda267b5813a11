//! Cold start: spawn of `copy-worker serve` to its first `/healthz` 200, and idle memory.

use std::time::{Duration, Instant};

use testkit::{Emulator, VertexFake};

use crate::proc::{self, Worker};
use crate::queues::Queues;
use crate::stats::{Row, median};

/// Cold start (spawn → first 200 from `/healthz`) `runs` times, and idle VmRSS.
pub async fn cold_start(emu: &Emulator, runs: usize) -> anyhow::Result<Vec<Row>> {
    let vertex = VertexFake::start().await?;
    let queues = Queues::start("bench-cold", 1.0).await?;
    let mut env = proc::base_env("bench-cold", &emu.host(), &vertex.endpoint());
    // Nothing is dispatched: no task is created before the first request.
    env.extend(queues.env("http://127.0.0.1:9"));
    let client = reqwest::Client::new();
    let (mut times, mut rss) = (Vec::new(), Vec::new());
    progress!("cold start: {runs} runs");
    for _ in 0..runs {
        let t0 = Instant::now();
        let w = Worker::spawn(&env, "copy-worker-bench-cold.log", None)?;
        w.wait_healthy(&client).await?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(300)).await;
        rss.push(proc::proc_mib(w.pid, "VmRSS")?);
        w.stop().await;
    }
    let (t, m) = (median(&times), median(&rss));
    Ok(vec![
        Row::new(
            format!("cold start: spawn of `copy-worker serve` → `/healthz` 200 (median of {runs})"),
            format!("{t:.1} ms (min {:.1}, max {:.1})", min(&times), max(&times)),
        )
        .goal("< 50 ms", t < 50.0),
        Row::new(
            "idle resident memory (VmRSS 300 ms after healthy, median)",
            format!("{m:.1} MiB"),
        )
        .goal("< 20 MiB", m < 20.0),
    ])
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(0.0, f64::max)
}
