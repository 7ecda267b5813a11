//! In-memory models and copy operations of the Vertex AI fake, and the JSON they render to.
//!
//! Operations finish lazily: every request first calls [`State::advance`], which completes the
//! operations whose scripted duration has elapsed. No background task, so nothing races a test.

use super::wire::{CopyRequest, Reply, split_version, valid_model_id};
use super::{Call, CopyScript, Fault};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const METADATA_TYPE: &str =
    "type.googleapis.com/google.cloud.aiplatform.v1.CopyModelOperationMetadata";
const RESPONSE_TYPE: &str = "type.googleapis.com/google.cloud.aiplatform.v1.CopyModelResponse";
/// Vertex ids are 19-digit numbers; large bases keep the fake's ids looking like real ones.
const OPERATION_ID_BASE: u64 = 4_100_000_000_000_000_000;
const MODEL_ID_BASE: u64 = 7_700_000_000_000_000_000;

#[derive(Debug)]
struct ModelEntry {
    display_name: String,
    default_version: String,
    create_time: DateTime<Utc>,
    versions: Vec<VersionEntry>,
}

#[derive(Debug)]
struct VersionEntry {
    id: String,
    /// `originalModelInfo.model`: the source with the version that was copied.
    original: Option<String>,
    encryption_spec: Option<Value>,
    create_time: DateTime<Utc>,
}

#[derive(Debug, PartialEq)]
enum Target {
    /// A new model with this full name (id chosen or generated); reserved while running.
    NewModel(String),
    /// A new version of this existing model.
    NewVersion(String),
}

#[derive(Debug)]
enum Outcome {
    Succeeded { model: String, version: String },
    Failed { code: i32, message: String },
}

#[derive(Debug)]
struct OperationEntry {
    /// Source model without `@version`: the key of its [`CopyScript`].
    source_key: String,
    /// Source with the copied version, recorded as `originalModelInfo.model`.
    source_with_version: String,
    display_name: String,
    target: Target,
    encryption_spec: Option<Value>,
    started: Instant,
    duration: Duration,
    planned_error: Option<(i32, String)>,
    create_time: DateTime<Utc>,
    finished: Option<(Outcome, DateTime<Utc>)>,
}

/// Everything the fake knows; guarded by one mutex that is never held across an await.
#[derive(Debug, Default)]
pub(crate) struct State {
    models: BTreeMap<String, ModelEntry>,
    operations: BTreeMap<String, OperationEntry>,
    scripts: HashMap<String, CopyScript>,
    pub outage: Option<(Instant, u16, &'static str)>,
    pub calls: Vec<Call>,
    pub copies_started: usize,
    next_operation: u64,
    next_model: u64,
}

impl State {
    pub fn add_model(&mut self, name: &str) {
        let (name, _) = split_version(name);
        let now = Utc::now();
        let id = name.rsplit('/').next().unwrap_or(name);
        self.models.entry(name.to_string()).or_insert(ModelEntry {
            display_name: format!("model-{id}"),
            default_version: "1".into(),
            create_time: now,
            versions: vec![VersionEntry {
                id: "1".into(),
                original: None,
                encryption_spec: None,
                create_time: now,
            }],
        });
    }

    pub fn set_script(&mut self, source_model: &str, script: CopyScript) {
        self.scripts
            .insert(split_version(source_model).0.to_string(), script);
    }

    /// The scripted fault for the next copy of `body`'s source, if any is left.
    pub fn take_copy_fault(&mut self, body: Option<&Value>) -> Option<Fault> {
        let source = body?.get("sourceModel")?.as_str()?;
        let script = self.scripts.get_mut(split_version(source).0)?;
        (!script.copy_faults.is_empty()).then(|| script.copy_faults.remove(0))
    }

    /// The scripted fault for the next poll of operation `name`, if any is left.
    pub fn take_get_operation_fault(&mut self, name: &str) -> Option<Fault> {
        let source = &self.operations.get(name)?.source_key;
        let script = self.scripts.get_mut(source)?;
        let faults = &mut script.get_operation_faults;
        (!faults.is_empty()).then(|| faults.remove(0))
    }

    /// Completes every operation whose scripted duration has elapsed by `now`.
    pub fn advance(&mut self, now: Instant) {
        for op in self.operations.values_mut() {
            if op.finished.is_some() || now < op.started + op.duration {
                continue;
            }
            let outcome = match op.planned_error.take() {
                Some((code, message)) => Outcome::Failed { code, message },
                None => materialize(&mut self.models, op),
            };
            op.finished = Some((outcome, Utc::now()));
        }
    }

    /// `POST /v1/{parent}/models:copy`.
    pub fn copy(&mut self, parent: &str, body: Option<&Value>, now: Instant) -> Reply {
        let request = match CopyRequest::parse(body) {
            Ok(request) => request,
            Err(message) => return Reply::invalid(message),
        };
        let (source_key, version) = split_version(&request.source_model);
        let Some(source) = self.models.get(source_key) else {
            return Reply::not_found(format!("Model {} does not exist.", request.source_model));
        };
        let version = match version {
            Some(v) if source.versions.iter().any(|x| x.id == v) => v.to_string(),
            Some(_) => {
                return Reply::not_found(format!("Model {} does not exist.", request.source_model));
            }
            None => source.default_version.clone(),
        };
        let display_name = source.display_name.clone();
        let target = match self.target(parent, &request) {
            Ok(target) => target,
            Err(reply) => return reply,
        };
        let script = self.scripts.get_mut(source_key);
        let duration = script.as_ref().map(|s| s.duration).unwrap_or_default();
        let planned_error = script
            .and_then(|s| (!s.operation_errors.is_empty()).then(|| s.operation_errors.remove(0)));
        self.next_operation += 1;
        let name = format!(
            "{parent}/operations/{}",
            OPERATION_ID_BASE + self.next_operation
        );
        let op = OperationEntry {
            source_key: source_key.to_string(),
            source_with_version: format!("{source_key}@{version}"),
            display_name,
            target,
            encryption_spec: request.encryption_spec,
            started: now,
            duration,
            planned_error,
            create_time: Utc::now(),
            finished: None,
        };
        let body = operation_json(&name, &op);
        self.operations.insert(name, op);
        self.copies_started += 1;
        Reply::ok(body)
    }

    /// `GET /ui/{operation}` and `GET /v1/{operation}`.
    pub fn get_operation(&self, name: &str) -> Reply {
        match self.operations.get(name) {
            Some(op) => Reply::ok(operation_json(name, op)),
            None => Reply::not_found(format!("Operation {name} does not exist.")),
        }
    }

    /// `GET /v1/{model}` with an optional `@version`.
    pub fn get_model(&self, name: &str) -> Reply {
        let (key, version) = split_version(name);
        let found = self.models.get(key).and_then(|m| {
            let wanted = version.unwrap_or(&m.default_version);
            m.versions.iter().find(|v| v.id == wanted).map(|v| (m, v))
        });
        match found {
            Some((model, v)) => Reply::ok(model_json(key, model, v)),
            None => Reply::not_found(format!("Model {name} does not exist.")),
        }
    }

    /// `GET /v1/{model}:listVersions`; `page_token` is the offset of the next page.
    pub fn list_versions(&self, name: &str, page_size: usize, page_token: &str) -> Reply {
        let (key, _) = split_version(name);
        let Some(model) = self.models.get(key) else {
            return Reply::not_found(format!("Model {name} does not exist."));
        };
        let start: usize = page_token.parse().unwrap_or(0);
        let size = if page_size == 0 {
            usize::MAX
        } else {
            page_size
        };
        let page: Vec<Value> = (model.versions.iter().skip(start).take(size))
            .map(|v| model_json(key, model, v))
            .collect();
        let mut body = json!({ "models": page });
        let next = start.saturating_add(size);
        if next < model.versions.len() {
            body["nextPageToken"] = json!(next.to_string());
        }
        Reply::ok(body)
    }

    pub fn model_exists(&self, name: &str) -> bool {
        self.get_model(name).status == 200
    }

    pub fn model_json(&self, name: &str) -> Option<Value> {
        let reply = self.get_model(name);
        (reply.status == 200).then_some(reply.body)
    }

    pub fn operation_names(&self) -> Vec<String> {
        self.operations.keys().cloned().collect()
    }

    /// Where a copy goes, or the error the real API gives for an unusable destination.
    fn target(&mut self, parent: &str, request: &CopyRequest) -> Result<Target, Reply> {
        if let Some(parent_model) = &request.parent_model {
            let (key, _) = split_version(parent_model);
            if !key.starts_with(&format!("{parent}/models/")) {
                return Err(Reply::invalid(format!(
                    "parent_model {parent_model} is not in {parent}."
                )));
            }
            if !self.models.contains_key(key) {
                return Err(Reply::not_found(format!("Model {key} does not exist.")));
            }
            return Ok(Target::NewVersion(key.to_string()));
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

/// Creates the destination of a successful copy and returns the operation's outcome.
fn materialize(models: &mut BTreeMap<String, ModelEntry>, op: &OperationEntry) -> Outcome {
    let now = Utc::now();
    let version = |id: String| VersionEntry {
        id,
        original: Some(op.source_with_version.clone()),
        encryption_spec: op.encryption_spec.clone(),
        create_time: now,
    };
    match &op.target {
        Target::NewModel(name) => {
            let entry = ModelEntry {
                display_name: op.display_name.clone(),
                default_version: "1".into(),
                create_time: now,
                versions: vec![version("1".into())],
            };
            models.insert(name.clone(), entry);
            Outcome::Succeeded {
                model: name.clone(),
                version: "1".into(),
            }
        }
        Target::NewVersion(name) => match models.get_mut(name) {
            Some(model) => {
                let last = model
                    .versions
                    .iter()
                    .filter_map(|v| v.id.parse::<u64>().ok());
                let id = (last.max().unwrap_or(0) + 1).to_string();
                model.versions.push(version(id.clone()));
                Outcome::Succeeded {
                    model: name.clone(),
                    version: id,
                }
            }
            None => Outcome::Failed {
                code: 5,
                message: format!("Model {name} does not exist."),
            },
        },
    }
}

fn operation_json(name: &str, op: &OperationEntry) -> Value {
    let update_time = op.finished.as_ref().map_or_else(Utc::now, |(_, at)| *at);
    let mut body = json!({
        "name": name,
        "metadata": {
            "@type": METADATA_TYPE,
            "genericMetadata": {"createTime": ts(op.create_time), "updateTime": ts(update_time)},
        },
        "done": op.finished.is_some(),
    });
    match &op.finished {
        Some((Outcome::Succeeded { model, version }, _)) => {
            body["response"] =
                json!({"@type": RESPONSE_TYPE, "model": model, "modelVersionId": version});
        }
        Some((Outcome::Failed { code, message }, _)) => {
            body["error"] = json!({"code": code, "message": message, "details": []});
        }
        None => {}
    }
    body
}

fn model_json(name: &str, model: &ModelEntry, version: &VersionEntry) -> Value {
    let aliases: Vec<&str> = if version.id == model.default_version {
        vec!["default"]
    } else {
        vec![]
    };
    let mut body = json!({
        "name": name,
        "displayName": model.display_name,
        "versionId": version.id,
        "versionAliases": aliases,
        "createTime": ts(model.create_time),
        "updateTime": ts(version.create_time.max(model.create_time)),
        "versionCreateTime": ts(version.create_time),
        "versionUpdateTime": ts(version.create_time),
    });
    if let Some(original) = &version.original {
        body["originalModelInfo"] = json!({ "model": original });
    }
    if let Some(spec) = &version.encryption_spec {
        body["encryptionSpec"] = spec.clone();
    }
    body
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}
