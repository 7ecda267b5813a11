//! When a copy ended and when it was seen ended, from the Vertex AI fake's call log; and the
//! schedule of Google's Workflows connector for the same copy, to read the worker against it.

use std::time::{Duration, Instant};

use testkit::{Call, Rpc};

/// The Workflows long-running-operation connector's polls: the first 1 s after the call, each
/// next wait 1.25 × the last, at most 60 s (cloud.google.com/workflows/docs/reference/googleapis,
/// "Connector retry and polling").
#[derive(Clone, Copy, Debug)]
pub struct Connector {
    /// GetOperation calls up to and including the one that sees the copy done.
    pub reads: usize,
    /// The time from the copy's end to that poll.
    pub lag_s: f64,
    /// The wait between the last poll before the end and the one after it: the lag of a
    /// copy that ends just after a poll (the worst around this duration); half of it is the
    /// mean lag of an end anywhere between those two polls.
    pub gap_s: f64,
}

pub fn connector(copy_s: f64) -> Connector {
    let (mut at, mut wait, mut reads) = (0.0, 1.0_f64, 0);
    loop {
        at += wait;
        reads += 1;
        if at >= copy_s {
            return Connector {
                reads,
                lag_s: at - copy_s,
                gap_s: wait,
            };
        }
        wait = (wait * 1.25).min(60.0);
    }
}

/// One copy as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When the operation ended (CopyModel's arrival + the scripted duration).
    pub ended: Instant,
    /// The first GetOperation of the operation at or after its end: when it was seen done.
    pub seen: Option<Instant>,
    /// GetOperation calls of this operation.
    pub reads: usize,
}

/// The copy into `model_id` whose operation is `operation` (as the completion event names it),
/// `copy` long, from the fake's `calls`.
pub fn seen(calls: &[Call], model_id: &str, operation: &str, copy: Duration) -> Option<Seen> {
    let started = calls.iter().find(|c| {
        c.rpc == Some(Rpc::CopyModel)
            && c.status == 200
            && c.body.as_ref().and_then(|b| b["modelId"].as_str()) == Some(model_id)
    })?;
    let ended = started.at + copy;
    let polls: Vec<&Call> = calls
        .iter()
        .filter(|c| c.rpc == Some(Rpc::GetOperation) && c.path.ends_with(operation))
        .collect();
    // The fake decides `done` a few microseconds after it stamps the call's arrival.
    let margin = Duration::from_millis(1);
    let seen = polls
        .iter()
        .find(|c| c.status == 200 && c.at + margin >= ended)
        .map(|c| c.at);
    Some(Seen {
        ended,
        seen,
        reads: polls.len(),
    })
}

/// The lag from a copy's end to its event received at `event`, in uncompressed seconds: the
/// wait until the poll that saw it done is part of the schedule and was compressed `scale`
/// times; the hand-off after that poll (publish, the emulator, the pull) was not.
pub fn lag_s(s: &Seen, event: Instant, scale: f64) -> f64 {
    match s.seen {
        Some(seen) => {
            let wait = seen.saturating_duration_since(s.ended).as_secs_f64();
            wait * scale + event.saturating_duration_since(seen).as_secs_f64()
        }
        None => event.saturating_duration_since(s.ended).as_secs_f64() * scale,
    }
}

/// The most of `times` within any window of `window`.
pub fn peak_in_window(times: &mut [Instant], window: Duration) -> usize {
    times.sort();
    let (mut lo, mut best) = (0, 0);
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}
