//! Attribute keys of the worker's messages (DESIGN.md §3), spelled once.

/// The request id: set by publishers, carried on every message of the pipeline.
pub const REQUEST_ID: &str = "request_id";
/// W3C trace context, carried through every message when present.
pub const TRACEPARENT: &str = "traceparent";

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

/// Dead letter: the google.rpc code name, or `INVALID_REQUEST`.
pub const ERROR_CODE: &str = "error_code";
/// Dead letter: the error message, cut to 1024 bytes.
pub const ERROR_MESSAGE: &str = "error_message";
/// Dead letter: `request` or `operation`.
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

/// Whether `key` describes a failure or a stage rather than the request: dropped on replay,
/// so that the worker sees the request as its caller sent it.
pub fn is_dead_letter_attribute(key: &str) -> bool {
    key.starts_with(PUBSUB_DEAD_LETTER_PREFIX)
        || key.starts_with("error_")
        || key == FAILED_STAGE
        || key == DEAD_LETTERED_AT
        || STAGE_ONLY.contains(&key)
}
