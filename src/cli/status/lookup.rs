//! Reading a request's whole history: `status` keeps every event of each request it looks up
//! (a `failed`, then after a replay a `succeeded`), and answers with the newest by event time
//! (`ce-time`, else the data's `finished_at`), not the first one delivered, counting the
//! earlier ones (DESIGN.md §6).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::ControlFlow;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use tokio::time::Instant;

use crate::clients::pubsub::Connection;
use crate::clients::pubsub::read::{Consume, Ended, Lease, ReadError, Reader, Received};

/// Once every request has an event, how long to go on reading for later ones: a seeked-back
/// subscription hands over its backlog at once, so a quiet spell this long means it is read.
const SETTLE: Duration = Duration::from_secs(2);

/// One event of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// When the event happened; `None` when it carries no readable time (it then counts as
    /// older than any event that has one).
    pub at: Option<DateTime<FixedOffset>>,
    pub status: Option<String>,
    pub line: Value,
}

impl Found {
    /// The event of a delivery: its time from `ce-time`, else the data's `finished_at`.
    fn of(received: &Received) -> (Option<String>, Found) {
        let event = received.completion();
        let time = received
            .attributes()
            .get("ce-time")
            .cloned()
            .or_else(|| event.line["finished_at"].as_str().map(str::to_owned));
        let at = time.and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
        let found = Found {
            at,
            status: event.status,
            line: event.line,
        };
        (event.request_id, found)
    }
}

/// What a lookup found, by request id, and whether Ctrl-C or SIGTERM cut it short.
#[derive(Debug, Default)]
pub struct Looked {
    /// Every event of each request, in the order they were read.
    pub events: BTreeMap<String, Vec<Found>>,
    pub interrupted: bool,
}

impl Looked {
    /// The newest event of `id` (the last read, among equal times), and the statuses of the
    /// earlier ones, oldest first.
    pub fn newest(&self, id: &str) -> Option<(&Found, Vec<&str>)> {
        let mut all: Vec<&Found> = self.events.get(id)?.iter().collect();
        all.sort_by_key(|f| f.at);
        let newest = all.pop()?;
        let earlier = all
            .iter()
            .map(|f| f.status.as_deref().unwrap_or("unknown"))
            .collect();
        Some((newest, earlier))
    }
}

/// The lookup under way.
struct Lookup {
    wanted: BTreeSet<String>,
    looked: Looked,
    /// Message ids read: a redelivery is not a second event.
    seen: HashSet<String>,
    deadline: Instant,
    last_found: Instant,
    error: Option<ReadError>,
}

impl Consume for Lookup {
    type Side = std::convert::Infallible;
    const CTRL_C_STOPS: bool = true;

    fn finished(&self) -> bool {
        false
    }

    /// `--read-for`, or [`SETTLE`] after the last event once every request has one.
    fn quiet_at(&self) -> Option<Instant> {
        if self.wanted.len() == self.looked.events.len() {
            Some(self.deadline.min(self.last_found + SETTLE))
        } else {
            Some(self.deadline)
        }
    }

    fn on_delivery(&mut self, received: Received) -> ControlFlow<()> {
        let (id, found) = Found::of(&received);
        let first = self.seen.insert(received.message_id().to_owned());
        received.ack();
        if let Some(id) = id.filter(|i| first && self.wanted.contains(i)) {
            self.looked.events.entry(id).or_default().push(found);
            self.last_found = Instant::now();
        }
        ControlFlow::Continue(())
    }

    fn on_error(&mut self, error: ReadError) -> ControlFlow<()> {
        self.error = Some(error);
        ControlFlow::Break(())
    }
}

/// Reads `subscription` (a new one of the command's own: everything read is acked) for every
/// event of `ids`, for at most `read_for`.
pub async fn look_up(
    conn: &Connection,
    subscription: &str,
    ids: &[String],
    read_for: Duration,
) -> Result<Looked, ReadError> {
    let mut reader = Reader::connect(conn, subscription, Lease::Brief).await?;
    let mut l = Lookup {
        wanted: ids.iter().cloned().collect(),
        looked: Looked::default(),
        seen: HashSet::new(),
        deadline: Instant::now() + read_for,
        last_found: Instant::now(),
        error: None,
    };
    let ended = reader.run(&mut l).await;
    reader.close().await;
    match l.error {
        Some(e) => Err(e),
        None => Ok(Looked {
            interrupted: ended == Ended::Interrupted,
            ..l.looked
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(at: Option<&str>, status: &str) -> Found {
        Found {
            at: at.map(|t| DateTime::parse_from_rfc3339(t).unwrap()),
            status: Some(status.into()),
            line: Value::Null,
        }
    }

    #[test]
    fn the_newest_event_by_time_is_the_answer_whatever_the_order_read() {
        let mut l = Looked::default();
        let events = l.events.entry("r".into()).or_default();
        events.push(found(Some("2026-11-22T10:05:00Z"), "succeeded"));
        events.push(found(Some("2026-11-22T10:00:00+00:00"), "failed"));
        events.push(found(None, "rejected"));
        let (newest, earlier) = l.newest("r").unwrap();
        assert_eq!(newest.status.as_deref(), Some("succeeded"));
        assert_eq!(earlier, ["rejected", "failed"]);
        assert!(l.newest("other").is_none());
    }
}
