//! Reading a pull subscription from the command line (DESIGN.md §6): one streaming-pull
//! reader, and the one loop that `replay`, `wait`, `publish --wait` and `events` run on it.
//!
//! A reader consumes nothing by itself. Each delivery comes with its lease ([`Received`]) and
//! the command settles it: ack, or hand back at once (ack deadline 0). What is still leased
//! when the reader closes goes back to the subscription, so a command that stops early leaves
//! every message it did not settle for the next reader.
//!
//! A [`browsing`](Reader::browsing) reader reads a subscription without consuming it: a
//! message the command handed back is not delivered to the command again. Pub/Sub offers a
//! handed-back message again at once, so the reader holds such a redelivery for
//! [`REDELIVERY_PAUSE`] and hands it back itself, and the loop neither spins nor shows the
//! command the same message twice. A command that lists what waits on a subscription browses,
//! hands back each message, and stops when the reader is quiet.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use google_cloud_pubsub::client::Subscriber;
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::handler::Handler;
use google_cloud_pubsub::subscriber::{MessageStream, ShutdownBehavior};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::Connection;
use crate::contract::dead_letter::DeadLetterView;
use crate::contract::event::CompletionView;

/// Lease granted per extension, the minimum Pub/Sub allows: what a reader that died held is
/// offered again within this time rather than the default 60 s.
const LEASE_EXTENSION: Duration = Duration::from_secs(10);
/// The longest closing a [`Lease::Brief`] reader may take: an unreachable service must not
/// hold the exit code.
const CLOSE_BOUND: Duration = Duration::from_secs(10);
/// Closing a [`Lease::Held`] reader: stop reading the stream after this long without a
/// delivery, or after `DRAIN_MAX` in all.
const DRAIN_QUIET: Duration = Duration::from_millis(300);
const DRAIN_MAX: Duration = Duration::from_secs(3);
/// Time for the server to register that the stream closed before the hand-back.
const HAND_BACK_DELAY: Duration = Duration::from_millis(500);
/// How long a browsing reader holds the redelivery of a message it handed back before handing
/// it back again: long enough that the loop does not spin, short enough that another reader
/// soon gets it.
pub const REDELIVERY_PAUSE: Duration = Duration::from_millis(500);

/// The ids of the messages a browsing reader's command handed back, shared with each
/// [`Received`] (a republish task may hand one back from another task).
type HandedBack = Arc<Mutex<HashSet<String>>>;

/// How a reader holds its deliveries, which decides how it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Each delivery is settled as soon as it is read (`wait`, `publish --wait`, `events`).
    /// On close the acks are sent and whatever is still leased goes back at once
    /// (NackImmediately), within [`CLOSE_BOUND`].
    Brief,
    /// Deliveries are held while work on them runs (`replay`: until the republish is
    /// confirmed), at most `max_outstanding` at a time. Closing waits for every handler
    /// (WaitForProcessing): see [`Reader::close_held`].
    Held { max_outstanding: i64 },
}

/// A subscription that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The subscriber client could not be built (credentials, endpoint).
    #[error("connecting to Pub/Sub to pull {subscription}: {source}")]
    Connect {
        subscription: String,
        #[source]
        source: google_cloud_gax::client_builder::Error,
    },
    /// Pulling failed permanently, e.g. the subscription does not exist or the caller lacks
    /// `roles/pubsub.subscriber` on it. What was not settled stays on the subscription.
    #[error("pulling {subscription}: {source}")]
    Pull {
        subscription: String,
        #[source]
        source: google_cloud_pubsub::Error,
    },
    /// The stream ended without an error (not expected from the client).
    #[error("pulling {subscription}: the stream ended")]
    Ended { subscription: String },
}

/// One delivery and its lease. Settle it with [`ack`](Self::ack) or
/// [`hand_back`](Self::hand_back); one dropped unsettled goes back like a hand-back (but a
/// browsing reader delivers it again). This module starts no task (Cloud Run, DESIGN.md
/// §10): a browsing reader holds the redeliveries it pauses and hands them back from
/// [`Reader::next`].
#[derive(Debug)]
pub struct Received {
    message: Message,
    handler: Handler,
    handed_back: Option<HandedBack>,
}

impl Received {
    /// Pub/Sub's id of the message; a redelivery has the same one.
    pub fn message_id(&self) -> &str {
        &self.message.message_id
    }

    pub fn attributes(&self) -> &HashMap<String, String> {
        &self.message.attributes
    }

    /// The message read as a dead letter (`copy-dead-letter-replay`).
    pub fn dead_letter(&self) -> DeadLetterView<'_> {
        DeadLetterView::parse(&self.message.attributes, &self.message.data)
    }

    /// The message read as a completion event (`copy-completions`).
    pub fn completion(&self) -> CompletionView {
        CompletionView::parse(&self.message.attributes, &self.message.data)
    }

    /// Consumes the message: Pub/Sub will not deliver it again (at least once: it may).
    pub fn ack(self) {
        self.handler.ack();
    }

    /// Gives the message back at once (ack deadline 0), for another reader or a later run. A
    /// browsing reader does not deliver it to this command again.
    pub fn hand_back(self) {
        if let Some(ids) = &self.handed_back {
            ids.lock()
                .expect("no panic holds this lock")
                .insert(self.message.message_id.clone());
        }
        self.handler.nack();
    }
}

/// What a command does with what its reader reads; [`Reader::run`] drives it.
pub trait Consume {
    /// Work the command started that ends later (replay: a republish), or `Infallible`.
    type Side;
    /// Whether Ctrl-C stops the loop; otherwise the default handler ends the process.
    const CTRL_C_STOPS: bool;
    /// Checked before every turn: the loop ends once it is true.
    fn finished(&self) -> bool;
    /// Whether to take another delivery now (quiet is only noticed while pulling).
    fn pulling(&self) -> bool {
        true
    }
    /// When waiting for the next delivery turns into [`Consume::on_quiet`]; `None`: never.
    fn quiet_at(&self) -> Option<Instant>;
    /// One delivery, to settle.
    fn on_delivery(&mut self, received: Received) -> ControlFlow<()>;
    /// Nothing came before [`Consume::quiet_at`]: stop, unless the command follows for ever.
    fn on_quiet(&mut self) -> ControlFlow<()> {
        ControlFlow::Break(())
    }
    /// The stream failed or ended.
    fn on_error(&mut self, error: ReadError) -> ControlFlow<()>;
    /// Where work the command started reports its end.
    fn side(&mut self) -> Option<&mut UnboundedReceiver<Self::Side>> {
        None
    }
    fn on_side(&mut self, _side: Self::Side) {}
    /// After every turn that did not stop the loop.
    fn after_turn(&mut self) {}
}

/// Why [`Reader::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// [`Consume::finished`] turned true.
    Finished,
    /// A handler answered `Break`.
    Stopped,
    /// Ctrl-C or SIGTERM, for a consumer that stops on it.
    Interrupted,
}

/// A streaming pull of one subscription.
pub struct Reader {
    subscription: String,
    stream: MessageStream,
    browse: Option<Browse>,
}

/// What a [`browsing`](Reader::browsing) reader keeps.
#[derive(Default)]
struct Browse {
    handed_back: HandedBack,
    /// Redeliveries of handed-back messages, each with when to hand it back again.
    paused: VecDeque<(Instant, Received)>,
}

impl Reader {
    /// A reader of `subscription` (full name) through a client of its own.
    pub async fn connect(
        conn: &Connection,
        subscription: &str,
        lease: Lease,
    ) -> Result<Self, ReadError> {
        let subscriber = conn
            .subscriber()
            .await
            .map_err(|source| ReadError::Connect {
                subscription: subscription.to_owned(),
                source,
            })?;
        Ok(Self::open(&subscriber, subscription, lease))
    }

    /// A reader of `subscription` (full name) through `subscriber`. The streaming pull opens
    /// at the first read.
    pub fn open(subscriber: &Subscriber, subscription: &str, lease: Lease) -> Self {
        let builder = subscriber
            .subscribe(subscription)
            .set_max_lease_extension(LEASE_EXTENSION);
        let stream = match lease {
            Lease::Brief => builder.set_shutdown_behavior(ShutdownBehavior::NackImmediately),
            Lease::Held { max_outstanding } => builder
                .set_max_outstanding_messages(max_outstanding)
                .set_shutdown_behavior(ShutdownBehavior::WaitForProcessing),
        }
        .build();
        Self {
            subscription: subscription.to_owned(),
            stream,
            browse: None,
        }
    }

    /// Reads without consuming: a message the command handed back is not delivered to it
    /// again (see the module's documentation), so the command sees each message once.
    #[must_use]
    pub fn browsing(mut self) -> Self {
        self.browse = Some(Browse::default());
        self
    }

    /// The next delivery; a browsing reader skips, and pauses, the ones handed back before.
    pub async fn next(&mut self) -> Result<Received, ReadError> {
        loop {
            let due = self
                .browse
                .as_ref()
                .and_then(|b| b.paused.front())
                .map(|p| p.0);
            // `None`: the pause of the first held redelivery is over before the stream spoke.
            let next = match due {
                Some(due) => tokio::select! {
                    biased;
                    () = tokio::time::sleep_until(due) => None,
                    next = self.stream.next() => Some(next),
                },
                None => Some(self.stream.next().await),
            };
            let (message, handler) = match next {
                None => {
                    self.hand_back_paused(Instant::now());
                    continue;
                }
                Some(Some(Ok(delivery))) => delivery,
                Some(Some(Err(source))) => {
                    return Err(ReadError::Pull {
                        subscription: self.subscription.clone(),
                        source,
                    });
                }
                Some(None) => {
                    return Err(ReadError::Ended {
                        subscription: self.subscription.clone(),
                    });
                }
            };
            let handed_back = self.browse.as_ref().map(|b| Arc::clone(&b.handed_back));
            let received = Received {
                message,
                handler,
                handed_back,
            };
            match &mut self.browse {
                Some(b) if b.was_handed_back(received.message_id()) => b
                    .paused
                    .push_back((Instant::now() + REDELIVERY_PAUSE, received)),
                _ => return Ok(received),
            }
        }
    }

    /// Hands back the paused redeliveries that are due by `now`.
    fn hand_back_paused(&mut self, now: Instant) {
        let Some(b) = &mut self.browse else { return };
        while b.paused.front().is_some_and(|p| p.0 <= now) {
            if let Some((_, received)) = b.paused.pop_front() {
                received.handler.nack();
            }
        }
    }

    /// The next delivery, or `None` once `until` passed first.
    async fn next_before(&mut self, until: Option<Instant>) -> Option<Result<Received, ReadError>> {
        match until {
            Some(t) => tokio::time::timeout_at(t, self.next()).await.ok(),
            None => Some(self.next().await),
        }
    }

    /// The event loop. Until [`Consume::finished`], or a handler answers `Break`, it hands
    /// `c` whichever comes first of:
    /// 1. a delivery, while [`Consume::pulling`];
    /// 2. the stream failing or ending;
    /// 3. [`Consume::quiet_at`] passing without a delivery;
    /// 4. work of `c`'s reporting its end on [`Consume::side`];
    /// 5. Ctrl-C (and SIGTERM, once the command called
    ///    [`listen`](crate::clients::interrupt::listen)), which ends the loop when
    ///    [`Consume::CTRL_C_STOPS`].
    pub async fn run<C: Consume>(&mut self, c: &mut C) -> Ended {
        while !c.finished() {
            let quiet_at = c.quiet_at();
            let pulling = c.pulling();
            let flow = tokio::select! {
                next = self.next_before(quiet_at), if pulling => match next {
                    Some(Ok(received)) => c.on_delivery(received),
                    Some(Err(e)) => c.on_error(e),
                    None => c.on_quiet(),
                },
                Some(side) = recv(c.side()) => {
                    c.on_side(side);
                    ControlFlow::Continue(())
                }
                _ = crate::clients::interrupt::stopped(), if C::CTRL_C_STOPS => return Ended::Interrupted,
            };
            if flow.is_break() {
                return Ended::Stopped;
            }
            c.after_turn();
        }
        Ended::Finished
    }

    /// Closes a [`Lease::Brief`] reader: sends the acks, and hands back what is still leased
    /// (paused redeliveries included).
    pub async fn close(mut self) {
        if let Some(b) = &mut self.browse {
            b.paused.drain(..).for_each(|(_, r)| r.handler.nack());
        }
        let token = self.stream.shutdown_token();
        let _ = tokio::time::timeout(CLOSE_BOUND, token.shutdown()).await;
    }

    /// Closes a [`Lease::Held`] reader without leaving anything leased to the finished run:
    /// 1. reads what the server already sent to the stream (a message left unread there is
    ///    leased to this run until the ack deadline passes), acking those for which `done`
    ///    says their work is already done, and holding the others;
    /// 2. closes the streaming pull and gives the server a moment to see it closed: a message
    ///    handed back while the stream is open is delivered to it again at once, and would
    ///    then stay leased to this run until its deadline;
    /// 3. hands back what it held, waits until every handler is gone, then sends the pending
    ///    acks and nacks.
    pub async fn close_held(mut self, mut done: impl FnMut(&Received) -> bool) {
        let mut held = Vec::new();
        let until = Instant::now() + DRAIN_MAX;
        while Instant::now() < until {
            match tokio::time::timeout(DRAIN_QUIET, self.next()).await {
                Ok(Ok(received)) if done(&received) => received.ack(),
                Ok(Ok(received)) => held.push(received),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        if let Some(b) = self.browse.take() {
            held.extend(b.paused.into_iter().map(|p| p.1));
        }
        let token = self.stream.shutdown_token();
        drop(self);
        tokio::time::sleep(HAND_BACK_DELAY).await;
        drop(held);
        token.shutdown().await;
    }
}

impl Browse {
    fn was_handed_back(&self, message_id: &str) -> bool {
        self.handed_back
            .lock()
            .expect("no panic holds this lock")
            .contains(message_id)
    }
}

/// The next report on `rx`; with none, never.
async fn recv<S>(rx: Option<&mut UnboundedReceiver<S>>) -> Option<S> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
