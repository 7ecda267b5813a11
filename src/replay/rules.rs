//! Which dead letters a replay moves, and what the republished message carries (DESIGN.md §6).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::event::rfc3339;
use crate::topics::OutMessage;

/// Attribute that counts how often a request has been replayed.
pub const REPLAY_COUNT: &str = "replay_count";
/// Attribute with the time of the latest replay.
pub const REPLAYED_AT: &str = "replayed_at";

/// Attributes that describe the failure rather than the request. They are dropped on replay so
/// that the worker sees the request as its caller sent it.
const DEAD_LETTER_ATTRIBUTES: [&str; 5] = [
    "failed_stage",
    "dead_lettered_at",
    "operation",
    "attempt",
    "accepted_at",
];

/// The filters and the loop guard of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Replay only these request ids (any of them); empty means all.
    pub request_ids: Vec<String>,
    /// Replay only these `error_code`s (any of them); empty means all.
    pub error_codes: Vec<String>,
    /// Every one of these attributes must be present with exactly this value.
    pub attributes: Vec<(String, String)>,
    /// Messages already replayed this often are left in place.
    pub max_replays: u32,
}

/// What to do with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Republish it, then ack it.
    Replay,
    /// It does not match the filters: hand it back untouched.
    SkipFilter,
    /// It was replayed `--max-replays` times already: hand it back untouched.
    SkipMaxReplays,
}

impl Rules {
    /// Filters first, so that `skipped_max_replays` counts only messages the caller asked for.
    pub fn verdict(&self, attributes: &HashMap<String, String>, data: &[u8]) -> Verdict {
        let id_ok = self.request_ids.is_empty()
            || request_id(attributes, data).is_some_and(|id| self.request_ids.contains(&id));
        let code_ok = self.error_codes.is_empty()
            || attributes
                .get("error_code")
                .is_some_and(|c| self.error_codes.contains(c));
        let attrs_ok = self
            .attributes
            .iter()
            .all(|(k, v)| attributes.get(k) == Some(v));
        if !(id_ok && code_ok && attrs_ok) {
            Verdict::SkipFilter
        } else if replay_count(attributes) >= self.max_replays {
            Verdict::SkipMaxReplays
        } else {
            Verdict::Replay
        }
    }
}

/// `replay_count` of an incoming message; absent or unreadable counts as never replayed.
pub fn replay_count(attributes: &HashMap<String, String>) -> u32 {
    attributes
        .get(REPLAY_COUNT)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The request id from the `request_id` attribute, else from the request JSON itself (a
/// message that Pub/Sub dead-lettered on its own carries whatever the caller set).
pub fn request_id(attributes: &HashMap<String, String>, data: &[u8]) -> Option<String> {
    if let Some(id) = attributes.get("request_id") {
        return Some(id.clone());
    }
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    value.get("request_id")?.as_str().map(str::to_owned)
}

fn is_dead_letter_attribute(key: &str) -> bool {
    key.starts_with("CloudPubSubDeadLetterSource")
        || key.starts_with("error_")
        || DEAD_LETTER_ATTRIBUTES.contains(&key)
}

/// The message to put back on the requests topic: the original data, the caller's attributes
/// without the dead-letter ones, `replay_count` + 1 and `replayed_at`.
pub fn republished(
    data: &[u8],
    attributes: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> OutMessage {
    let mut out: BTreeMap<String, String> = attributes
        .iter()
        .filter(|(k, _)| !is_dead_letter_attribute(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(
        REPLAY_COUNT.into(),
        (replay_count(attributes) + 1).to_string(),
    );
    out.insert(REPLAYED_AT.into(), rfc3339(now));
    OutMessage {
        data: data.to_vec(),
        attributes: out,
    }
}

/// Parses `--attribute K=V`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rules() -> Rules {
        Rules {
            max_replays: 3,
            ..Rules::default()
        }
    }

    #[test]
    fn verdicts_follow_filters_then_the_replay_count() {
        let nf = attrs(&[("request_id", "a"), ("error_code", "NOT_FOUND"), ("k", "v")]);
        let cases: Vec<(&str, Rules, HashMap<String, String>, Verdict)> = vec![
            ("no filter", rules(), nf.clone(), Verdict::Replay),
            (
                "request id matches",
                Rules {
                    request_ids: vec!["b".into(), "a".into()],
                    ..rules()
                },
                nf.clone(),
                Verdict::Replay,
            ),
            (
                "request id differs",
                Rules {
                    request_ids: vec!["b".into()],
                    ..rules()
                },
                nf.clone(),
                Verdict::SkipFilter,
            ),
            (
                "error code differs",
                Rules {
                    error_codes: vec!["INVALID_REQUEST".into()],
                    ..rules()
                },
                nf.clone(),
                Verdict::SkipFilter,
            ),
            (
                "attribute value differs",
                Rules {
                    attributes: vec![("k".into(), "w".into())],
                    ..rules()
                },
                nf.clone(),
                Verdict::SkipFilter,
            ),
            (
                "replayed twice is below 3",
                rules(),
                attrs(&[("replay_count", "2")]),
                Verdict::Replay,
            ),
            (
                "replayed three times is at the guard",
                rules(),
                attrs(&[("replay_count", "3")]),
                Verdict::SkipMaxReplays,
            ),
            (
                "a filter miss is counted as a filter miss even at the guard",
                Rules {
                    error_codes: vec!["X".into()],
                    ..rules()
                },
                attrs(&[("replay_count", "9")]),
                Verdict::SkipFilter,
            ),
        ];
        for (name, rules, a, want) in cases {
            assert_eq!(rules.verdict(&a, b"{}"), want, "{name}");
        }
    }

    #[test]
    fn request_id_filter_falls_back_to_the_request_json() {
        let r = Rules {
            request_ids: vec!["in-body".into()],
            ..rules()
        };
        let body = br#"{"request_id":"in-body","source_model":"m"}"#;
        assert_eq!(r.verdict(&HashMap::new(), body), Verdict::Replay);
        assert_eq!(r.verdict(&HashMap::new(), b"not json"), Verdict::SkipFilter);
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
        let out = republished(b"", &attrs(&[("replay_count", "junk")]), Utc::now());
        assert_eq!(out.attributes["replay_count"], "1");
    }

    #[test]
    fn attribute_flags_need_a_key_and_an_equals_sign() {
        assert_eq!(
            parse_key_value("k=v=w").unwrap(),
            ("k".into(), "v=w".into())
        );
        assert_eq!(parse_key_value("k=").unwrap(), ("k".into(), "".into()));
        assert!(parse_key_value("=v").is_err());
        assert!(parse_key_value("kv").is_err());
    }
}
