//! The watch message of DESIGN.md §3 on `copy-operations`: the normalised request as data,
//! and the operation, attempt and acceptance time as attributes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{OutMessage, Rejection, attr, rfc3339};

/// The attributes that make a message a watch message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The long-running operation name, as Vertex AI returned it. `None` for a *pending*
    /// watch: the copy is not started yet (waiting for its turn), or CopyModel answered
    /// ALREADY_EXISTS and the destination could not be read yet (the first copy is probably
    /// still running), so the watch stage reads the destination instead of an operation.
    /// The attribute is then absent.
    pub operation: Option<String>,
    /// The copy attempt, from 1.
    pub attempt: u32,
    /// When the request stage accepted the request.
    pub accepted_at: DateTime<Utc>,
}

impl Watch {
    /// The watch message: `data` (the normalised request), this watch's attributes, and the
    /// caller's without the stage-only ones, within Pub/Sub's limits. Also returns the
    /// caller's keys that did not fit. The waiter's tag counts as ours: were it dropped, the
    /// event would miss the waiter's filtered subscription.
    pub fn to_message(
        &self,
        data: Vec<u8>,
        caller_attributes: &BTreeMap<String, String>,
        request_id: &str,
    ) -> (OutMessage, Vec<String>) {
        let mut attributes = BTreeMap::new();
        attributes.insert(attr::REQUEST_ID.into(), request_id.to_owned());
        if let Some(op) = &self.operation {
            attributes.insert(attr::OPERATION.into(), op.clone());
        }
        attributes.insert(attr::ATTEMPT.into(), self.attempt.to_string());
        attributes.insert(attr::ACCEPTED_AT.into(), rfc3339(self.accepted_at));
        if let Some(tag) = caller_attributes.get(attr::WAITER) {
            attributes.insert(attr::WAITER.into(), tag.clone());
        }
        let dropped = attr::merge_within_limits(&mut attributes, &carried(caller_attributes));
        (OutMessage { data, attributes }, dropped)
    }

    /// Reads a delivery's attributes. `publish_time` stands in for a missing `accepted_at`.
    pub fn parse(
        attributes: &BTreeMap<String, String>,
        publish_time: Option<&str>,
    ) -> Result<Self, Rejection> {
        let operation = attributes
            .get(attr::OPERATION)
            .filter(|op| !op.is_empty())
            .cloned();
        let attempt = match attributes.get(attr::ATTEMPT) {
            None => 1,
            Some(s) => s.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                Rejection::new(
                    attr::ATTEMPT,
                    format!("must be a positive integer, got {s:?}"),
                )
            })?,
        };
        let accepted_at = attributes
            .get(attr::ACCEPTED_AT)
            .map(String::as_str)
            .or(publish_time)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| Rejection::new(attr::ACCEPTED_AT, "must be an RFC 3339 time"))?;
        Ok(Self {
            operation,
            attempt,
            accepted_at,
        })
    }
}

/// Attributes to carry onto every message handed on: the caller's (so `traceparent` and
/// `replay_count` survive), without the stage-only ones.
pub fn carried(attributes: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter(|(k, _)| !attr::STAGE_ONLY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiter_tag_is_carried_even_when_the_caller_fills_every_attribute() {
        let mut caller: BTreeMap<String, String> = (0..120)
            .map(|i| (format!("a{i:03}"), "v".to_owned()))
            .collect();
        caller.insert("waiter".into(), "3f2a9c1e0b7d4a58".into());
        let w = Watch {
            operation: Some("projects/1/locations/l/operations/2".into()),
            attempt: 1,
            accepted_at: Utc::now(),
        };
        let (m, dropped) = w.to_message(b"{}".to_vec(), &caller, "r1");
        assert_eq!(m.attributes["waiter"], "3f2a9c1e0b7d4a58");
        assert_eq!(m.attributes.len(), attr::MAX_ATTRIBUTES);
        assert!(!dropped.contains(&"waiter".to_owned()));
    }

    #[test]
    fn a_watch_message_round_trips_and_drops_the_previous_stage_attributes() {
        let caller = BTreeMap::from([
            ("traceparent".to_owned(), "t".to_owned()),
            ("attempt".to_owned(), "9".to_owned()),
        ]);
        let w = Watch {
            operation: Some("projects/1/locations/l/operations/2".into()),
            attempt: 2,
            accepted_at: DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let (m, dropped) = w.to_message(b"{}".to_vec(), &caller, "r1");
        assert!(dropped.is_empty());
        assert_eq!(m.attributes["attempt"], "2");
        assert_eq!(m.attributes["traceparent"], "t");
        assert_eq!(m.attributes["request_id"], "r1");
        assert_eq!(Watch::parse(&m.attributes, None).unwrap(), w);
        let pending = Watch {
            operation: None,
            ..w.clone()
        };
        let (m, _) = pending.to_message(b"{}".to_vec(), &caller, "r1");
        assert!(
            !m.attributes.contains_key("operation"),
            "a pending watch names no operation"
        );
        assert_eq!(Watch::parse(&m.attributes, None).unwrap(), pending);
        let bad = BTreeMap::from([("attempt".to_owned(), "0".to_owned())]);
        assert_eq!(
            Watch::parse(&bad, Some("2026-11-22T10:00:00Z"))
                .unwrap_err()
                .field,
            "attempt"
        );
    }
}
