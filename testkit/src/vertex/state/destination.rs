//! A CopyModelRequest as the fake reads it, and where its copy goes: the one place of the
//! fake that knows the request's destination fields (`modelId`, `parentModel`), so a new kind
//! of destination is learnt here (docs/ARCHITECTURE.md, walk-through (a)).
//!
//! The field names and rules are those of CopyModelRequest in
//! google/cloud/aiplatform/v1/model_service.proto (`oneof destination_model { model_id,
//! parent_model }`), as the official client serialises them (camelCase JSON).

use serde_json::Value;

use super::super::wire::{Reply, is_model_name, split_version};
use super::{MODEL_ID_BASE, OperationEntry, State, Target};

/// Fields of CopyModelRequest; anything else is refused like the real API does.
const COPY_FIELDS: &[&str] = &[
    "parent",
    "sourceModel",
    "modelId",
    "parentModel",
    "encryptionSpec",
    "customServiceAccount",
];

/// The fields of a CopyModelRequest body that the fake acts on.
pub(super) struct CopyRequest {
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

/// `[a-z][a-z0-9_-]{0,62}`, the rule of CopyModelRequest.model_id.
pub(crate) fn valid_model_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl State {
    /// Where a copy goes, or the error the real API gives for an unusable destination.
    pub(super) fn target(&mut self, parent: &str, request: &CopyRequest) -> Result<Target, Reply> {
        if let Some(parent_model) = &request.parent_model {
            let key = self.model_key(parent_model);
            if !key.starts_with(&format!("{parent}/models/")) {
                return Err(Reply::invalid(format!(
                    "parent_model {parent_model} is not in {parent}."
                )));
            }
            if !self.models.contains_key(&key) {
                return Err(Reply::not_found(format!("Model {key} does not exist.")));
            }
            return Ok(Target::NewVersion(key));
        }
        let id = match &request.model_id {
            Some(id) if !valid_model_id(id) => {
                return Err(Reply::invalid(format!("Invalid model_id {id:?}.")));
            }
            Some(id) => id.clone(),
            None => {
                self.next_model += 1;
                (MODEL_ID_BASE + self.next_model).to_string()
            }
        };
        let name = format!("{parent}/models/{id}");
        let running = |op: &OperationEntry| {
            op.finished.is_none() && op.target == Target::NewModel(name.clone())
        };
        if self.models.contains_key(&name) || self.operations.values().any(running) {
            return Err(Reply::error(
                409,
                "ALREADY_EXISTS",
                format!("Model {name} already exists."),
            ));
        }
        Ok(Target::NewModel(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
