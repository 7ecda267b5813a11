//! In-memory models and copy operations of the Vertex AI fake, and the JSON they render to.
//!
//! Operations finish lazily: every request first calls [`State::advance`], which completes the
//! operations whose scripted duration has elapsed. No background task, so nothing races a test.
//!
//! Every name stored here is canonical: its project is a number ([`super::projects`]). Route
//! names arrive canonical from the handler; names inside request bodies and names given to the
//! seeding API are made canonical here, so either spelling of a project finds the same model.

use super::projects::ProjectNumbers;
use super::quota::Ledger;
use super::wire::{Reply, split_version};
use super::{Call, CopyScript, Fault};
use chrono::{DateTime, SecondsFormat, Utc};
use destination::CopyRequest;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

mod destination;

const METADATA_TYPE: &str =
    "type.googleapis.com/google.cloud.aiplatform.v1.CopyModelOperationMetadata";
const RESPONSE_TYPE: &str = "type.googleapis.com/google.cloud.aiplatform.v1.CopyModelResponse";
/// Vertex ids are 19-digit numbers; large bases keep the fake's ids looking like real ones.
const OPERATION_ID_BASE: u64 = 4_100_000_000_000_000_000;
const MODEL_ID_BASE: u64 = 7_700_000_000_000_000_000;

#[derive(Debug)]
struct ModelEntry {
    display_name: String,
    /// The version that the `default` alias points to; it is also what a name without
    /// `@version` means.
    default_version: String,
    create_time: DateTime<Utc>,
    versions: Vec<VersionEntry>,
}

impl ModelEntry {
    /// The version that `@version` names: a version id, `default`, or another alias (Model
    /// `version_aliases`: "a model version can be referenced via alias (i.e.
    /// `…/models/{model_id}@{version_alias}`)"; GetModelRequest: without a version "the
    /// \"default\" version will be returned").
    fn resolve(&self, version: Option<&str>) -> Option<&VersionEntry> {
        let wanted = match version {
            None | Some("default") => self.default_version.as_str(),
            Some(v) => v,
        };
        self.versions
            .iter()
            .find(|v| v.id == wanted || v.aliases.iter().any(|a| a == wanted))
    }
}

#[derive(Debug)]
struct VersionEntry {
    id: String,
    /// Aliases other than `default`, which [`ModelEntry::default_version`] carries.
    aliases: Vec<String>,
    /// `originalModelInfo.model`: the source with the version that was copied.
    original: Option<String>,
    encryption_spec: Option<Value>,
    /// `containerSpec`: kept by a copy, unlike the encryption spec ([`super::specs`]).
    container_spec: Option<Value>,
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
    container_spec: Option<Value>,
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
    pub projects: ProjectNumbers,
    pub ledger: Ledger,
    pub calls: Vec<Call>,
    pub copies_started: usize,
    next_operation: u64,
    next_model: u64,
}

impl State {
    /// `name` (either spelling, any `@version`) without its version, canonical.
    fn model_key(&mut self, name: &str) -> String {
        self.projects.canonical(split_version(name).0)
    }

    pub fn add_model(&mut self, name: &str) {
        let key = self.model_key(name);
        let now = Utc::now();
        let id = key.rsplit('/').next().unwrap_or_default();
        let display_name = format!("model-{id}");
        self.models.entry(key).or_insert(ModelEntry {
            display_name,
            default_version: "1".into(),
            create_time: now,
            versions: vec![VersionEntry {
                id: "1".into(),
                aliases: vec![],
                original: None,
                encryption_spec: None,
                container_spec: None,
                create_time: now,
            }],
        });
    }

    /// Adds the next version to an existing model; the alias `default` moves the default there.
    pub fn add_version(&mut self, name: &str, aliases: &[&str]) -> Option<String> {
        let key = self.model_key(name);
        let model = self.models.get_mut(&key)?;
        let id = next_version_id(model);
        for version in &mut model.versions {
            version.aliases.retain(|a| !aliases.contains(&a.as_str()));
        }
        if aliases.contains(&"default") {
            model.default_version = id.clone();
        }
        model.versions.push(VersionEntry {
            id: id.clone(),
            aliases: (aliases.iter())
                .filter(|a| **a != "default")
                .map(|a| a.to_string())
                .collect(),
            original: None,
            encryption_spec: None,
            container_spec: None,
            create_time: Utc::now(),
        });
        Some(id)
    }

    /// Gives the version `name` resolves to (its default without `@version`) a serving
    /// container and a customer-managed key, as Model `containerSpec` and `encryptionSpec`.
    pub fn set_specs(&mut self, name: &str, specs: &super::ModelSpecs) -> bool {
        let key = self.model_key(name);
        let version = split_version(name).1;
        let Some(model) = self.models.get_mut(&key) else {
            return false;
        };
        let wanted = match version {
            None | Some("default") => model.default_version.clone(),
            Some(v) => v.to_owned(),
        };
        let Some(v) = model.versions.iter_mut().find(|v| v.id == wanted) else {
            return false;
        };
        v.container_spec = specs.container_spec();
        v.encryption_spec = specs.encryption_spec();
        true
    }

    pub fn set_script(&mut self, source_model: &str, script: CopyScript) {
        let key = self.model_key(source_model);
        self.scripts.insert(key, script);
    }

    /// The scripted fault for the next copy of `body`'s source, if any is left.
    pub fn take_copy_fault(&mut self, body: Option<&Value>) -> Option<Fault> {
        let source = body?.get("sourceModel")?.as_str()?;
        let key = self.model_key(source);
        let script = self.scripts.get_mut(&key)?;
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
        let source_model = self.projects.canonical(&request.source_model);
        let (source_key, version) = split_version(&source_model);
        // Vertex records the version it copied, also when the request named none or an alias.
        let Some((source, version, container_spec)) = (self.models.get(source_key)).and_then(|m| {
            m.resolve(version)
                .map(|v| (m, v.id.clone(), v.container_spec.clone()))
        }) else {
            return Reply::not_found(format!("Model {source_model} does not exist."));
        };
        if let Some(why) =
            super::specs::encryption_refusal(parent, request.encryption_spec.as_ref())
        {
            return Reply::invalid(why);
        }
        let refused = super::specs::cross_project_refusal(source_key, parent, &container_spec);
        let display_name = source.display_name.clone();
        let target = match self.target(parent, &request) {
            Ok(target) => target,
            Err(reply) => return reply,
        };
        let script = self.scripts.get_mut(source_key);
        let duration = script.as_ref().map(|s| s.duration).unwrap_or_default();
        let planned_error = script
            .and_then(|s| (!s.operation_errors.is_empty()).then(|| s.operation_errors.remove(0)))
            .or(refused);
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
            container_spec,
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

    /// `GET /v1/{model}` with an optional `@version` or `@alias`.
    pub fn get_model(&self, name: &str) -> Reply {
        let (key, version) = split_version(name);
        let found = (self.models.get(key)).and_then(|m| m.resolve(version).map(|v| (m, v)));
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

    /// `GET /v1/{parent}/models`: the models of one project and location, each as its default
    /// version (ListModelsResponse `models`, `nextPageToken`; the token is the offset of the
    /// next page, as in [`State::list_versions`]). A page size of 0 means the server's choice.
    /// An empty location lists nothing, which the real API answers with `{}`: proto3 JSON
    /// omits an empty repeated field.
    pub fn list_models(&self, parent: &str, page_size: usize, page_token: &str) -> Reply {
        let prefix = format!("{parent}/models/");
        let start: usize = page_token.parse().unwrap_or(0);
        let size = if page_size == 0 { 100 } else { page_size };
        let all: Vec<(&String, &ModelEntry)> = (self.models.iter())
            .filter(|(k, _)| k.starts_with(&prefix))
            .collect();
        let page: Vec<Value> = (all.iter().skip(start).take(size))
            .filter_map(|(k, m)| m.resolve(None).map(|v| model_json(k, m, v)))
            .collect();
        let mut body = json!({});
        if !page.is_empty() {
            body["models"] = json!(page);
        }
        let next = start.saturating_add(size);
        if next < all.len() {
            body["nextPageToken"] = json!(next.to_string());
        }
        Reply::ok(body)
    }

    /// The Model JSON for `name` in either spelling, if it can be read now.
    pub fn model_json(&mut self, name: &str) -> Option<Value> {
        let name = self.projects.canonical(name);
        let reply = self.get_model(&name);
        (reply.status == 200).then_some(reply.body)
    }

    pub fn operation_names(&self) -> Vec<String> {
        self.operations.keys().cloned().collect()
    }
}

/// Creates the destination of a successful copy and returns the operation's outcome.
fn materialize(models: &mut BTreeMap<String, ModelEntry>, op: &OperationEntry) -> Outcome {
    let now = Utc::now();
    let version = |id: String| VersionEntry {
        id,
        aliases: vec![],
        original: Some(op.source_with_version.clone()),
        encryption_spec: op.encryption_spec.clone(),
        container_spec: op.container_spec.clone(),
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
                let id = next_version_id(model);
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

/// Version ids are auto-incrementing decimal numbers (Model `version_id`).
fn next_version_id(model: &ModelEntry) -> String {
    let ids = model
        .versions
        .iter()
        .filter_map(|v| v.id.parse::<u64>().ok());
    (ids.max().unwrap_or(0) + 1).to_string()
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
    let default = (version.id == model.default_version).then_some("default");
    let aliases: Vec<&str> = default
        .into_iter()
        .chain(version.aliases.iter().map(String::as_str))
        .collect();
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
    if let Some(spec) = &version.container_spec {
        body["containerSpec"] = spec.clone();
    }
    body
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}
