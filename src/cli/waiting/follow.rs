//! Following completion events until every awaited request has one (`publish --wait`,
//! `copy-worker wait`), on the CLI's one reader (`clients::pubsub::read`).
//!
//! Two ways to read them ([`WaitSource`]):
//! - **its own subscription** (the default): a temporary subscription on `copy-completions`,
//!   filtered to its waiter tag or request ids (`clients::temp_subscription`). Every waiter
//!   has its own, so a waiter acks every event it reads and never hands one back: nothing
//!   circles between waiters, and nobody needs to be waiting for an event to be consumed.
//! - **a shared subscription** (`--completions-subscription`, DESIGN.md §6): a pull
//!   subscription gives each message to one of its readers, so a waiter acks only its own
//!   events and hands every other straight back (nack: ack deadline 0). With several waiters,
//!   or events no one waits for, events circle until retention ends: use it only where the
//!   caller may not create subscriptions.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::ops::ControlFlow;
use std::time::Duration;

use tokio::time::Instant;

use crate::clients::pubsub::Connection;
use crate::clients::pubsub::read::{Consume, Ended, Lease, ReadError, Reader, Received};
use crate::clients::temp_subscription::WaitSource;

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Every request has an event, and all say `succeeded`.
    AllSucceeded,
    /// Every request has an event, and at least one says `failed` or `rejected`.
    SomeFailed,
    /// The timeout passed first; these request ids have no event yet.
    TimedOut { pending: Vec<String> },
    /// Ctrl-C; these request ids have no event yet.
    Interrupted { pending: Vec<String> },
}

/// What one wait read, for its summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub ours: usize,
    pub duplicates: usize,
    pub others: usize,
}

/// What to do with one delivered event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// One of ours, seen for the first time: ack, print, and count its status.
    Ours { request_id: String, succeeded: bool },
    /// One of ours, already counted (at-least-once delivery): ack only.
    Duplicate,
    /// Someone else's: hand it back.
    NotOurs,
}

/// The waiter's bookkeeping: which requests still lack an event, and how the others ended.
#[derive(Debug)]
pub struct Waiting {
    pending: BTreeSet<String>,
    done: BTreeSet<String>,
    any_failed: bool,
    /// Events counted, by status (`succeeded`, `failed`, `rejected`, or what else came).
    statuses: BTreeMap<String, usize>,
}

impl Waiting {
    pub fn new(request_ids: impl IntoIterator<Item = String>) -> Self {
        Self {
            pending: request_ids.into_iter().collect(),
            done: BTreeSet::new(),
            any_failed: false,
            statuses: BTreeMap::new(),
        }
    }

    /// How many requests ended with `status`.
    pub fn count(&self, status: &str) -> usize {
        self.statuses.get(status).copied().unwrap_or(0)
    }

    /// Requests with an event so far.
    pub fn finished(&self) -> usize {
        self.done.len()
    }

    /// Requests awaited in all.
    pub fn total(&self) -> usize {
        self.done.len() + self.pending.len()
    }

    /// Classifies an event by its `request_id` attribute (or, failing that, its data) and
    /// records it when it is the first one for a pending request.
    pub fn judge(&mut self, request_id: Option<&str>, status: Option<&str>) -> Verdict {
        let Some(id) = request_id else {
            return Verdict::NotOurs;
        };
        if self.done.contains(id) {
            return Verdict::Duplicate;
        }
        if !self.pending.remove(id) {
            return Verdict::NotOurs;
        }
        self.done.insert(id.to_owned());
        // Anything but an explicit success counts as a failure: an unknown status must not
        // make a pipeline carry on.
        let succeeded = status == Some("succeeded");
        self.any_failed |= !succeeded;
        *self
            .statuses
            .entry(status.unwrap_or("unknown").to_owned())
            .or_default() += 1;
        Verdict::Ours {
            request_id: id.to_owned(),
            succeeded,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn outcome(&self, interrupted: bool) -> WaitOutcome {
        if interrupted && !self.pending.is_empty() {
            return WaitOutcome::Interrupted {
                pending: self.pending.iter().cloned().collect(),
            };
        }
        if !self.pending.is_empty() {
            WaitOutcome::TimedOut {
                pending: self.pending.iter().cloned().collect(),
            }
        } else if self.any_failed {
            WaitOutcome::SomeFailed
        } else {
            WaitOutcome::AllSucceeded
        }
    }
}

/// A `done/total` bar on stderr, drawn only when stderr is a terminal.
fn progress(total: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {pos}/{len} requests ended {wide_bar} {msg}",
        )
        .expect("progress template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What a wait ended with: how, what it read, and the bookkeeping (for the summary).
#[derive(Debug)]
pub struct Followed {
    pub outcome: WaitOutcome,
    pub counts: Counts,
    pub waiting: Waiting,
}

/// A wait under way: the bookkeeping, and what it does with each event it reads.
struct Follower<'a> {
    waiting: Waiting,
    counts: Counts,
    hand_back_others: bool,
    deadline: Instant,
    bar: indicatif::ProgressBar,
    out: &'a mut (dyn Write + Send),
    error: Option<ReadError>,
}

impl Consume for Follower<'_> {
    type Side = std::convert::Infallible;
    const CTRL_C_STOPS: bool = true;

    fn finished(&self) -> bool {
        self.waiting.is_finished()
    }

    fn quiet_at(&self) -> Option<Instant> {
        Some(self.deadline)
    }

    fn on_delivery(&mut self, received: Received) -> ControlFlow<()> {
        let event = received.completion();
        let id = event.request_id.as_deref();
        match self.waiting.judge(id, event.status.as_deref()) {
            Verdict::Ours { .. } => {
                self.counts.ours += 1;
                received.ack();
                self.bar.inc(1);
                let failed = self.waiting.finished() - self.waiting.count("succeeded");
                if failed > 0 {
                    self.bar.set_message(format!("({failed} not succeeded)"));
                }
                // A closed stdout must not keep the waiter from acking and exiting.
                let out = &mut *self.out;
                let line = &event.line;
                let _ = self
                    .bar
                    .suspend(|| writeln!(out, "{line}").and_then(|()| out.flush()));
            }
            Verdict::Duplicate => {
                self.counts.duplicates += 1;
                received.ack();
            }
            Verdict::NotOurs => {
                self.counts.others += 1;
                if self.hand_back_others {
                    received.hand_back();
                } else {
                    received.ack();
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn on_error(&mut self, error: ReadError) -> ControlFlow<()> {
        self.error = Some(error);
        ControlFlow::Break(())
    }
}

/// Reads `source` until each of `request_ids` has an event, `timeout` passes or Ctrl-C, and
/// writes each of its events to `out` as one JSON line.
pub async fn wait(
    conn: &Connection,
    source: &WaitSource,
    request_ids: Vec<String>,
    timeout: Duration,
    out: &mut (dyn Write + Send),
) -> Result<Followed, ReadError> {
    let deadline = Instant::now() + timeout;
    let waiting = Waiting::new(request_ids);
    let bar = progress(waiting.total());
    let mut reader = Reader::connect(conn, source.name(), Lease::Brief).await?;
    let mut f = Follower {
        waiting,
        counts: Counts::default(),
        hand_back_others: source.hands_back_others(),
        deadline,
        bar,
        out,
        error: None,
    };
    let ended = reader.run(&mut f).await;
    f.bar.finish_and_clear();
    reader.close().await;
    match f.error {
        Some(e) => Err(e),
        None => Ok(Followed {
            outcome: f.waiting.outcome(ended == Ended::Interrupted),
            counts: f.counts,
            waiting: f.waiting,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiter_counts_its_own_events_once_and_hands_back_the_rest() {
        let mut w = Waiting::new(["a".to_string(), "b".to_string()]);
        assert_eq!(w.judge(Some("x"), Some("succeeded")), Verdict::NotOurs);
        assert_eq!(w.judge(None, Some("succeeded")), Verdict::NotOurs);
        assert_eq!(
            w.judge(Some("a"), Some("succeeded")),
            Verdict::Ours {
                request_id: "a".into(),
                succeeded: true
            }
        );
        assert_eq!(w.judge(Some("a"), Some("failed")), Verdict::Duplicate);
        assert_eq!(
            w.outcome(false),
            WaitOutcome::TimedOut {
                pending: vec!["b".into()]
            }
        );
        assert!(!w.is_finished());
        w.judge(Some("b"), Some("succeeded"));
        assert!(w.is_finished());
        assert_eq!(w.outcome(false), WaitOutcome::AllSucceeded);
    }

    #[test]
    fn failed_rejected_or_unknown_status_makes_the_wait_fail() {
        for status in [Some("failed"), Some("rejected"), Some("weird"), None] {
            let mut w = Waiting::new(["a".to_string(), "b".to_string()]);
            w.judge(Some("a"), Some("succeeded"));
            w.judge(Some("b"), status);
            assert_eq!(w.outcome(false), WaitOutcome::SomeFailed, "{status:?}");
        }
    }
}
