//! Attribute keys of the worker's messages (DESIGN.md §3), spelled once, and the shapes and
//! limits (DESIGN.md §10) their values are held to where they enter.

use std::collections::BTreeMap;

/// The request id: set by publishers, carried on every message of the pipeline.
pub const REQUEST_ID: &str = "request_id";
/// W3C trace context, carried through every message when present.
pub const TRACEPARENT: &str = "traceparent";
/// The tag of the `publish --wait` that published the request: carried onto the watch
/// messages and the completion event, so that the waiter's temporary subscription filters on
/// this one short value whatever the batch size (DESIGN.md §3, §6). Kept on dead letters and
/// through replay: a waiter still reading its kept subscription then sees the replayed
/// request's event, and a stale tag reaches no one, since only its own waiter filters on it.
pub const WAITER: &str = "waiter";

/// Watch message: the long-running operation name.
pub const OPERATION: &str = "operation";
/// Watch message: the copy attempt, from 1.
pub const ATTEMPT: &str = "attempt";
/// Watch message: when the request stage accepted the request (RFC 3339).
pub const ACCEPTED_AT: &str = "accepted_at";

/// Completion event: `succeeded`, `failed` or `rejected`, for subscription filters.
pub const STATUS: &str = "status";
/// Completion event: the destination project as the request named it.
pub const DESTINATION_PROJECT: &str = "destination_project";

/// Callback message: where to post the event.
pub const CALLBACK_URL: &str = "callback_url";
/// Callback message: the Standard Webhooks `webhook-id` (the event's `ce-id`).
pub const WEBHOOK_ID: &str = "webhook_id";
/// Callback message: the worker's seal over it (DESIGN.md §7), when a signing secret is set.
pub const CALLBACK_SEAL: &str = "callback_seal";

/// Dead letter: the google.rpc code name, `INVALID_REQUEST`, or for callbacks
/// `CALLBACK_REJECTED` / `CALLBACK_UNDELIVERED`.
pub const ERROR_CODE: &str = "error_code";
/// Dead letter: the error message, cut to 1024 bytes.
pub const ERROR_MESSAGE: &str = "error_message";
/// Dead letter: `request`, `operation` or `callback`.
pub const FAILED_STAGE: &str = "failed_stage";
/// Dead letter: when it was dead-lettered.
pub const DEAD_LETTERED_AT: &str = "dead_lettered_at";
/// Prefix of the attributes Pub/Sub adds when it dead-letters a message on its own.
pub const PUBSUB_DEAD_LETTER_PREFIX: &str = "CloudPubSubDeadLetterSource";

/// Replay: how often the request was replayed.
pub const REPLAY_COUNT: &str = "replay_count";
/// Replay: the time of the latest replay.
pub const REPLAYED_AT: &str = "replayed_at";

/// Attributes that belong to one watch message only: never carried onto the next message.
pub const STAGE_ONLY: [&str; 3] = [OPERATION, ATTEMPT, ACCEPTED_AT];

/// Caller attributes that the completion event carries too: the trace, and the waiter's tag
/// that its subscription filters on. Nothing else of the caller's reaches the public event.
pub const ONTO_EVENT: [&str; 2] = [TRACEPARENT, WAITER];

/// Pub/Sub's limits on a message's attributes: at most 100, keys up to 256 bytes, values
/// up to 1024 bytes (cloud.google.com/pubsub/quotas, "Resource limits").
pub const MAX_ATTRIBUTES: usize = 100;
pub const MAX_KEY_BYTES: usize = 256;
pub const MAX_VALUE_BYTES: usize = 1024;

/// Adds the caller's attributes to `ours` within Pub/Sub's limits: ours always stay, the
/// caller's fill what room is left in key order, and any that would break a limit are
/// dropped. Returns the keys dropped, for the log. A message that breaks a limit is refused
/// by Pub/Sub on every try, so without this a stage would ask for redelivery forever.
pub fn merge_within_limits(
    ours: &mut BTreeMap<String, String>,
    caller: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut dropped = Vec::new();
    for (k, v) in caller {
        if ours.contains_key(k) {
            continue;
        }
        let fits = ours.len() < MAX_ATTRIBUTES
            && !k.is_empty()
            && k.len() <= MAX_KEY_BYTES
            && v.len() <= MAX_VALUE_BYTES;
        if fits {
            ours.insert(k.clone(), v.clone());
        } else {
            dropped.push(k.clone());
        }
    }
    dropped
}

/// Longest `traceparent` carried: version `00` is 55 bytes; a later version may append fields
/// (w3.org/TR/trace-context/#versioning-of-traceparent), and the rest is cut off here.
pub const MAX_TRACEPARENT_BYTES: usize = 256;

/// Whether `v` is a W3C `traceparent` (w3.org/TR/trace-context/#traceparent-header):
/// `{version}-{trace-id}-{parent-id}-{flags}` in lowercase hex, 2-32-16-2 digits; version `ff`
/// is invalid, and neither id may be all zeros. A version above `00` may carry more fields
/// after a `-`, up to [`MAX_TRACEPARENT_BYTES`]; version `00` carries none.
pub fn is_traceparent(v: &str) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if v.len() < 55 || v.len() > MAX_TRACEPARENT_BYTES {
        return false;
    }
    let (head, rest) = v.split_at(55);
    let parts: Vec<&str> = head.split('-').collect();
    let [version, trace, parent, flags] = parts.as_slice() else {
        return false;
    };
    let shape = hex(version, 2) && hex(trace, 32) && hex(parent, 16) && hex(flags, 2);
    let tail_ok = match *version {
        "00" => rest.is_empty(),
        _ => rest.is_empty() || rest.starts_with('-'),
    };
    shape
        && *version != "ff"
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0')
        && tail_ok
}

/// Whether `v` is a waiter tag: 16 lowercase hex digits, as `publish --wait` makes them
/// (DESIGN.md §6).
pub fn is_waiter(v: &str) -> bool {
    v.len() == 16
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Screens the attributes of a message as it enters the worker (every push route), so that
/// nothing the worker carries on can break a limit or a shape downstream. Drops, and returns
/// the keys of:
/// - a `traceparent` that is not W3C's (a receiver ignores an invalid one, W3C Trace Context
///   §3.2) and a `waiter` that is not a tag: both travel onto the completion event;
/// - attributes beyond Pub/Sub's limits (a key of 1 to [`MAX_KEY_BYTES`], a value of at most
///   [`MAX_VALUE_BYTES`], [`MAX_ATTRIBUTES`] of them in key order). Pub/Sub never delivers
///   such a message; only a hand-made push can carry one.
pub fn screen_incoming(attributes: &mut BTreeMap<String, String>) -> Vec<String> {
    let mut dropped = Vec::new();
    let mut kept = 0;
    attributes.retain(|k, v| {
        let ok = match k.as_str() {
            TRACEPARENT => is_traceparent(v),
            WAITER => is_waiter(v),
            _ => true,
        } && !k.is_empty()
            && k.len() <= MAX_KEY_BYTES
            && v.len() <= MAX_VALUE_BYTES
            && kept < MAX_ATTRIBUTES;
        if ok {
            kept += 1;
        } else {
            dropped.push(k.clone());
        }
        ok
    });
    dropped
}

/// Whether `key` describes a failure or a stage rather than the request: dropped on replay,
/// so that the worker sees the request as its caller sent it.
pub fn is_dead_letter_attribute(key: &str) -> bool {
    key.starts_with(PUBSUB_DEAD_LETTER_PREFIX)
        || key.starts_with("error_")
        || key == FAILED_STAGE
        || key == DEAD_LETTERED_AT
        || STAGE_ONLY.contains(&key)
}

/// Attributes from `(key, value)` pairs, for tests.
#[cfg(test)]
pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_attributes_fill_only_the_room_left_and_ours_always_stay() {
        let mut ours = BTreeMap::from([("request_id".to_owned(), "r".to_owned())]);
        let mut caller: BTreeMap<String, String> = (0..150)
            .map(|i| (format!("k{i:03}"), "v".to_owned()))
            .collect();
        caller.insert("request_id".into(), "spoofed".into());
        caller.insert("big".into(), "x".repeat(MAX_VALUE_BYTES + 1));
        let dropped = merge_within_limits(&mut ours, &caller);
        assert_eq!(ours.len(), MAX_ATTRIBUTES);
        assert_eq!(ours["request_id"], "r");
        assert!(dropped.contains(&"big".to_owned()));
        assert_eq!(dropped.len(), 150 + 1 - (MAX_ATTRIBUTES - 1));
        assert!(ours.keys().all(|k| k.len() <= MAX_KEY_BYTES));
    }

    #[test]
    fn a_waiter_tag_survives_replay_but_stage_attributes_do_not() {
        assert!(!is_dead_letter_attribute(WAITER));
        assert!(ONTO_EVENT.contains(&WAITER));
        for k in STAGE_ONLY {
            assert!(is_dead_letter_attribute(k), "{k}");
        }
    }
}

#[cfg(test)]
#[path = "attr_tests.rs"]
mod screen_tests;
