//! Isolated copies (issue 27, "Done when"): for each copy length a deployment of its own
//! (one worker behind a [`Meter`], both queues at Terraform's default rates), and copies run one
//! after the other, so each has the deployment to itself. Per copy:
//! - Vertex AI reads: the GetOperation calls of its operation, from the fake's call log;
//! - lag: from the copy's end in the fake to its completion event arriving on a pull
//!   subscription, split into the wait for the poll that saw it done (the schedule, compressed)
//!   and the hand-off after it (not compressed);
//! - overhead: from the publish to the event, minus the copy's length;
//! - billable instance time: the time the worker had at least one request in flight, from
//!   the request-stage push to the last poll (request-based billing counts nothing else).
//!
//! The four lengths run at the same time, in four deployments; long ones are time-compressed.

use std::time::{Duration, Instant};

use testkit::Emulator;

use crate::deploy::{Deployment, Plan};
use crate::meter::{self, Record};
use crate::schedule::{self, Connector};
use crate::stats::{Row, median};

/// One copy length and how it runs.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    pub copy_s: f64,
    pub scale: f64,
    pub runs: usize,
}

/// 5 s, 60 s and 5 minutes in real time; 30 minutes compressed (`BENCH_LONG_SCALE`, default
/// 10: the worker's `started_at` has whole seconds, so compression magnifies that rounding).
/// `BENCH_ISOLATED_SCALE` compresses all four further: a quick check of the harness only.
pub fn kinds() -> [Kind; 4] {
    let long: f64 = crate::burst::env_or("BENCH_LONG_SCALE", 10.0);
    let all: f64 = crate::burst::env_or("BENCH_ISOLATED_SCALE", 1.0);
    [
        (5.0, 1.0, 5),
        (60.0, 1.0, 3),
        (300.0, 1.0, 1),
        (1800.0, long, 1),
    ]
    .map(|(copy_s, scale, runs)| Kind {
        copy_s,
        scale: scale * all,
        runs,
    })
}

/// One copy's figures, in uncompressed seconds.
struct Run {
    overhead_s: f64,
    lag_s: f64,
    poll_lag_s: f64,
    reads: usize,
    billable_s: f64,
    rounded_s: f64,
    requests: usize,
}

pub struct Isolated {
    kind: Kind,
    runs: Vec<Run>,
}

pub async fn isolated(emu: &Emulator, kind: Kind) -> anyhow::Result<Isolated> {
    let tag = format!("i{}", kind.copy_s);
    let plan = Plan {
        project: format!("bench-isolated-{}", kind.copy_s),
        copy: Duration::from_secs_f64(kind.copy_s),
        scale: kind.scale,
        instances: 1,
        quotas: false,
        push_window: false,
        rust_log: "info",
    };
    let d = Deployment::start(emu, &plan).await?;
    let mut runs = Vec::new();
    for i in 0..kind.runs {
        let id = format!("{tag}-{i}");
        let sent = Instant::now();
        d.publish(&id).await?;
        let event = wait_event(&d, &id, plan.copy.div_f64(kind.scale)).await?;
        // The last poll answers after its publish: let it finish before reading the meter.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let records = d.meter.take();
        meter::note_longest(&format!("isolated {} s copy", kind.copy_s), &records);
        let op = event.operation.clone().unwrap_or_default();
        let seen = schedule::seen(&d.vertex.calls(), &id, &op, plan.copy.div_f64(kind.scale))
            .ok_or_else(|| anyhow::anyhow!("no CopyModel call for {id}"))?;
        let copy_real = plan.copy.div_f64(kind.scale);
        runs.push(run(&records, sent, copy_real, &seen, event.at, kind.scale));
        progress!("isolated {} s copy {}: done", kind.copy_s, i + 1);
    }
    d.stop().await;
    Ok(Isolated { kind, runs })
}

fn run(
    records: &[Record],
    sent: Instant,
    copy_real: Duration,
    seen: &schedule::Seen,
    event: Instant,
    scale: f64,
) -> Run {
    let (billable_s, rounded_s) = meter::billable(&meter::busy_periods(records));
    let hand_off = seen.seen.map_or(0.0, |s| (event - s).as_secs_f64());
    let lag_s = schedule::lag_s(seen, event, scale);
    Run {
        overhead_s: (event - sent).as_secs_f64() - copy_real.as_secs_f64(),
        lag_s,
        poll_lag_s: lag_s - hand_off,
        reads: seen.reads,
        billable_s,
        rounded_s,
        requests: records.len(),
    }
}

async fn wait_event(
    d: &Deployment,
    id: &str,
    copy: Duration,
) -> anyhow::Result<crate::deploy::Arrival> {
    let deadline = Instant::now() + copy + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some(a) = d.events.of(id) {
            anyhow::ensure!(a.status == "succeeded", "{id} ended {}", a.status);
            return Ok(a);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("no completion event for {id} within {copy:?} + 120 s")
}

fn label(k: &Kind) -> String {
    let length = match k.copy_s {
        s if s >= 60.0 && s % 60.0 == 0.0 && s > 60.0 => format!("{}-minute", s / 60.0),
        s => format!("{s} s"),
    };
    if k.scale > 1.0 {
        format!("isolated {length} copy (×{} compressed)", k.scale)
    } else {
        format!("isolated {length} copy")
    }
}

pub fn rows(iso: &Isolated) -> Vec<Row> {
    let (k, runs) = (&iso.kind, &iso.runs);
    let of = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let c: Connector = schedule::connector(k.copy_s);
    let what = |s: &str| match runs.len() {
        1 => format!("{}: {s} (one copy)", label(k)),
        n => format!("{}: {s} (median of {n})", label(k)),
    };
    let reads = of(|r| r.reads as f64);
    let (lag, poll_lag) = (of(|r| r.lag_s), of(|r| r.poll_lag_s));
    let mut rows = vec![
        Row::new(
            what("Vertex AI reads (GetOperation), worker / Workflows connector"),
            format!("{reads:.0} / {}", c.reads),
        )
        .goal("≤ the connector's", reads <= c.reads as f64),
        Row::new(
            what("lag, copy's end → event: worker (poll + hand-off) / connector"),
            format!(
                "{lag:.3} s ({poll_lag:.3} s + {:.3} s) / {:.3} s (worst {:.2} s, mean {:.2} s for an end in that poll gap)",
                lag - poll_lag,
                c.lag_s,
                c.gap_s,
                c.gap_s / 2.0
            ),
        )
        .goal("poll ≤ the connector's", poll_lag <= c.lag_s),
    ];
    if k.copy_s == 5.0 {
        let o = of(|r| r.overhead_s);
        rows.push(
            Row::new(what("overhead, publish → event − 5 s"), format!("{o:.2} s"))
                .goal("< 2 s", o < 2.0),
        );
    }
    if k.copy_s == 60.0 || k.copy_s == 1800.0 {
        rows.push(billable_row(k, runs, &what));
    }
    rows
}

fn billable_row(k: &Kind, runs: &[Run], what: &dyn Fn(&str) -> String) -> Row {
    let of = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let (raw, rounded, requests) = (
        of(|r| r.billable_s),
        of(|r| r.rounded_s),
        of(|r| r.requests as f64),
    );
    let share = 100.0 * raw / k.copy_s;
    Row::new(
        what("billable instance time (≥ 1 request in flight) ÷ the copy's length"),
        format!(
            "{share:.3} % ({raw:.3} s over {requests:.0} requests; {:.2} % with each busy period rounded up to 100 ms)",
            100.0 * rounded / k.copy_s
        ),
    )
    .goal("≤ 1 %", share <= 1.0)
}
