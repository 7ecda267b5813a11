//! Where a copy goes (DESIGN.md §1, §3). Everything that depends on the kind of destination
//! lives here: how it is read from the request, the model that will hold the copy, the id
//! derived for it, and how an existing model is judged ours or not.
//! A new destination kind is a new [`Target`] variant and the `match`es in this file.

use super::names::{ModelIdentity, ModelName, Project, is_location, is_user_model_id};
use super::{RequestId, sha256_hex};
use crate::contract::rejection::{Rejection, clip};
use crate::contract::request::DestinationWire;

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

/// A destination read from the request, before a missing model id is derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partial {
    pub project: Project,
    pub location: String,
    pub target: Option<Target>,
}

impl Partial {
    /// Reads `destination`: `project` defaults to `TARGET_PROJECT` (or the parent's),
    /// `location` to the source's (or the parent's).
    pub fn from_wire(
        w: DestinationWire,
        source: &ModelName,
        target_project: Option<&str>,
    ) -> Result<Self, Rejection> {
        let parent = w
            .parent_model
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
        let project = match (w.project, &parent) {
            (Some(p), _) => p,
            (None, Some(parent)) => parent.project.as_str().to_owned(),
            (None, None) => target_project.map(str::to_owned).ok_or_else(|| {
                Rejection::new(
                    "destination.project",
                    "is required: the request names none and no default is set (the worker's \
                     TARGET_PROJECT; for `copy-worker publish`, --destination-project or \
                     TARGET_PROJECT)",
                )
            })?,
        };
        let project = Project::parse("destination.project", &project)?;
        let location = match (w.location, &parent) {
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
        let target = target_of(w.model_id, parent, &project, &location)?;
        Ok(Self {
            project,
            location,
            target,
        })
    }

    /// The text a derived request id is hashed from: the destination as the request gave it.
    pub fn id_basis(&self) -> String {
        let target = match &self.target {
            Some(Target::ModelId(id)) => format!("model_id={id}"),
            Some(Target::ParentModel(m)) => format!("parent_model={m}"),
            None => String::new(),
        };
        format!("{}\n{}\n{target}", self.project, self.location)
    }

    /// The destination, with the model id derived from the request id when none was given.
    pub fn complete(self, request_id: &RequestId) -> Destination {
        Destination {
            project: self.project,
            location: self.location,
            target: self
                .target
                .unwrap_or_else(|| Target::ModelId(derive_model_id(request_id))),
        }
    }
}

/// The target of a destination: `model_id` or `parent_model` (at most one), checked
/// against the destination's project and location.
fn target_of(
    model_id: Option<String>,
    parent: Option<ModelName>,
    project: &Project,
    location: &str,
) -> Result<Option<Target>, Rejection> {
    Ok(match (model_id, parent) {
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
            if parent.project != *project || parent.location != location {
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
    })
}

/// `copy-` and the first 20 hex digits of sha256(request_id): deterministic, so a repeated
/// delivery targets the same model and Vertex answers ALREADY_EXISTS instead of copying twice.
pub fn derive_model_id(id: &RequestId) -> String {
    format!("copy-{}", &sha256_hex(id.as_str().as_bytes())[..20])
}

/// The fields of a model that decide whether it is our copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    pub version_id: String,
    /// `originalModelInfo.model`: the model (with version) this one was copied from.
    pub original_model: Option<String>,
    /// `containerSpec.imageUri`: its serving image, when it has one (CopyModel's limits).
    pub container_image_uri: Option<String>,
    /// `encryptionSpec.kmsKeyName`: its customer-managed key, when it has one.
    pub kms_key_name: Option<String>,
}

/// A finished copy: the model that holds it and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedModel {
    /// `projects/…/models/ID`, without version, as Vertex AI names it (project number).
    pub model: String,
    pub version_id: String,
}

/// What the destination holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// A copy of our source.
    Ours(CopiedModel),
    /// Something else, with the reason.
    Conflict(String),
    /// Nothing readable (yet).
    NotYet,
}

impl Destination {
    /// `projects/{p}/locations/{l}`: the `parent` of CopyModel.
    pub fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.location)
    }

    /// The model that will hold the copy.
    pub fn model_name(&self) -> String {
        self.model().to_string()
    }

    /// The model that will hold the copy, as a name (without version).
    pub fn model(&self) -> ModelName {
        match &self.target {
            Target::ModelId(id) => ModelName {
                project: self.project.clone(),
                location: self.location.clone(),
                model_id: id.clone(),
                version: None,
            },
            Target::ParentModel(m) => ModelName {
                version: None,
                ..m.clone()
            },
        }
    }

    /// Whether an earlier copy can only be found by listing versions (a new version has no
    /// name of its own until it exists).
    pub fn lists_versions(&self) -> bool {
        matches!(self.target, Target::ParentModel(_))
    }

    /// The wire form, every default applied.
    pub fn to_wire(&self) -> DestinationWire {
        let mut w = DestinationWire {
            project: Some(self.project.to_string()),
            location: Some(self.location.clone()),
            ..DestinationWire::default()
        };
        match &self.target {
            Target::ModelId(id) => w.model_id = Some(id.clone()),
            Target::ParentModel(m) => w.parent_model = Some(m.to_string()),
        }
        w
    }

    /// Judges what the destination holds: the model read by name (`found`, for a model id),
    /// or every version listed (for a parent model). `Ours` carries the model's name as
    /// Vertex AI returned it (project number, no version), so every path announces the
    /// same name.
    pub fn judge(&self, source: &ModelIdentity, found: Vec<ModelInfo>) -> Existing {
        let ours = |m: &ModelInfo| {
            m.original_model
                .as_deref()
                .is_some_and(|s| source.is_source_of(s))
        };
        let canonical = |m: ModelInfo| {
            let name = m.name.split('@').next().unwrap_or_default().to_owned();
            Existing::Ours(CopiedModel {
                model: name,
                version_id: m.version_id,
            })
        };
        match &self.target {
            Target::ModelId(_) => match found.into_iter().next() {
                None => Existing::NotYet,
                Some(m) if ours(&m) => canonical(m),
                Some(m) => Existing::Conflict(format!(
                    "destination {} already exists and is not a copy of projects/{}/locations/{}/models/{} (it was copied from {})",
                    self.model_name(),
                    source.project_number,
                    source.location,
                    source.model_id,
                    m.original_model.as_deref().unwrap_or("nothing")
                )),
            },
            Target::ParentModel(_) => found
                .into_iter()
                .find(ours)
                .map_or(Existing::NotYet, canonical),
        }
    }
}
