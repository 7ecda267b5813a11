//! The copy request of DESIGN.md §3: parsed once, into types that can only hold valid values.
//!
//! The same code validates in the worker (`pipeline`), in `copy-worker publish` and in
//! `POST /v1/models/copy`, so a request accepted by one is accepted by all. Every rejection
//! names the field and the rule it broke ([`Rejection`]).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::names::{KmsKeyName, ModelName, Project, is_location, is_user_model_id};

/// Largest request accepted, in bytes of JSON (DESIGN.md §3).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest number of `context` pairs echoed into the completion event.
pub const MAX_CONTEXT_PAIRS: usize = 16;

/// Why a request was refused: the field and the rule, ready for an operator to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Rejection {
    /// JSON path of the offending field (`destination.model_id`), or `request` for the whole.
    pub field: String,
    /// What the field must look like, and what was found.
    pub rule: String,
}

impl Rejection {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

/// Worker-side defaults and policy that a request is validated against (DESIGN.md §5, §7).
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// `SOURCE_PROJECT`: project of bare source model ids.
    pub source_project: Option<String>,
    /// `TARGET_PROJECT`: destination project when the request names none.
    pub target_project: Option<String>,
    /// `LOCATION`: location of bare source model ids and of the seed's two-field form.
    pub location: Option<String>,
    /// `CALLBACK_ALLOWED_HOSTS`: hosts a `callback_url` may point at. Empty: no callbacks.
    pub callback_allowed_hosts: Vec<String>,
    /// `CALLBACK_ALLOW_HTTP_LOOPBACK`: also allow `http://127.0.0.1:*` (local tests only).
    pub callback_allow_http_loopback: bool,
}

/// `request_id`: `[A-Za-z0-9._:-]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(String);

impl RequestId {
    pub fn parse(s: &str) -> Result<Self, Rejection> {
        let ok = (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Rejection::new(
                "request_id",
                format!("must match [A-Za-z0-9._:-]{{1,128}}, got {:?}", clip(s)),
            ))
        }
    }

    /// A stable id for bytes that could not be parsed: same bytes, same id, so a redelivered
    /// rejection carries the same `ce-id`.
    pub fn for_bytes(bytes: &[u8]) -> Self {
        Self(format!("invalid-{}", &sha256_hex(bytes)[..32]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The source of a copy: a model, optionally pinned to a version.
pub type SourceModel = ModelName;

/// Where the copy goes: a new model with a deterministic id, or a new version of a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `destination.model_id` (explicit or derived from the request id).
    ModelId(String),
    /// `destination.parent_model`: add a version to this existing model.
    ParentModel(ModelName),
}

/// The destination of a copy, with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub project: Project,
    pub location: String,
    pub target: Target,
}

impl Destination {
    /// `projects/{p}/locations/{l}`: the `parent` of CopyModel.
    pub fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.location)
    }

    /// The model that will hold the copy.
    pub fn model_name(&self) -> String {
        match &self.target {
            Target::ModelId(id) => format!("{}/models/{id}", self.parent()),
            Target::ParentModel(m) => m.without_version(),
        }
    }
}

/// A validated, normalised copy request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    pub request_id: RequestId,
    pub source_model: SourceModel,
    pub destination: Destination,
    pub kms_key_name: Option<KmsKeyName>,
    pub context: BTreeMap<String, String>,
    pub callback_url: Option<String>,
}

impl CopyRequest {
    /// Parses request bytes as received on the wire (UTF-8 JSON, at most 64 KiB).
    pub fn parse(bytes: &[u8], defaults: &Defaults) -> Result<Self, Rejection> {
        if bytes.is_empty() {
            return Err(Rejection::new(
                "request",
                "message has no data; expected a JSON copy request",
            ));
        }
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(Rejection::new(
                "request",
                format!("is {} bytes; the limit is {MAX_REQUEST_BYTES}", bytes.len()),
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Rejection::new("request", format!("is not valid UTF-8 ({e})")))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Rejection::new("request", format!("is not valid JSON ({e})")))?;
        let Value::Object(map) = value else {
            return Err(Rejection::new(
                "request",
                format!("must be a JSON object, got {}", kind(&value)),
            ));
        };
        Self::from_map(map, defaults)
    }

    /// Parses an already decoded JSON object.
    pub fn from_map(map: Map<String, Value>, defaults: &Defaults) -> Result<Self, Rejection> {
        if map.contains_key("source_model_id") || map.contains_key("destination_model_id") {
            return seed_form(map, defaults);
        }
        full_form(map, defaults)
    }

    /// The seed's two query parameters (`POST /v1/models/copy?source_model_id=…`).
    pub fn from_seed(
        source_model_id: &str,
        destination_model_id: &str,
        defaults: &Defaults,
    ) -> Result<Self, Rejection> {
        let mut map = Map::new();
        map.insert("source_model_id".into(), json!(source_model_id));
        map.insert("destination_model_id".into(), json!(destination_model_id));
        seed_form(map, defaults)
    }

    /// The normalised JSON: every default applied, so that a later parse of it (the watch
    /// stage, a replay) needs no worker defaults and yields the same request.
    pub fn to_json(&self) -> Value {
        let mut dest = Map::new();
        dest.insert("project".into(), json!(self.destination.project.as_str()));
        dest.insert("location".into(), json!(self.destination.location));
        match &self.destination.target {
            Target::ModelId(id) => dest.insert("model_id".into(), json!(id)),
            Target::ParentModel(m) => dest.insert("parent_model".into(), json!(m.to_string())),
        };
        let mut out = Map::new();
        out.insert("request_id".into(), json!(self.request_id.as_str()));
        out.insert("source_model".into(), json!(self.source_model.to_string()));
        out.insert("destination".into(), Value::Object(dest));
        if let Some(k) = &self.kms_key_name {
            out.insert("kms_key_name".into(), json!(k.as_str()));
        }
        if !self.context.is_empty() {
            out.insert("context".into(), json!(self.context));
        }
        if let Some(u) = &self.callback_url {
            out.insert("callback_url".into(), json!(u));
        }
        Value::Object(out)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("a JSON value always serialises")
    }
}

const FIELDS: &[&str] = &[
    "request_id",
    "source_model",
    "destination",
    "kms_key_name",
    "context",
    "callback_url",
];
const DEST_FIELDS: &[&str] = &["project", "location", "model_id", "parent_model"];

fn full_form(mut map: Map<String, Value>, d: &Defaults) -> Result<CopyRequest, Rejection> {
    reject_unknown(&map, FIELDS, "")?;
    let source = match take_str(&mut map, "source_model")? {
        Some(s) => ModelName::parse_or_bare("source_model", &s, d)?,
        None => return Err(Rejection::new("source_model", "is required")),
    };
    let dest_map = match map.remove("destination") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(Rejection::new(
                "destination",
                format!("must be an object, got {}", kind(&other)),
            ));
        }
    };
    let (project, location, target) = destination_fields(dest_map, &source, d)?;
    let request_id = match take_str(&mut map, "request_id")? {
        Some(s) => RequestId::parse(&s)?,
        None => derive_request_id(&source, &project, &location, target.as_ref()),
    };
    let target = target.unwrap_or_else(|| Target::ModelId(derive_model_id(&request_id)));
    let destination = Destination {
        project,
        location,
        target,
    };
    let kms_key_name = take_str(&mut map, "kms_key_name")?
        .map(|s| KmsKeyName::parse("kms_key_name", &s, &destination.location))
        .transpose()?;
    let context = parse_context(map.remove("context"))?;
    let callback_url = take_str(&mut map, "callback_url")?
        .map(|s| validate_callback_url(&s, d))
        .transpose()?;
    Ok(CopyRequest {
        request_id,
        source_model: source,
        destination,
        kms_key_name,
        context,
        callback_url,
    })
}

type DestParts = (Project, String, Option<Target>);

fn destination_fields(
    mut m: Map<String, Value>,
    source: &ModelName,
    d: &Defaults,
) -> Result<DestParts, Rejection> {
    reject_unknown(&m, DEST_FIELDS, "destination.")?;
    let model_id = take_str_at(&mut m, "model_id", "destination.model_id")?;
    let parent = take_str_at(&mut m, "parent_model", "destination.parent_model")?;
    let project = take_str_at(&mut m, "project", "destination.project")?;
    let location = take_str_at(&mut m, "location", "destination.location")?;
    let parent = parent
        .map(|p| ModelName::parse("destination.parent_model", &p))
        .transpose()?;
    if let Some(p) = &parent
        && p.version.is_some()
    {
        return Err(Rejection::new(
            "destination.parent_model",
            "must name a model without @version; the copy becomes its next version",
        ));
    }
    let project = match (project, &parent) {
        (Some(p), _) => p,
        (None, Some(parent)) => parent.project.as_str().to_owned(),
        (None, None) => d.target_project.clone().ok_or_else(|| {
            Rejection::new(
                "destination.project",
                "is required: the request names none and the worker has no TARGET_PROJECT",
            )
        })?,
    };
    let project = Project::parse("destination.project", &project)?;
    let location = match (location, &parent) {
        (Some(l), _) => l,
        (None, Some(parent)) => parent.location.clone(),
        (None, None) => source.location.clone(),
    };
    if !is_location(&location) {
        return Err(Rejection::new(
            "destination.location",
            format!(
                "must be a region such as europe-west4, got {:?}",
                clip(&location)
            ),
        ));
    }
    let target = match (model_id, parent) {
        (Some(_), Some(_)) => {
            return Err(Rejection::new(
                "destination",
                "takes at most one of model_id and parent_model",
            ));
        }
        (Some(id), None) => {
            if !is_user_model_id(&id) {
                return Err(Rejection::new(
                    "destination.model_id",
                    format!("must match [a-z][a-z0-9_-]{{0,62}}, got {:?}", clip(&id)),
                ));
            }
            Some(Target::ModelId(id))
        }
        (None, Some(parent)) => {
            if parent.project != project || parent.location != location {
                return Err(Rejection::new(
                    "destination.parent_model",
                    format!(
                        "must be in the destination projects/{project}/locations/{location}, got {parent}"
                    ),
                ));
            }
            Some(Target::ParentModel(parent))
        }
        (None, None) => None,
    };
    Ok((project, location, target))
}

fn seed_form(mut map: Map<String, Value>, d: &Defaults) -> Result<CopyRequest, Rejection> {
    reject_unknown(&map, &["source_model_id", "destination_model_id"], "")?;
    let src = take_str(&mut map, "source_model_id")?
        .ok_or_else(|| Rejection::new("source_model_id", "is required in the two-field form"))?;
    let dst = take_str(&mut map, "destination_model_id")?.ok_or_else(|| {
        Rejection::new("destination_model_id", "is required in the two-field form")
    })?;
    let location = d.location.clone().ok_or_else(|| {
        Rejection::new(
            "source_model_id",
            "the two-field form needs LOCATION configured on the worker",
        )
    })?;
    let target = d.target_project.clone().ok_or_else(|| {
        Rejection::new(
            "destination_model_id",
            "the two-field form needs TARGET_PROJECT configured on the worker",
        )
    })?;
    let mut full = Map::new();
    full.insert("source_model".into(), json!(src));
    full.insert(
        "destination".into(),
        json!({"project": target, "location": location, "model_id": dst}),
    );
    full_form(full, d).map_err(|r| match r.field.as_str() {
        "source_model" => Rejection::new("source_model_id", r.rule),
        "destination.model_id" => Rejection::new("destination_model_id", r.rule),
        _ => r,
    })
}

fn derive_request_id(
    source: &ModelName,
    project: &Project,
    location: &str,
    target: Option<&Target>,
) -> RequestId {
    let target = match target {
        Some(Target::ModelId(id)) => format!("model_id={id}"),
        Some(Target::ParentModel(m)) => format!("parent_model={m}"),
        None => String::new(),
    };
    let basis = format!("{source}\n{project}\n{location}\n{target}");
    RequestId(sha256_hex(basis.as_bytes())[..32].to_owned())
}

/// `copy-` and the first 20 hex digits of sha256(request_id): deterministic, so a repeated
/// delivery targets the same model and Vertex answers ALREADY_EXISTS instead of copying twice.
pub fn derive_model_id(id: &RequestId) -> String {
    format!("copy-{}", &sha256_hex(id.as_str().as_bytes())[..20])
}

fn parse_context(v: Option<Value>) -> Result<BTreeMap<String, String>, Rejection> {
    let map = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(Rejection::new(
                "context",
                format!("must be an object of strings, got {}", kind(&other)),
            ));
        }
    };
    if map.len() > MAX_CONTEXT_PAIRS {
        return Err(Rejection::new(
            "context",
            format!(
                "has {} pairs; at most {MAX_CONTEXT_PAIRS} are allowed",
                map.len()
            ),
        ));
    }
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            other => Err(Rejection::new(
                format!("context.{k}"),
                format!("must be a string, got {}", kind(&other)),
            )),
        })
        .collect()
}

/// Checks a callback URL against DESIGN.md §7: https only, allowed hosts only.
pub fn validate_callback_url(s: &str, d: &Defaults) -> Result<String, Rejection> {
    let field = "callback_url";
    let url = url::Url::parse(s)
        .map_err(|e| Rejection::new(field, format!("is not a URL ({e}): {:?}", clip(s))))?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let loopback_http = d.callback_allow_http_loopback
        && url.scheme() == "http"
        && (host == "127.0.0.1" || host == "localhost");
    if url.scheme() != "https" && !loopback_http {
        return Err(Rejection::new(
            field,
            format!("must use https, got {}://", url.scheme()),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Rejection::new(field, "must not carry credentials"));
    }
    if !loopback_http
        && !d
            .callback_allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host))
    {
        return Err(Rejection::new(
            field,
            format!("host {host:?} is not allowed; add it to CALLBACK_ALLOWED_HOSTS on the worker"),
        ));
    }
    Ok(url.to_string())
}

fn reject_unknown(map: &Map<String, Value>, known: &[&str], prefix: &str) -> Result<(), Rejection> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Rejection::new(
            format!("{prefix}{}", clip(k)),
            format!("is not a known field (known: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn take_str(map: &mut Map<String, Value>, key: &str) -> Result<Option<String>, Rejection> {
    take_str_at(map, key, key)
}

fn take_str_at(
    map: &mut Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<String>, Rejection> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Rejection::new(
            field,
            format!("must be a string, got {}", kind(&other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Cuts user input quoted in an error, so a rejection never echoes a huge payload.
pub(crate) fn clip(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
