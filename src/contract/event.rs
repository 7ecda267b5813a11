//! The completion event of DESIGN.md §3: CloudEvents 1.0 in Pub/Sub binary mode, on
//! `copy-completions`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{OutMessage, attr, rfc3339};

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
    /// Readers tolerate events that lack the fields below (a consumer's own test events).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub accepted_at: String,
    #[serde(default)]
    pub finished_at: String,
    #[serde(default)]
    pub context: BTreeMap<String, String>,
}

impl CompletionEvent {
    /// An event for `request_id` that ended now with `status`; the caller fills the rest.
    pub fn new(request_id: impl Into<String>, status: Status, accepted_at: DateTime<Utc>) -> Self {
        Self {
            request_id: request_id.into(),
            status,
            source_model: None,
            destination_model: None,
            destination_model_version: None,
            operation: None,
            error: None,
            attempts: 0,
            accepted_at: rfc3339(accepted_at),
            finished_at: rfc3339(Utc::now()),
            context: BTreeMap::new(),
        }
    }

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
        a.insert(attr::STATUS.into(), status.into());
        a.insert(attr::REQUEST_ID.into(), self.request_id.clone());
        if let Some(p) = destination_project {
            a.insert(attr::DESTINATION_PROJECT.into(), p.into());
        }
        OutMessage {
            data: serde_json::to_vec(self).expect("event serialises"),
            attributes: a,
        }
    }
}

/// A completion event as a reader received it (`wait`, `publish --wait`, `events`): whose it
/// is and how it ended, and the line a command prints for it. Readers tolerate events that
/// are not the worker's own (a consumer's test event, a bare JSON body).
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionView {
    /// The plain `request_id` attribute, else the data's.
    pub request_id: Option<String>,
    /// The plain `status` attribute, else the data's.
    pub status: Option<String>,
    /// The event as printed: its JSON data, or, for data that is not a JSON object, its
    /// attributes and data as text, so that a line is printed for every event counted.
    pub line: Value,
}

impl CompletionView {
    /// Reads a delivered message's attributes and data.
    pub fn parse(attributes: &HashMap<String, String>, data: &[u8]) -> Self {
        let event = serde_json::from_slice::<CompletionEvent>(data).ok();
        let request_id = attributes
            .get(attr::REQUEST_ID)
            .cloned()
            .or_else(|| event.as_ref().map(|e| e.request_id.clone()));
        let status = attributes
            .get(attr::STATUS)
            .cloned()
            .or_else(|| event.map(|e| e.status.as_str().to_owned()));
        let line = match serde_json::from_slice::<Value>(data) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({
                "request_id": attributes.get(attr::REQUEST_ID),
                "status": attributes.get(attr::STATUS),
                "data": String::from_utf8_lossy(data),
            }),
        };
        Self {
            request_id,
            status,
            line,
        }
    }
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
    fn request_id_falls_back_to_the_event_data() {
        let v = CompletionView::parse(&HashMap::new(), br#"{"request_id":"r","status":"failed"}"#);
        assert_eq!(
            (v.request_id, v.status),
            (Some("r".into()), Some("failed".into()))
        );
    }
}
