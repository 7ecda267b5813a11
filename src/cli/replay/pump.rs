//! The replay run: read dead letters with the CLI's one reader (`clients::pubsub::read`),
//! republish the matching ones, and ack each one only after its republish returned a message
//! id (the no-loss rule of DESIGN.md §6).
//!
//! A SIGKILL at any point loses nothing: a dead letter is acked only after its copy is on the
//! target topic. The price is at most one duplicate per message in flight at the kill.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use google_cloud_pubsub::client::{Publisher, Subscriber};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::pace::Pacer;
use super::plan::{Plan, ReplayError};
use super::rules::Verdict;
use super::summary::{Progress, Summary};
use crate::clients::pubsub::read::{Consume, Ended, Lease, ReadError, Reader, Received};
use crate::clients::pubsub::to_message;

/// Most republishes in flight at once without `--rate`.
const MAX_IN_FLIGHT: usize = 500;

/// What this run already did with a message id, so each dead letter is counted once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Its republish is under way.
    InFlight,
    /// Republished and acked.
    Replayed,
    /// Skipped, counted in a dry run, or failed: handed back (the browsing reader does not
    /// deliver it again, but one dropped unsettled comes back).
    HandedBack,
}

/// How one republish ended.
pub enum Done {
    Replayed(String),
    Failed(String, ReplayError),
    /// Not attempted because an earlier republish failed; handed back.
    Abandoned(String),
}

/// What the republish tasks share.
struct Shared {
    publisher: Publisher,
    topic: String,
    /// Set by the first failed republish: the tasks still waiting for their slot hand back.
    abort: AtomicBool,
}

pub struct Pump {
    plan: Plan,
    shared: Option<Arc<Shared>>,
    summary: Summary,
    seen: HashMap<String, Seen>,
    /// Request ids this run republished: a request that fails again while the run still
    /// reads comes back as a new dead letter, which this run leaves alone.
    replayed_requests: HashSet<String>,
    /// Matching messages taken on (counted against `--limit`).
    matched: u64,
    in_flight: usize,
    window: usize,
    pacer: Pacer,
    started: Instant,
    last_activity: Instant,
    stream_ended: bool,
    error: Option<ReplayError>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    progress: Progress,
}

impl Pump {
    pub fn new(plan: Plan, publisher: Option<Publisher>, summary: Summary) -> Self {
        let pacer = Pacer::new(plan.rate);
        let window = pacer.window(MAX_IN_FLIGHT);
        let shared = publisher.map(|publisher| {
            Arc::new(Shared {
                publisher,
                topic: plan.topic.clone(),
                abort: AtomicBool::new(false),
            })
        });
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            plan,
            shared,
            summary,
            seen: HashMap::new(),
            replayed_requests: HashSet::new(),
            matched: 0,
            in_flight: 0,
            window,
            pacer,
            started: Instant::now(),
            last_activity: Instant::now(),
            stream_ended: false,
            error: None,
            done_tx,
            done_rx,
            progress: Progress::new(),
        }
    }

    pub fn into_summary(self) -> Summary {
        self.summary
    }

    /// Reads the subscription until the run is over, then closes the reader: see
    /// [`Reader::close_held`].
    pub async fn run(&mut self, subscriber: &Subscriber) -> Result<(), ReplayError> {
        let max_outstanding = self.window.max(100) as i64;
        let lease = Lease::Held { max_outstanding };
        let mut reader = Reader::open(subscriber, &self.plan.subscription, lease).browsing();
        if reader.run(self).await == Ended::Interrupted {
            self.stop_for_signal().await;
        }
        let (seen, summary) = (&self.seen, &mut self.summary);
        reader
            .close_held(|r| {
                // Its copy is on the topic already: acked again, not held.
                let replayed = seen.get(r.message_id()) == Some(&Seen::Replayed);
                summary.redelivered_after_replay += u64::from(replayed);
                replayed
            })
            .await;
        if let Some(shared) = &self.shared {
            shared.publisher.flush().await;
        }
        self.progress.finish();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Ctrl-C or SIGTERM: nothing more is taken on, the republishes waiting for their slot
    /// hand back, and those under way finish (and are acked) before the reader closes.
    async fn stop_for_signal(&mut self) {
        let by = crate::clients::interrupt::requested().unwrap_or("Ctrl-C");
        let subscription = self.plan.subscription.clone();
        self.fail(ReplayError::Interrupted { by, subscription });
        while self.in_flight > 0 {
            match self.done_rx.recv().await {
                Some(done) => self.on_done(done),
                None => break,
            }
        }
    }

    fn limit_reached(&self) -> bool {
        self.plan.limit.is_some_and(|l| self.matched >= l)
    }

    fn fail(&mut self, e: ReplayError) {
        if let Some(shared) = &self.shared {
            shared.abort.store(true, Ordering::SeqCst);
        }
        self.error.get_or_insert(e);
    }

    fn on_message(&mut self, received: Received) {
        if let Some(seen) = self.seen.get(received.message_id()) {
            return self.on_redelivery(*seen, received);
        }
        let dead_letter = received.dead_letter();
        let verdict = self.plan.rules.verdict_of(&dead_letter);
        if verdict == Verdict::Replay && self.limit_reached() {
            // Delivered before the stream noticed the limit: not this run's business.
            return received.hand_back();
        }
        self.last_activity = Instant::now();
        self.summary.seen += 1;
        let id = received.message_id().to_owned();
        match verdict {
            Verdict::SkipFilter => self.summary.skipped_filter += 1,
            Verdict::SkipMaxReplays => self.summary.skipped_max_replays += 1,
            Verdict::Replay => {
                let rid = dead_letter.request_id.clone();
                if self.shared.is_some()
                    && let Some(r) = &rid
                    && !self.replayed_requests.insert(r.clone())
                {
                    self.summary.skipped_replayed_this_run += 1;
                    self.seen.insert(id, Seen::HandedBack);
                    return received.hand_back();
                }
                self.matched += 1;
                if let Some(shared) = self.shared.clone() {
                    self.seen.insert(id, Seen::InFlight);
                    return self.dispatch(shared, received);
                }
                if let Some(d) = self.summary.dry_run.as_mut() {
                    d.record(dead_letter.error_code, rid);
                }
            }
        }
        self.seen.insert(id, Seen::HandedBack);
        received.hand_back();
    }

    fn on_redelivery(&mut self, seen: Seen, received: Received) {
        match seen {
            // The ack of the first delivery was lost; the copy is already on the topic.
            Seen::Replayed => {
                self.summary.redelivered_after_replay += 1;
                received.ack();
            }
            Seen::InFlight | Seen::HandedBack => received.hand_back(),
        }
    }

    fn dispatch(&mut self, shared: Arc<Shared>, received: Received) {
        self.in_flight += 1;
        let slot = self.pacer.next_slot();
        let tx = self.done_tx.clone();
        tokio::spawn(async move {
            let done = replay_one(&shared, slot, received).await;
            let _ = tx.send(done);
        });
    }

    fn on_done(&mut self, done: Done) {
        self.in_flight -= 1;
        self.last_activity = Instant::now();
        match done {
            Done::Replayed(id) => {
                self.summary.replayed += 1;
                self.seen.insert(id, Seen::Replayed);
            }
            Done::Failed(id, e) => {
                self.summary.failed += 1;
                self.seen.insert(id, Seen::HandedBack);
                self.fail(e);
            }
            Done::Abandoned(id) => {
                self.seen.insert(id, Seen::HandedBack);
            }
        }
    }
}

/// Republishes one dead letter at its slot and acks it only once Pub/Sub returned the new
/// message id. Any failure hands the dead letter back (nack), so it stays on the subscription.
async fn replay_one(shared: &Shared, slot: Instant, received: Received) -> Done {
    tokio::time::sleep_until(slot).await;
    let id = received.message_id().to_owned();
    if shared.abort.load(Ordering::SeqCst) {
        received.hand_back();
        return Done::Abandoned(id);
    }
    let out = received.dead_letter().republished(chrono::Utc::now());
    match shared.publisher.publish(to_message(out)).await {
        Ok(_message_id) => {
            received.ack();
            Done::Replayed(id)
        }
        Err(e) => {
            shared.abort.store(true, Ordering::SeqCst);
            received.hand_back();
            Done::Failed(id, ReplayError::publish(&shared.topic, &e))
        }
    }
}

/// The run's side of the reader's loop ([`Reader::run`]).
impl Consume for Pump {
    /// A republish that ended.
    type Side = Done;
    /// Ctrl-C and SIGTERM (once `run` listens for it) stop the run: see
    /// [`Pump::stop_for_signal`].
    const CTRL_C_STOPS: bool = true;

    /// Over once nothing is in flight and there is nothing more to take on.
    fn finished(&self) -> bool {
        self.in_flight == 0 && (self.error.is_some() || self.stream_ended || self.limit_reached())
    }

    /// Takes a delivery only while there is room in the window and the run has neither
    /// failed nor reached `--limit`.
    fn pulling(&self) -> bool {
        self.error.is_none()
            && !self.stream_ended
            && !self.limit_reached()
            && self.in_flight < self.window
    }

    /// `--idle-timeout` counts only with nothing in flight, from the last message not seen
    /// before.
    fn quiet_at(&self) -> Option<Instant> {
        (self.in_flight == 0).then(|| self.last_activity + self.plan.idle_timeout)
    }

    fn on_delivery(&mut self, received: Received) -> ControlFlow<()> {
        self.on_message(received);
        ControlFlow::Continue(())
    }

    fn on_error(&mut self, error: ReadError) -> ControlFlow<()> {
        match error {
            ReadError::Pull { source, .. } => self.fail(ReplayError::Pull {
                subscription: self.plan.subscription.clone(),
                message: source.to_string(),
            }),
            _ => self.stream_ended = true,
        }
        ControlFlow::Continue(())
    }

    fn side(&mut self) -> Option<&mut mpsc::UnboundedReceiver<Done>> {
        Some(&mut self.done_rx)
    }

    fn on_side(&mut self, done: Done) {
        self.on_done(done);
    }

    fn after_turn(&mut self) {
        self.progress.update(&self.summary, self.started.elapsed());
    }
}
