//! The dead-letter message of DESIGN.md §3, and what a replay puts back on `copy-requests`
//! (DESIGN.md §6).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::event::ErrorInfo;
use super::{OutMessage, attr, rfc3339, truncate_utf8};

/// Where a dead letter failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedStage {
    Request,
    Operation,
    /// A webhook callback the receiver refused, or that could not be delivered.
    Callback,
}

impl FailedStage {
    pub fn as_str(self) -> &'static str {
        match self {
            FailedStage::Request => "request",
            FailedStage::Operation => "operation",
            FailedStage::Callback => "callback",
        }
    }
}

/// Longest `error_message` attribute, in bytes.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// A `copy-dead-letter` message: the request bytes exactly as received, plus why. The
/// caller's attributes (`traceparent`, `replay_count`, its own keys) are kept beside ours,
/// within Pub/Sub's limits; the second value names the caller's keys that did not fit.
pub fn dead_letter(
    original: &[u8],
    caller_attributes: &BTreeMap<String, String>,
    request_id: Option<&str>,
    error: &ErrorInfo,
    stage: FailedStage,
    now: DateTime<Utc>,
) -> (OutMessage, Vec<String>) {
    let mut a = BTreeMap::new();
    if let Some(id) = request_id {
        a.insert(attr::REQUEST_ID.into(), id.to_owned());
    }
    a.insert(attr::ERROR_CODE.into(), error.code.clone());
    a.insert(
        attr::ERROR_MESSAGE.into(),
        truncate_utf8(&error.message, MAX_ERROR_MESSAGE).to_owned(),
    );
    a.insert(attr::FAILED_STAGE.into(), stage.as_str().into());
    a.insert(attr::DEAD_LETTERED_AT.into(), rfc3339(now));
    let dropped = attr::merge_within_limits(&mut a, caller_attributes);
    let msg = OutMessage {
        data: original.to_vec(),
        attributes: a,
    };
    (msg, dropped)
}

/// `replay_count` of an incoming message: absent is 0 (never replayed). A value that is not a
/// count is `None`, which the replay guard treats as at its limit: read as 0, it would reset
/// `--max-replays` for a message that may have gone round many times (issue 28).
pub fn replay_count(attributes: &HashMap<String, String>) -> Option<u32> {
    match attributes.get(attr::REPLAY_COUNT) {
        None => Some(0),
        Some(v) => v.trim().parse().ok(),
    }
}

/// The request id from the `request_id` attribute, else from the request JSON itself (a
/// message that Pub/Sub dead-lettered on its own carries whatever the caller set).
pub fn request_id(attributes: &HashMap<String, String>, data: &[u8]) -> Option<String> {
    if let Some(id) = attributes.get(attr::REQUEST_ID) {
        return Some(id.clone());
    }
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    value.get(attr::REQUEST_ID)?.as_str().map(str::to_owned)
}

/// The message a replay puts back on the requests topic: the original data, the caller's
/// attributes without the dead-letter ones, `replay_count` + 1 and `replayed_at`.
pub fn republished(
    data: &[u8],
    attributes: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> OutMessage {
    let caller: BTreeMap<String, String> = attributes
        .iter()
        .filter(|(k, _)| !attr::is_dead_letter_attribute(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = BTreeMap::from([
        (
            attr::REPLAY_COUNT.to_owned(),
            replay_count(attributes)
                .map_or(u32::MAX, |n| n.saturating_add(1))
                .to_string(),
        ),
        (attr::REPLAYED_AT.to_owned(), rfc3339(now)),
    ]);
    attr::merge_within_limits(&mut out, &caller);
    OutMessage {
        data: data.to_vec(),
        attributes: out,
    }
}

/// A dead letter as a reader received it from `copy-dead-letter-replay` (DESIGN.md §6): what
/// a replay filters on, read from its attributes and, failing those, its data.
#[derive(Debug, Clone)]
pub struct DeadLetterView<'a> {
    /// The request id: the attribute, else the request JSON's.
    pub request_id: Option<String>,
    /// `error_code`; none on a message that Pub/Sub dead-lettered on its own.
    pub error_code: Option<&'a str>,
    /// `error_message`, cut to [`MAX_ERROR_MESSAGE`] bytes by the worker.
    pub error_message: Option<&'a str>,
    /// `failed_stage`: `request`, `operation` or `callback`, as the worker wrote it.
    pub failed_stage: Option<&'a str>,
    /// `failed_stage` is `callback`: a webhook callback, not a request.
    pub is_callback: bool,
    /// `dead_lettered_at`; `None` when absent or not RFC 3339.
    pub dead_lettered_at: Option<DateTime<Utc>>,
    /// How often it was replayed already; `None` when `replay_count` is not a count.
    pub replay_count: Option<u32>,
    /// Every attribute, the caller's among them.
    pub attributes: &'a HashMap<String, String>,
    /// The original data: a request, or a callback's event.
    pub data: &'a [u8],
}

impl<'a> DeadLetterView<'a> {
    /// Reads a delivered message's attributes and data.
    pub fn parse(attributes: &'a HashMap<String, String>, data: &'a [u8]) -> Self {
        Self {
            request_id: request_id(attributes, data),
            error_code: attributes.get(attr::ERROR_CODE).map(String::as_str),
            error_message: attributes.get(attr::ERROR_MESSAGE).map(String::as_str),
            failed_stage: attributes.get(attr::FAILED_STAGE).map(String::as_str),
            is_callback: attributes.get(attr::FAILED_STAGE).map(String::as_str)
                == Some(FailedStage::Callback.as_str()),
            dead_lettered_at: attributes
                .get(attr::DEAD_LETTERED_AT)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            replay_count: replay_count(attributes),
            attributes,
            data,
        }
    }

    /// What a replay puts back: see [`republished`].
    pub fn republished(&self, now: DateTime<Utc>) -> OutMessage {
        republished(self.data, self.attributes, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    use crate::contract::attr::from_pairs as attrs;

    #[test]
    fn dead_letter_keeps_original_bytes_and_cuts_long_messages_on_a_char_boundary() {
        let msg = "é".repeat(600); // 1200 bytes
        let e = ErrorInfo {
            code: "NOT_FOUND".into(),
            message: msg,
        };
        let caller = BTreeMap::from([
            ("traceparent".to_owned(), "00-a-b-01".to_owned()),
            ("error_code".to_owned(), "SPOOFED".to_owned()),
        ]);
        let (m, _) = dead_letter(
            b"\xff raw",
            &caller,
            Some("r1"),
            &e,
            FailedStage::Request,
            Utc::now(),
        );
        assert_eq!(m.data, b"\xff raw");
        assert_eq!(m.attributes["error_message"].len(), 1024);
        assert_eq!(m.attributes["failed_stage"], "request");
        assert_eq!(m.attributes["error_code"], "NOT_FOUND");
        assert_eq!(m.attributes["traceparent"], "00-a-b-01");
        assert!(m.attributes.contains_key("dead_lettered_at"));
    }

    /// A view carries every field the worker writes on a dead letter (DESIGN.md §3).
    #[test]
    fn a_view_reads_every_field_of_a_dead_letter() {
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
        let e = ErrorInfo {
            code: "NOT_FOUND".into(),
            message: "source model not found".into(),
        };
        let caller = BTreeMap::from([("replay_count".to_owned(), "2".to_owned())]);
        let (m, _) = dead_letter(b"{}", &caller, Some("r9"), &e, FailedStage::Operation, now);
        let attributes: HashMap<String, String> = m.attributes.into_iter().collect();
        let v = DeadLetterView::parse(&attributes, &m.data);
        assert_eq!(v.request_id.as_deref(), Some("r9"));
        assert_eq!(v.error_code, Some("NOT_FOUND"));
        assert_eq!(v.error_message, Some("source model not found"));
        assert_eq!(v.failed_stage, Some("operation"));
        assert!(!v.is_callback);
        assert_eq!(v.dead_lettered_at, Some(now));
        assert_eq!(v.replay_count, Some(2));
        assert_eq!(v.data, b"{}");
    }

    #[test]
    fn republished_message_drops_dead_letter_attributes_and_counts_the_replay() {
        let incoming = attrs(&[
            ("request_id", "r1"),
            ("traceparent", "00-abc-def-01"),
            ("error_code", "NOT_FOUND"),
            ("error_message", "gone"),
            ("failed_stage", "request"),
            ("dead_lettered_at", "2026-01-01T00:00:00Z"),
            ("operation", "projects/p/locations/l/operations/1"),
            ("attempt", "2"),
            ("accepted_at", "2026-01-01T00:00:00Z"),
            ("CloudPubSubDeadLetterSourceDeliveryCount", "10"),
            (
                "CloudPubSubDeadLetterSourceSubscription",
                "copy-requests-push",
            ),
            ("replay_count", "1"),
            ("replayed_at", "2025-12-31T00:00:00Z"),
        ]);
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let out = republished(b"bytes", &incoming, now);
        assert_eq!(out.data, b"bytes");
        let keys: Vec<&str> = out.attributes.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["replay_count", "replayed_at", "request_id", "traceparent"]
        );
        assert_eq!(out.attributes["replay_count"], "2");
        assert_eq!(out.attributes["replayed_at"], "2026-11-22T10:00:00Z");
    }

    #[test]
    fn first_replay_sets_replay_count_to_one() {
        let out = republished(b"", &attrs(&[]), Utc::now());
        assert_eq!(out.attributes["replay_count"], "1");
    }

    /// The probe: an unreadable `replay_count` reset the max-replays guard (read as 0, the
    /// republished copy said 1).
    #[test]
    fn an_unreadable_replay_count_never_restarts_the_count() {
        for junk in ["junk", "-1", "", "99999999999"] {
            let a = attrs(&[("replay_count", junk)]);
            assert_eq!(replay_count(&a), None, "{junk:?}");
            let out = republished(b"", &a, Utc::now());
            assert_eq!(
                out.attributes["replay_count"],
                u32::MAX.to_string(),
                "{junk:?}"
            );
        }
        assert_eq!(replay_count(&attrs(&[("replay_count", "2")])), Some(2));
        assert_eq!(replay_count(&attrs(&[])), Some(0));
    }
}
