//! Cold start and completion overhead: the worker process behind the emulator's push
//! subscriptions, end to end.

use std::time::{Duration, Instant};

use testkit::{Emulator, Inbox, Topology, TopologyOptions, VertexFake};

use crate::proc::{self, Worker};
use crate::push::SOURCE;
use crate::stats::{Row, median};

/// Cold start (spawn → first 200 from `/healthz`) `runs` times, and idle VmRSS.
pub async fn cold_start(emu: &Emulator, runs: usize) -> anyhow::Result<Vec<Row>> {
    let vertex = VertexFake::start().await?;
    let env = proc::base_env("bench-cold", &emu.host(), &vertex.endpoint());
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

/// What `n` copies of `copy` each took from publish to completion event, and the Vertex calls.
pub struct Completion {
    pub copy: Duration,
    pub overheads_s: Vec<f64>,
    pub calls_per_copy: f64,
}

/// Publishes `n` copy requests of `copy` seconds at once to `copy-requests` (a worker of its
/// own, its own Vertex fake, the DESIGN.md §2 topology) and times each completion event.
pub async fn completion(emu: &Emulator, copy: Duration, n: usize) -> anyhow::Result<Completion> {
    let project = format!("bench-completion-{}", copy.as_secs());
    let vertex = crate::push::vertex_copying(SOURCE, copy).await?;
    let env = proc::base_env(&project, &emu.host(), &vertex.endpoint());
    let worker = Worker::spawn(&env, &format!("copy-worker-bench-{project}.log"), None)?;
    worker.wait_healthy(&reqwest::Client::new()).await?;
    let opts = TopologyOptions {
        push_base_url: worker.base_url(),
        ..Default::default()
    };
    let topology = Topology::create(&emu.endpoint(), &project, &opts).await?;
    let inbox = Inbox::open(&topology, "copy-completions-all").await?;
    let mut sent = Vec::new();
    for i in 0..n {
        let body = format!(
            r#"{{"request_id":"c{i}","source_model":"{SOURCE}@1","destination":{{"project":"bench-dst","model_id":"c{i}"}}}}"#
        );
        sent.push(Instant::now());
        topology
            .publish("copy-requests", body.as_bytes(), &[])
            .await?;
    }
    let mut overheads_s = vec![f64::NAN; n];
    let deadline = Instant::now() + copy + Duration::from_secs(90);
    while overheads_s.iter().any(|o| o.is_nan()) && Instant::now() < deadline {
        for ev in inbox.snapshot() {
            let id = ev.attribute("request_id").unwrap_or_default();
            if let Some(i) = id.strip_prefix('c').and_then(|s| s.parse::<usize>().ok())
                && i < n
                && overheads_s[i].is_nan()
            {
                overheads_s[i] = (sent[i].elapsed() - copy).as_secs_f64();
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::ensure!(
        !overheads_s.iter().any(|o| o.is_nan()),
        "not every completion event arrived"
    );
    let calls_per_copy = vertex.calls().len() as f64 / n as f64;
    worker.stop().await;
    Ok(Completion {
        copy,
        overheads_s,
        calls_per_copy,
    })
}

pub fn completion_rows(c: &Completion) -> Vec<Row> {
    let secs = c.copy.as_secs();
    let m = median(&c.overheads_s);
    let mut overhead = Row::new(
        format!(
            "completion overhead, {secs} s copy: publish → completion event − {secs} s (median of {})",
            c.overheads_s.len()
        ),
        format!("{m:.2} s (max {:.2} s)", max(&c.overheads_s)),
    );
    if secs == 5 {
        overhead = overhead.goal("< 2 s", m < 2.0);
    }
    let mut calls = Row::new(
        format!("Vertex API calls per {secs} s copy"),
        format!("{:.1}", c.calls_per_copy),
    );
    if secs == 60 {
        calls = calls.goal("≤ 15", c.calls_per_copy <= 15.0);
    }
    vec![overhead, calls]
}
