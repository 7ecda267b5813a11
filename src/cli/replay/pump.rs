//! The replay loop: pull dead letters, republish the matching ones, and ack each one only after
//! its republish returned a message id (the no-loss rule of DESIGN.md §6).
//!
//! A SIGKILL at any point loses nothing: a dead letter is acked only after its copy is on the
//! target topic. The price is at most one duplicate per message in flight at the kill.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use google_cloud_pubsub::client::{Publisher, Subscriber};
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::MessageStream;
use google_cloud_pubsub::subscriber::ShutdownBehavior;
use google_cloud_pubsub::subscriber::handler::Handler;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::pace::Pacer;
use super::plan::{Plan, ReplayError};
use super::rules::Verdict;
use super::summary::{Progress, Summary};
use crate::clients::pubsub::to_message;
use crate::contract::attr;
use crate::contract::dead_letter::{republished, request_id};

/// Most republishes in flight at once without `--rate`.
const MAX_IN_FLIGHT: usize = 500;
/// A message handed back comes straight back; waiting a little before handing it back again
/// keeps that loop from spinning while the run looks for messages it has not seen.
const REDELIVERY_PAUSE: Duration = Duration::from_millis(500);
/// At the end, stop reading the stream after this long without a delivery, or after
/// `DRAIN_MAX` in all.
const DRAIN_QUIET: Duration = Duration::from_millis(300);
const DRAIN_MAX: Duration = Duration::from_secs(3);
/// Time for the server to register that the stream closed before the hand-back.
const HAND_BACK_DELAY: Duration = Duration::from_millis(500);
/// Lease granted per extension (the minimum Pub/Sub allows): messages a killed run held are
/// delivered again within this time rather than the default 60 s.
const LEASE_EXTENSION: Duration = Duration::from_secs(10);

/// What this run already did with a message id, so each dead letter is counted once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Its republish is under way.
    InFlight,
    /// Republished and acked.
    Replayed,
    /// Skipped, counted in a dry run, or failed: handed back.
    HandedBack,
}

/// How one republish ended.
enum Done {
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

    /// Streams the subscription until the run is over, then shuts the stream down.
    pub async fn run(&mut self, subscriber: &Subscriber) -> Result<(), ReplayError> {
        let mut stream = subscriber
            .subscribe(self.plan.subscription.clone())
            .set_max_outstanding_messages(self.window.max(100) as i64)
            .set_max_lease_extension(LEASE_EXTENSION)
            .set_shutdown_behavior(ShutdownBehavior::WaitForProcessing)
            .build();
        self.pump(&mut stream).await;
        let held = self.drain(&mut stream).await;
        let token = stream.shutdown_token();
        // Close the streaming pull before handing anything back, and give the server a moment
        // to see it closed: a message handed back while the stream is open is delivered to it
        // again at once, and would then stay leased to this finished run until its deadline.
        drop(stream);
        tokio::time::sleep(HAND_BACK_DELAY).await;
        drop(held);
        // Waits until every handler is gone, then sends the pending acks and nacks.
        token.shutdown().await;
        if let Some(shared) = &self.shared {
            shared.publisher.flush().await;
        }
        self.progress.finish();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The event loop. It handles, until [`Pump::finished`]:
    /// 1. a delivery from the stream, taken only while there is room in the window and the run
    ///    has neither failed nor reached `--limit`;
    /// 2. a republish that ended (replayed, failed or abandoned);
    /// 3. `--idle-timeout` passing with nothing in flight and no message not seen before.
    async fn pump(&mut self, stream: &mut MessageStream) {
        while !self.finished() {
            let idle_at = self.last_activity + self.plan.idle_timeout;
            let pulling = self.pulling();
            let idle = self.in_flight == 0;
            tokio::select! {
                next = stream.next(), if pulling => match next {
                    Some(Ok((message, handler))) => self.on_message(message, handler),
                    Some(Err(e)) => self.fail(ReplayError::Pull {
                        subscription: self.plan.subscription.clone(),
                        message: e.to_string(),
                    }),
                    None => self.stream_ended = true,
                },
                Some(done) = self.done_rx.recv() => self.on_done(done),
                _ = tokio::time::sleep_until(idle_at), if idle => return,
            }
            self.progress.update(&self.summary, self.started.elapsed());
        }
    }

    /// Reads what the server already sent to this stream, and holds it. A message left unread
    /// in the stream is leased to this run until the subscription's ack deadline passes; once
    /// read, it is under lease management and the shutdown hands it back at once.
    async fn drain(&mut self, stream: &mut MessageStream) -> Vec<Handler> {
        let mut held = Vec::new();
        let until = Instant::now() + DRAIN_MAX;
        while Instant::now() < until {
            match tokio::time::timeout(DRAIN_QUIET, stream.next()).await {
                Ok(Some(Ok((message, handler)))) => {
                    if self.seen.get(&message.message_id) == Some(&Seen::Replayed) {
                        self.summary.redelivered_after_replay += 1;
                        handler.ack();
                    } else {
                        held.push(handler);
                    }
                }
                Ok(Some(Err(_)) | None) | Err(_) => break,
            }
        }
        held
    }

    fn limit_reached(&self) -> bool {
        self.plan.limit.is_some_and(|l| self.matched >= l)
    }

    fn pulling(&self) -> bool {
        self.error.is_none()
            && !self.stream_ended
            && !self.limit_reached()
            && self.in_flight < self.window
    }

    /// Over once nothing is in flight and there is nothing more to take on.
    fn finished(&self) -> bool {
        self.in_flight == 0 && (self.error.is_some() || self.stream_ended || self.limit_reached())
    }

    fn fail(&mut self, e: ReplayError) {
        if let Some(shared) = &self.shared {
            shared.abort.store(true, Ordering::SeqCst);
        }
        self.error.get_or_insert(e);
    }

    fn on_message(&mut self, message: Message, handler: Handler) {
        if let Some(seen) = self.seen.get(&message.message_id) {
            self.on_redelivery(*seen, handler);
            return;
        }
        let verdict = self.plan.rules.verdict(&message.attributes, &message.data);
        if verdict == Verdict::Replay && self.limit_reached() {
            // Delivered before the stream noticed the limit: not this run's business.
            handler.nack();
            return;
        }
        self.last_activity = Instant::now();
        self.summary.seen += 1;
        let id = message.message_id.clone();
        match verdict {
            Verdict::SkipFilter => self.summary.skipped_filter += 1,
            Verdict::SkipMaxReplays => self.summary.skipped_max_replays += 1,
            Verdict::Replay => {
                let rid = request_id(&message.attributes, &message.data);
                if self.shared.is_some()
                    && let Some(r) = &rid
                    && !self.replayed_requests.insert(r.clone())
                {
                    self.summary.skipped_replayed_this_run += 1;
                    self.seen.insert(id, Seen::HandedBack);
                    handler.nack();
                    return;
                }
                self.matched += 1;
                if let Some(shared) = self.shared.clone() {
                    self.seen.insert(id, Seen::InFlight);
                    return self.dispatch(shared, message, handler);
                }
                let error_code = message.attributes.get(attr::ERROR_CODE).map(String::as_str);
                if let Some(d) = self.summary.dry_run.as_mut() {
                    d.record(error_code, rid);
                }
            }
        }
        self.seen.insert(id, Seen::HandedBack);
        handler.nack();
    }

    fn on_redelivery(&mut self, seen: Seen, handler: Handler) {
        match seen {
            // The ack of the first delivery was lost; the copy is already on the topic.
            Seen::Replayed => {
                self.summary.redelivered_after_replay += 1;
                handler.ack();
            }
            Seen::InFlight => handler.nack(),
            Seen::HandedBack => {
                tokio::spawn(async move {
                    tokio::time::sleep(REDELIVERY_PAUSE).await;
                    handler.nack();
                });
            }
        }
    }

    fn dispatch(&mut self, shared: Arc<Shared>, message: Message, handler: Handler) {
        self.in_flight += 1;
        let slot = self.pacer.next_slot();
        let tx = self.done_tx.clone();
        tokio::spawn(async move {
            let done = replay_one(&shared, slot, message, handler).await;
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
async fn replay_one(shared: &Shared, slot: Instant, message: Message, handler: Handler) -> Done {
    tokio::time::sleep_until(slot).await;
    let id = message.message_id.clone();
    if shared.abort.load(Ordering::SeqCst) {
        handler.nack();
        return Done::Abandoned(id);
    }
    let out = republished(&message.data, &message.attributes, chrono::Utc::now());
    match shared.publisher.publish(to_message(out)).await {
        Ok(_message_id) => {
            handler.ack();
            Done::Replayed(id)
        }
        Err(e) => {
            shared.abort.store(true, Ordering::SeqCst);
            handler.nack();
            Done::Failed(id, ReplayError::publish(&shared.topic, &e))
        }
    }
}
