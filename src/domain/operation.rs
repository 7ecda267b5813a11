//! The name of a Vertex AI long-running operation, as the API spells it.
//!
//! An operation name arrives in messages the worker reads back (DESIGN.md §3), and its location
//! picks the regional endpoint that the worker sends its credentials to. So it is parsed to the
//! letter: `projects/{project}/locations/{region}[/{collection}/{id}]*/operations/{digits}`
//! (cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.operations, and
//! `projects.locations.models.operations` for operations under a model). The probe of issue 28,
//! `projects/1/locations/127.0.0.1:47300#/operations/1`, made the worker send its bearer token to
//! that listener; it is refused here, before any client exists.

use std::fmt;

use super::names::{Location, Project, is_model_id};
use crate::contract::rejection::{Rejection, clip};

/// Longest operation name accepted: far above what Vertex AI returns (about 100 bytes).
const MAX_LEN: usize = 512;

/// A long-running operation name whose every segment has the shape Vertex AI gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationName {
    name: String,
    location: Location,
}

impl OperationName {
    pub fn parse(s: &str) -> Result<Self, Rejection> {
        Self::parts(s).ok_or_else(|| {
            Rejection::new(
                "operation",
                format!(
                    "must look like projects/PROJECT/locations/REGION/operations/DIGITS, got {:?}",
                    clip(s)
                ),
            )
        })
    }

    fn parts(s: &str) -> Option<Self> {
        if s.len() > MAX_LEN {
            return None;
        }
        let parts: Vec<&str> = s.split('/').collect();
        let [
            "projects",
            project,
            "locations",
            location,
            middle @ ..,
            "operations",
            id,
        ] = parts.as_slice()
        else {
            return None;
        };
        Project::parse("operation", project).ok()?;
        let location = Location::parse("operation", location).ok()?;
        let digits = !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit());
        let middle_ok = middle.len() % 2 == 0
            && middle
                .chunks(2)
                .all(|pair| is_collection(pair[0]) && is_model_id(pair[1]));
        (digits && middle_ok).then(|| Self {
            name: s.to_owned(),
            location,
        })
    }

    /// The region of the operation, as text (budget keys, logs).
    pub fn location(&self) -> &str {
        self.location.as_str()
    }

    /// The region of the operation, parsed: the only value its endpoint is built from.
    pub fn region(&self) -> &Location {
        &self.location
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }
}

/// A collection segment of a resource name: `models`, `endpoints`, `trainingPipelines`.
fn is_collection(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes().all(|b| b.is_ascii_alphabetic())
}

impl fmt::Display for OperationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_as_vertex_ai_returns_them_parse() {
        for ok in [
            "projects/234567890123/locations/europe-west4/operations/123",
            "projects/dst-proj/locations/us-central1/operations/8412765013246771200",
            "projects/234567890123/locations/us-central1/models/7704127342733426688/operations/55",
            "projects/1/locations/northamerica-northeast1/models/target-model_1/operations/9",
        ] {
            let op = OperationName::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(op.as_str(), ok);
            assert!(ok.contains(&format!("/locations/{}/", op.location())));
        }
    }

    /// The probe of issue 28: `operation=projects/1/locations/127.0.0.1:47300#/operations/1`
    /// made the worker send `Authorization: Bearer <its token>` to that listener. Every name
    /// whose location is not a region, or whose other segments are not Vertex AI's, is refused.
    #[test]
    fn names_that_would_become_another_host_or_path_are_refused() {
        for bad in [
            "projects/1/locations/127.0.0.1:47300#/operations/1",
            "projects/1/locations/evil.example.com#/operations/1",
            "projects/1/locations/us-central1.evil.example/operations/1",
            "projects/1/locations/us-central1@evil/operations/1",
            "projects/1/locations/localhost/operations/1",
            "projects/1/locations/US-CENTRAL1/operations/1",
            "projects/1/locations/us-central1/operations/1?x=1",
            "projects/1/locations/us-central1/operations/abc",
            "projects/1/locations/us-central1/operations/",
            "projects/1/locations/us-central1/../../operations/1",
            "projects/1/locations/us-central1/models/../operations/1",
            "projects/1/locations/us-central1/models/operations/1",
            "projects/0/locations/us-central1/operations/1",
            "projects/a:b/locations/us-central1/operations/1",
            "projects//locations/us-central1/operations/1",
            "projects/1/locations/us-central1",
            "",
        ] {
            let e = OperationName::parse(bad).expect_err(bad);
            assert_eq!(e.field, "operation", "{bad}");
        }
        let long = format!(
            "projects/1/locations/us-central1/operations/{}",
            "1".repeat(600)
        );
        assert!(OperationName::parse(&long).is_err());
    }
}
