//! The body of a Cloud Tasks task (DESIGN.md §3, "Copy tasks"): what a copy-start task and a
//! poll task carry from one stage to the next.
//!
//! A task holds at most 100 KB (CreateTask: "The maximum task size is 100KB",
//! cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create), so
//! it carries only what its stage needs: the normalised request as JSON (not base64), the
//! copy's bookkeeping, and the caller's attributes that fit in the room left. Every request the
//! contract accepts (64 KiB) fits with room to spare; caller attributes beyond that room are
//! dropped and named in the log, as for a Pub/Sub message (DESIGN.md §10).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::push::PushMessage;
use super::{Rejection, attr, rfc3339};

/// The most a task may weigh, URL, headers and body together (CreateTask, above).
pub const MAX_TASK_BYTES: usize = 100 * 1024;

/// What a task body may use of [`MAX_TASK_BYTES`]: the URL, the headers and the name of the
/// task take the rest (under 1 KiB; 2 KiB are kept for them).
pub const MAX_BODY_BYTES: usize = MAX_TASK_BYTES - 2 * 1024;

/// Caller attributes a task carries first, whatever the room: the trace and the waiter's tag
/// reach the event, and `replay_count` guards against endless replays.
const FIRST: [&str; 3] = [attr::WAITER, attr::TRACEPARENT, attr::REPLAY_COUNT];

/// One copy task: a copy start (no `operation`) or a poll of a running copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyTask {
    /// The copy request exactly as the request stage received it (DESIGN.md §3), as a JSON
    /// object: its bytes are what a dead letter carries and what `replay` puts back.
    pub request: Box<RawValue>,
    /// The copy attempt, from 1 (`COPY_MAX_ATTEMPTS`).
    pub attempt: u32,
    /// When the request stage accepted the request; `COPY_MAX_DURATION` counts from here.
    #[serde(with = "time")]
    pub accepted_at: DateTime<Utc>,
    /// Poll tasks: the operation being followed, as Vertex AI named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Poll tasks: when CopyModel was called for this attempt; the poll schedule counts the
    /// copy's age from here, not from `accepted_at` (which includes the queue's wait).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub started_at: Option<DateTime<Utc>>,
    /// Poll tasks: the copy's age (milliseconds after `started_at`) this poll was planned
    /// for. The next poll is planned from it, not from when this one ran, so the queue's
    /// dispatch delays do not add up along the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_ms: Option<u64>,
    /// Start tasks of a restart: the operation whose failure the restart follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_operation: Option<String>,
    /// Where the chain of start tasks began (the request's Pub/Sub message id): start tasks
    /// are named from it, so a redelivered request names the same task.
    pub origin: String,
    /// The task's place in its chain: the next task is named from `seq + 1`, so a retried or
    /// duplicated dispatch names the same next task and cannot fork the chain.
    pub seq: u32,
    /// The caller's attributes carried on (`request_id` is in the request).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl CopyTask {
    /// The body, with the caller's attributes cut to the room left under
    /// [`MAX_BODY_BYTES`]: [`FIRST`] first, then the others in key order. Returns the keys
    /// that did not fit, for the log.
    pub fn to_body(&self) -> (Vec<u8>, Vec<String>) {
        let mut bare = self.clone();
        bare.attributes.clear();
        let base = serde_json::to_vec(&bare).expect("a task serialises").len();
        let mut room = MAX_BODY_BYTES.saturating_sub(base + 2);
        let order = FIRST
            .iter()
            .filter_map(|k| self.attributes.get_key_value(*k))
            .chain(
                self.attributes
                    .iter()
                    .filter(|(k, _)| !FIRST.contains(&k.as_str())),
            );
        let mut dropped = vec![];
        for (k, v) in order {
            // `"key":"value",` with JSON escaping, measured rather than guessed.
            let cost = serde_json::to_string(k).map_or(usize::MAX, |s| s.len())
                + serde_json::to_string(v).map_or(usize::MAX, |s| s.len())
                + 2
                + usize::from(bare.attributes.is_empty()) * 15;
            if cost <= room {
                room -= cost;
                bare.attributes.insert(k.clone(), v.clone());
            } else {
                dropped.push(k.clone());
            }
        }
        (
            serde_json::to_vec(&bare).expect("a task serialises"),
            dropped,
        )
    }

    /// Reads a task body. A body that is not one names the field and the rule.
    pub fn parse(body: &[u8]) -> Result<CopyTask, Rejection> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        let task: CopyTask = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "task" } else { "task field" };
            Rejection::new(field, format!("not a copy task at {path}: {}", e.inner()))
        })?;
        if task.attempt == 0 {
            return Err(Rejection::new("attempt", "must be at least 1"));
        }
        if !task.request.get().starts_with('{') {
            return Err(Rejection::new("request", "must be a JSON object"));
        }
        Ok(task)
    }

    /// The request's bytes, as received and as the stages parse a request.
    pub fn request_bytes(&self) -> Vec<u8> {
        self.request.get().as_bytes().to_vec()
    }

    /// The `request_id` field of the request, when it has one.
    fn request_id(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Id {
            request_id: Option<String>,
        }
        serde_json::from_str::<Id>(self.request.get())
            .ok()
            .and_then(|i| i.request_id)
    }

    /// The task as the stages read a delivery: the request as data, the carried attributes
    /// with `request_id`, and the task's name as the message id (for the logs).
    pub fn to_delivery(&self, task_name: &str) -> PushMessage {
        let mut attributes = self.attributes.clone();
        if let Some(id) = self.request_id() {
            attributes.insert(attr::REQUEST_ID.into(), id);
        }
        PushMessage {
            message_id: task_name.to_owned(),
            data: self.request_bytes(),
            attributes,
            publish_time: Some(rfc3339(self.accepted_at)),
            ordering_key: None,
            subscription: None,
            delivery_attempt: None,
        }
    }
}

impl PartialEq for CopyTask {
    fn eq(&self, other: &Self) -> bool {
        self.request.get() == other.request.get()
            && (
                self.attempt,
                self.accepted_at,
                &self.operation,
                self.started_at,
                self.due_ms,
            ) == (
                other.attempt,
                other.accepted_at,
                &other.operation,
                other.started_at,
                other.due_ms,
            )
            && (
                &self.previous_operation,
                &self.origin,
                self.seq,
                &self.attributes,
            ) == (
                &other.previous_operation,
                &other.origin,
                other.seq,
                &other.attributes,
            )
    }
}

/// The request bytes a task carries: the request as received, which the request stage has
/// parsed as a JSON object already.
pub fn raw_request(data: &[u8]) -> Result<Box<RawValue>, Rejection> {
    let text =
        std::str::from_utf8(data).map_err(|_| Rejection::new("request", "must be UTF-8 JSON"))?;
    RawValue::from_string(text.trim().to_owned())
        .map_err(|e| Rejection::new("request", format!("must be JSON: {e}")))
}

/// The caller's attributes a task carries: all but the stage-only and `request_id` ones.
pub fn carried(attributes: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter(|(k, _)| !attr::STAGE_ONLY.contains(&k.as_str()) && k.as_str() != attr::REQUEST_ID)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

mod time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Milliseconds: the poll schedule counts a copy's age from `started_at`, and whole
    /// seconds would overstate it by up to one, making every poll later than it should be.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time: {e}")))
    }
}

mod opt_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::time::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::time")] DateTime<Utc>);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests;
