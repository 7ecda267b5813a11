//! Google Cloud resource names used by copy-worker: projects, locations, models, KMS keys
//! (operations: [`super::operation`]).
//!
//! Each newtype is built only by parsing, so a value that exists is well formed and the
//! stages never re-check it.

use std::fmt;

use crate::contract::rejection::{Rejection, clip};

/// A project id (`my-proj-123`) or project number (`123456789`, never `0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Project(String);

impl Project {
    pub fn parse(field: &str, s: &str) -> Result<Self, Rejection> {
        if is_project(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Rejection::new(
                field,
                format!(
                    "must be a project id ([a-z][a-z0-9-]{{4,28}}[a-z0-9]) or a project number (not 0), got {:?}",
                    clip(s)
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `projects/{p}/locations/{l}/models/{id}[@{version}]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelName {
    pub project: Project,
    pub location: String,
    pub model_id: String,
    /// A version id (`3`) or alias (`default`), when the name pins one.
    pub version: Option<String>,
}

impl ModelName {
    /// Parses a full resource name.
    pub fn parse(field: &str, s: &str) -> Result<Self, Rejection> {
        let bad = || {
            Rejection::new(
                field,
                format!(
                    "must look like projects/PROJECT/locations/LOCATION/models/ID[@VERSION], got {:?}",
                    clip(s)
                ),
            )
        };
        let Some([project, location, id_version]) =
            collection_ids(s, ["projects", "locations", "models"])
        else {
            return Err(bad());
        };
        let project = Project::parse(field, project)?;
        if !is_location(location) {
            return Err(Rejection::new(
                field,
                format!(
                    "location must be a region such as us-central1, got {:?}",
                    clip(location)
                ),
            ));
        }
        let (model_id, version) = split_version(field, id_version)?;
        Ok(Self {
            project,
            location: location.to_owned(),
            model_id,
            version,
        })
    }

    /// Parses a full name, or a bare `ID[@VERSION]` resolved with `SOURCE_PROJECT` and `LOCATION`.
    pub fn parse_or_bare(
        field: &str,
        s: &str,
        source_project: Option<&str>,
        location: Option<&str>,
    ) -> Result<Self, Rejection> {
        if s.contains('/') {
            return Self::parse(field, s);
        }
        let (model_id, version) = split_version(field, s)?;
        let project = source_project.ok_or_else(|| {
            Rejection::new(
                field,
                "is a bare model id, but the worker has no SOURCE_PROJECT; send the full name",
            )
        })?;
        let location = location.ok_or_else(|| {
            Rejection::new(
                field,
                "is a bare model id, but the worker has no LOCATION; send the full name",
            )
        })?;
        Self::parse(
            field,
            &format!(
                "projects/{project}/locations/{location}/models/{}",
                with_version(&model_id, version.as_deref())
            ),
        )
    }

    /// The name without `@version`.
    pub fn without_version(&self) -> String {
        format!(
            "projects/{}/locations/{}/models/{}",
            self.project, self.location, self.model_id
        )
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&with_version(
            &self.without_version(),
            self.version.as_deref(),
        ))
    }
}

/// A model as Vertex AI names it (DESIGN.md §10): the project by number, the version
/// resolved. Identity is compared on these parts, never on the text of a name, because
/// requests name projects by id and Vertex answers with numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelIdentity {
    /// The project number.
    pub project_number: String,
    pub location: String,
    pub model_id: String,
    /// The resolved version id, when the request pinned a version (or an alias); `None`
    /// matches any version.
    pub version_id: Option<String>,
}

impl ModelIdentity {
    /// Whether a recorded `originalModelInfo.model` (`projects/{number}/…/models/ID@V`) is a
    /// copy of this model: same project number, location and model, and the same version
    /// when one is pinned. Vertex records the version it copied even when the request named
    /// none, so an unpinned source matches any version.
    pub fn is_source_of(&self, recorded: &str) -> bool {
        let Ok(rec) = ModelName::parse("originalModelInfo.model", recorded) else {
            return false;
        };
        rec.project.as_str() == self.project_number
            && rec.location == self.location
            && rec.model_id == self.model_id
            && match &self.version_id {
                None => true,
                Some(v) => rec.version.as_deref() == Some(v.as_str()),
            }
    }
}

impl Project {
    /// Whether this is a project number (all digits) rather than an id.
    pub fn is_number(&self) -> bool {
        self.0.bytes().all(|b| b.is_ascii_digit())
    }
}

impl ModelName {
    /// Whether the pinned version is an alias (`default`) that only Vertex can resolve.
    pub fn pins_alias(&self) -> bool {
        self.version
            .as_deref()
            .is_some_and(|v| !v.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The identity of this name when its project number is known and no alias needs
    /// resolving.
    pub fn identity(&self, project_number: &str) -> Option<ModelIdentity> {
        (!self.pins_alias()).then(|| ModelIdentity {
            project_number: project_number.to_owned(),
            location: self.location.clone(),
            model_id: self.model_id.clone(),
            version_id: self.version.clone(),
        })
    }

    /// This name with the project spelled as `project_number`.
    pub fn with_project(&self, project_number: &str) -> String {
        let mut n = self.clone();
        n.project = Project(project_number.to_owned());
        n.to_string()
    }
}

/// `projects/{p}/locations/{l}/keyRings/{r}/cryptoKeys/{k}`, in the destination's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKeyName(String);

impl KmsKeyName {
    pub fn parse(field: &str, s: &str, destination_location: &str) -> Result<Self, Rejection> {
        let Some([project, location, ring, key]) =
            collection_ids(s, ["projects", "locations", "keyRings", "cryptoKeys"])
        else {
            return Err(Rejection::new(
                field,
                format!(
                    "must look like projects/P/locations/L/keyRings/R/cryptoKeys/K, got {:?}",
                    clip(s)
                ),
            ));
        };
        if !is_project(project) || !is_kms_id(ring) || !is_kms_id(key) {
            return Err(Rejection::new(
                field,
                format!("has an empty or invalid part: {:?}", clip(s)),
            ));
        }
        if location != destination_location {
            return Err(Rejection::new(
                field,
                format!(
                    "key is in {location} but the destination is {destination_location}; \
                     Vertex AI needs a key in the destination's location"
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The ids of `collections/{id}/…` when `s` is exactly those collections in that order.
fn collection_ids<'a, const N: usize>(s: &'a str, collections: [&str; N]) -> Option<[&'a str; N]> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() != 2 * N {
        return None;
    }
    let mut ids = [""; N];
    for (i, collection) in collections.iter().enumerate() {
        if parts[2 * i] != *collection {
            return None;
        }
        ids[i] = parts[2 * i + 1];
    }
    Some(ids)
}

/// A key ring or key id: letters, digits, `_` and `-`, 1 to 63 of them
/// (cloud.google.com/kms/docs/create-key-ring, cloud.google.com/kms/docs/create-key).
fn is_kms_id(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn split_version(field: &str, s: &str) -> Result<(String, Option<String>), Rejection> {
    let (id, version) = match s.split_once('@') {
        Some((id, v)) => (id, Some(v)),
        None => (s, None),
    };
    if !is_model_id(id) {
        return Err(Rejection::new(
            field,
            format!(
                "model id must be a number or match [a-z][a-z0-9_-]{{0,62}}, got {:?}",
                clip(id)
            ),
        ));
    }
    if let Some(v) = version {
        let ok = (1..=128).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(Rejection::new(
                field,
                format!(
                    "version after @ must be a version id or alias, got {:?}",
                    clip(v)
                ),
            ));
        }
    }
    Ok((id.to_owned(), version.map(str::to_owned)))
}

fn with_version(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{name}@{v}"),
        None => name.to_owned(),
    }
}

/// A project id (`[a-z][a-z0-9-]{4,28}[a-z0-9]`) or a project number (digits, not `0`, no
/// leading zero: numbers are assigned by Google from 1). cloud.google.com/resource-manager/
/// docs/creating-managing-projects, "Before you begin" (the id's rules).
pub fn is_project(s: &str) -> bool {
    let b = s.as_bytes();
    let number = !b.is_empty() && b.len() <= 20 && b[0] != b'0' && b.iter().all(u8::is_ascii_digit);
    let id = (6..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-';
    number || id
}

/// A Google Cloud region as Vertex AI names its locations: `{area}-{direction}{n}`, such as
/// `us-central1`, `europe-west4`, `me-central2` or `northamerica-northeast1`
/// (cloud.google.com/vertex-ai/docs/general/locations: "Vertex AI doesn't support a global
/// location"; the regional endpoint is `https://{region}-aiplatform.googleapis.com`). The
/// location becomes part of a host name, so nothing else may pass: no dot, colon, `#`,
/// slash or upper case.
pub fn is_location(s: &str) -> bool {
    let Some((area, rest)) = s.split_once('-') else {
        return false;
    };
    let digits = rest.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let direction = &rest[..rest.len() - digits.len()];
    s.len() <= 30
        && area.len() >= 2
        && area.bytes().all(|c| c.is_ascii_lowercase())
        && direction.len() >= 2
        && (1..=2).contains(&digits.len())
        && digits.bytes().all(|c| c.is_ascii_digit())
}

/// A location that passed [`is_location`]: the only kind of value a Vertex AI endpoint is
/// built from (`clients::vertex`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location(String);

impl Location {
    pub fn parse(field: &str, s: &str) -> Result<Self, Rejection> {
        if is_location(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Rejection::new(
                field,
                format!(
                    "must be a region such as us-central1 or europe-west4, got {:?}",
                    clip(s)
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user-chosen model id: `[a-z][a-z0-9_-]{0,62}`.
pub fn is_user_model_id(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// A model id as Vertex names them: numeric, or user-chosen.
pub fn is_model_id(s: &str) -> bool {
    (!s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_digit())) || is_user_model_id(s)
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;
