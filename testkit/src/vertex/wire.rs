//! Wire-level pieces of the Vertex AI fake: google.rpc error replies, CopyModelRequest parsing
//! and the resource-name rules the real API enforces.

use serde_json::{Value, json};

/// Fields of CopyModelRequest; anything else is refused like the real API does.
const COPY_FIELDS: &[&str] = &[
    "parent",
    "sourceModel",
    "modelId",
    "parentModel",
    "encryptionSpec",
    "customServiceAccount",
];

/// An HTTP answer: status and JSON body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }

    /// A google.rpc error body, as Google APIs send over HTTP/JSON.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Reply {
        let message = message.into();
        let body = json!({"error": {"code": status, "message": message, "status": code}});
        Reply { status, body }
    }

    pub fn not_found(message: impl Into<String>) -> Reply {
        Reply::error(404, "NOT_FOUND", message)
    }

    pub fn invalid(message: impl Into<String>) -> Reply {
        Reply::error(400, "INVALID_ARGUMENT", message)
    }
}

/// The fields of a CopyModelRequest body that the fake acts on.
pub(crate) struct CopyRequest {
    pub source_model: String,
    pub model_id: Option<String>,
    pub parent_model: Option<String>,
    pub encryption_spec: Option<Value>,
}

impl CopyRequest {
    pub fn parse(body: Option<&Value>) -> Result<CopyRequest, String> {
        let Some(Value::Object(fields)) = body else {
            return Err("Invalid JSON payload: expected a CopyModelRequest object.".into());
        };
        if let Some(unknown) = fields.keys().find(|k| !COPY_FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "Invalid JSON payload received. Unknown name {unknown:?}."
            ));
        }
        let text = |key: &str| {
            fields
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let source_model = text("sourceModel").ok_or("source_model is required.")?;
        if !is_model_name(split_version(source_model).0) {
            return Err(format!("Invalid source_model {source_model:?}."));
        }
        let (model_id, parent_model) = (text("modelId"), text("parentModel"));
        if model_id.is_some() && parent_model.is_some() {
            return Err("Only one of model_id and parent_model may be set.".into());
        }
        Ok(CopyRequest {
            source_model: source_model.to_string(),
            model_id: model_id.map(str::to_string),
            parent_model: parent_model.map(str::to_string),
            encryption_spec: fields.get("encryptionSpec").cloned(),
        })
    }
}

/// Splits `…/models/ID@V` into the name without version and the version.
pub(crate) fn split_version(name: &str) -> (&str, Option<&str>) {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].find('@') {
        Some(at) => (&name[..last_slash + at], Some(&name[last_slash + at + 1..])),
        None => (name, None),
    }
}

fn is_model_name(name: &str) -> bool {
    let segments: Vec<&str> = name.split('/').collect();
    matches!(segments.as_slice(), ["projects", p, "locations", l, "models", m]
        if !p.is_empty() && !l.is_empty() && !m.is_empty())
}

/// `[a-z][a-z0-9_-]{0,62}`, the rule of CopyModelRequest.model_id.
pub(crate) fn valid_model_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_split_off_the_last_segment_only() {
        let cases = [
            (
                "projects/p/locations/l/models/m@2",
                ("projects/p/locations/l/models/m", Some("2")),
            ),
            (
                "projects/p/locations/l/models/m",
                ("projects/p/locations/l/models/m", None),
            ),
            (
                "projects/a@b/locations/l/models/m",
                ("projects/a@b/locations/l/models/m", None),
            ),
        ];
        for (name, want) in cases {
            assert_eq!(split_version(name), want, "{name}");
        }
    }

    #[test]
    fn model_ids_follow_the_copy_model_rule() {
        for ok in ["a", "target-model_1", &"a".repeat(63)] {
            assert!(valid_model_id(ok), "{ok}");
        }
        for bad in ["", "1abc", "-a", "Abc", "a.b", &"a".repeat(64)] {
            assert!(!valid_model_id(bad), "{bad}");
        }
    }

    #[test]
    fn copy_requests_refuse_unknown_fields_and_both_destinations() {
        let source = "projects/p/locations/l/models/m@1";
        let unknown = json!({"sourceModel": source, "bogus": 1});
        assert!(CopyRequest::parse(Some(&unknown)).is_err());
        let both = json!({"sourceModel": source, "modelId": "a", "parentModel": "b"});
        assert!(CopyRequest::parse(Some(&both)).is_err());
        let bare = json!({"sourceModel": "123"});
        assert!(CopyRequest::parse(Some(&bare)).is_err());
        let ok = CopyRequest::parse(Some(&json!({"sourceModel": source}))).expect("valid");
        assert_eq!((ok.source_model.as_str(), ok.model_id), (source, None));
    }
}
