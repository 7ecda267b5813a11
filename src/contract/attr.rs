//! Attribute keys of the worker's messages (DESIGN.md §3), spelled once.

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
    ours: &mut std::collections::BTreeMap<String, String>,
    caller: &std::collections::BTreeMap<String, String>,
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
    use std::collections::BTreeMap;

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
