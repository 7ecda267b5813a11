//! What copy-worker announces: the completion event (CloudEvents 1.0, Pub/Sub binary mode)
//! and the dead-letter message of DESIGN.md §3.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::topics::OutMessage;

/// How a copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Succeeded,
    Failed,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Rejected => "rejected",
        }
    }
}

/// `{"code": "NOT_FOUND", "message": "..."}`: a google.rpc code name, or `INVALID_REQUEST`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

/// The data of a `copy-completions` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionEvent {
    pub request_id: String,
    pub status: Status,
    /// Unknown only for a request too broken to name its source.
    pub source_model: Option<String>,
    pub destination_model: Option<String>,
    pub destination_model_version: Option<String>,
    pub operation: Option<String>,
    pub error: Option<ErrorInfo>,
    pub attempts: u32,
    pub accepted_at: String,
    pub finished_at: String,
    pub context: BTreeMap<String, String>,
}

impl CompletionEvent {
    /// `ce-id`: deterministic, so consumers can de-duplicate at-least-once deliveries.
    pub fn ce_id(&self) -> String {
        format!("{}:{}", self.request_id, self.status.as_str())
    }

    /// The Pub/Sub message: JSON data plus CloudEvents and filterable plain attributes.
    /// `worker_project` fills `ce-source`; `destination_project` the plain attribute.
    pub fn to_message(
        &self,
        worker_project: &str,
        destination_project: Option<&str>,
    ) -> OutMessage {
        let mut a = BTreeMap::new();
        let status = self.status.as_str();
        a.insert("ce-specversion".into(), "1.0".into());
        a.insert("ce-id".into(), self.ce_id());
        a.insert("ce-type".into(), format!("copy-worker.copy.{status}"));
        a.insert(
            "ce-source".into(),
            format!("//copy-worker/projects/{worker_project}"),
        );
        if let Some(subject) = &self.destination_model {
            a.insert("ce-subject".into(), subject.clone());
        }
        a.insert("ce-time".into(), self.finished_at.clone());
        a.insert("content-type".into(), "application/json".into());
        a.insert("status".into(), status.into());
        a.insert("request_id".into(), self.request_id.clone());
        if let Some(p) = destination_project {
            a.insert("destination_project".into(), p.into());
        }
        OutMessage {
            data: serde_json::to_vec(self).expect("event serialises"),
            attributes: a,
        }
    }
}

/// Where a dead letter failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedStage {
    Request,
    Operation,
}

impl FailedStage {
    pub fn as_str(self) -> &'static str {
        match self {
            FailedStage::Request => "request",
            FailedStage::Operation => "operation",
        }
    }
}

/// Longest `error_message` attribute, in bytes.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// A `copy-dead-letter` message: the request bytes exactly as received, plus why.
pub fn dead_letter(
    original: &[u8],
    request_id: Option<&str>,
    error: &ErrorInfo,
    stage: FailedStage,
    now: DateTime<Utc>,
) -> OutMessage {
    let mut a = BTreeMap::new();
    if let Some(id) = request_id {
        a.insert("request_id".into(), id.to_owned());
    }
    a.insert("error_code".into(), error.code.clone());
    a.insert(
        "error_message".into(),
        truncate_utf8(&error.message, MAX_ERROR_MESSAGE).to_owned(),
    );
    a.insert("failed_stage".into(), stage.as_str().into());
    a.insert("dead_lettered_at".into(), rfc3339(now));
    OutMessage {
        data: original.to_vec(),
        attributes: a,
    }
}

/// RFC 3339 in UTC with second precision, as in DESIGN.md's examples.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Cuts `s` to at most `max` bytes without splitting a character.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(status: Status) -> CompletionEvent {
        CompletionEvent {
            request_id: "nightly-1".into(),
            status,
            source_model: Some("projects/s/locations/us-central1/models/1@3".into()),
            destination_model: Some("projects/dst-proj/locations/europe-west4/models/m".into()),
            destination_model_version: Some("1".into()),
            operation: None,
            error: None,
            attempts: 1,
            accepted_at: "2026-11-22T10:00:00Z".into(),
            finished_at: "2026-11-22T10:07:41Z".into(),
            context: BTreeMap::from([("pipeline".into(), "nightly".into())]),
        }
    }

    #[test]
    fn completion_event_carries_cloudevents_and_filter_attributes() {
        let m = event(Status::Succeeded).to_message("worker-proj", Some("dst-proj"));
        let a = &m.attributes;
        assert_eq!(a["ce-specversion"], "1.0");
        assert_eq!(a["ce-id"], "nightly-1:succeeded");
        assert_eq!(a["ce-type"], "copy-worker.copy.succeeded");
        assert_eq!(a["ce-source"], "//copy-worker/projects/worker-proj");
        assert_eq!(
            a["ce-subject"],
            "projects/dst-proj/locations/europe-west4/models/m"
        );
        assert_eq!(a["ce-time"], "2026-11-22T10:07:41Z");
        assert_eq!(a["content-type"], "application/json");
        assert_eq!(a["status"], "succeeded");
        assert_eq!(a["request_id"], "nightly-1");
        assert_eq!(a["destination_project"], "dst-proj");
        let data: serde_json::Value = serde_json::from_slice(&m.data).unwrap();
        assert_eq!(data["status"], "succeeded");
        assert_eq!(data["error"], serde_json::Value::Null);
        assert_eq!(data["context"]["pipeline"], "nightly");
    }

    #[test]
    fn dead_letter_keeps_original_bytes_and_cuts_long_messages_on_a_char_boundary() {
        let msg = "é".repeat(600); // 1200 bytes
        let e = ErrorInfo {
            code: "NOT_FOUND".into(),
            message: msg,
        };
        let m = dead_letter(
            b"\xff raw",
            Some("r1"),
            &e,
            FailedStage::Request,
            Utc::now(),
        );
        assert_eq!(m.data, b"\xff raw");
        assert_eq!(m.attributes["error_message"].len(), 1024);
        assert_eq!(m.attributes["failed_stage"], "request");
        assert_eq!(m.attributes["error_code"], "NOT_FOUND");
        assert!(m.attributes.contains_key("dead_lettered_at"));
    }
}
