//! CopyModel's documented limits, checked before a copy is queued (issue 28, item 7).
//!
//! cloud.google.com/vertex-ai/docs/model-registry/copy-model, "Limitations":
//! - "For cross-project copy, you can't copy custom models that have a third-party container
//!   image." Such a copy is accepted by CopyModel and fails only in its operation, after it
//!   waited for a slot and spent an LRO submission.
//! - "The copied model won't retain … Encryption specs. You're required to specify the
//!   encryption key when copying the model for your target region." A source under a
//!   customer-managed key, copied without `kms_key_name`, quietly becomes a copy under
//!   Google-managed encryption.
//!
//! The function is pure: the pipeline passes what it read of the source (`Model.containerSpec
//! .imageUri`, `Model.encryptionSpec.kmsKeyName`), the request, and the default key of the
//! destination's region ([`DefaultKeys`], `COPY_DEFAULT_KMS_KEYS`).

use std::collections::BTreeMap;

use super::destination::Destination;
use super::names::{KmsKeyName, Location, ModelName};
use crate::contract::Rejection;

/// `COPY_DEFAULT_KMS_KEYS` (DESIGN.md §5): per destination region, the key that encrypts the
/// copy of a source under a customer-managed key when the request names no `kms_key_name`.
/// The configuration builds it (`config::vertex`) and has checked that each key is in its
/// region, as Vertex AI requires of a copy's key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultKeys(BTreeMap<Location, KmsKeyName>);

impl DefaultKeys {
    /// Sets the key of `region`; the previous one, when there was one.
    pub fn insert(&mut self, region: Location, key: KmsKeyName) -> Option<KmsKeyName> {
        self.0.insert(region, key)
    }

    /// The default key of `region`, when one is configured.
    pub fn for_region(&self, region: &str) -> Option<&KmsKeyName> {
        self.0
            .iter()
            .find_map(|(r, k)| (r.as_str() == region).then_some(k))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the worker read of the source model that the limits depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceFacts {
    /// The source's project number, as Vertex AI named the model.
    pub project_number: String,
    /// `Model.containerSpec.imageUri`; `None` for a model without a serving container of its
    /// own (AutoML, a model registered without one).
    pub container_image_uri: Option<String>,
    /// `Model.encryptionSpec.kmsKeyName`; `None` under Google-managed encryption.
    pub kms_key_name: Option<String>,
}

/// The registries of Vertex AI's own serving images: the prebuilt prediction containers
/// (`{us,europe,asia}-docker.pkg.dev/vertex-ai/prediction/…`, and `vertex-ai-restricted` for
/// some; cloud.google.com/vertex-ai/docs/predictions/pre-built-containers) and their older
/// Container Registry home (`gcr.io/cloud-aiplatform/…`). Everything else is third-party.
const VERTEX_IMAGE_PREFIXES: [&str; 10] = [
    "us-docker.pkg.dev/vertex-ai/",
    "europe-docker.pkg.dev/vertex-ai/",
    "asia-docker.pkg.dev/vertex-ai/",
    "us-docker.pkg.dev/vertex-ai-restricted/",
    "europe-docker.pkg.dev/vertex-ai-restricted/",
    "asia-docker.pkg.dev/vertex-ai-restricted/",
    "gcr.io/cloud-aiplatform/",
    "us.gcr.io/cloud-aiplatform/",
    "eu.gcr.io/cloud-aiplatform/",
    "asia.gcr.io/cloud-aiplatform/",
];

/// Whether `uri` is one of Vertex AI's own images rather than a third-party one.
pub fn is_vertex_image(uri: &str) -> bool {
    VERTEX_IMAGE_PREFIXES.iter().any(|p| uri.starts_with(p))
}

/// Whether source and destination are in different projects: `Some(true)` or `Some(false)`
/// when the spellings allow telling, `None` when one is a project id and the other a number
/// (the destination's number is not known before Vertex AI answers).
fn cross_project(source: &ModelName, facts: &SourceFacts, dest: &Destination) -> Option<bool> {
    let d = &dest.project;
    if d.is_number() {
        Some(d.as_str() != facts.project_number)
    } else if !source.project.is_number() {
        Some(d.as_str() != source.project.as_str())
    } else {
        None
    }
}

/// Checks a copy against CopyModel's limits. Returns the key to encrypt the copy with (the
/// CopyModel request's `encryptionSpec`): the request's `kms_key_name`, else, for a source
/// under a customer-managed key, `default_key` (the key configured for the destination's
/// region), else none: a source under Google-managed encryption gets no default key. Refuses, naming the field
/// and quoting the documentation:
/// - a cross-project copy of a model whose container image is third-party (`source_model`);
/// - a source under a customer-managed key with no key for the copy (`kms_key_name`).
///
/// A copy whose projects cannot be told apart by their spellings is not refused for its
/// image: Vertex AI decides, as before.
pub fn check_copy_limits(
    source: &ModelName,
    facts: &SourceFacts,
    dest: &Destination,
    kms_key_name: Option<&KmsKeyName>,
    default_key: Option<&KmsKeyName>,
) -> Result<Option<KmsKeyName>, Rejection> {
    if let Some(image) = facts.container_image_uri.as_deref()
        && !is_vertex_image(image)
        && cross_project(source, facts, dest) == Some(true)
    {
        return Err(Rejection::new(
            "source_model",
            format!(
                "uses the third-party container image {image}, and CopyModel cannot copy such a model to another project (\"For cross-project copy, you can't copy custom models that have a third-party container image\", cloud.google.com/vertex-ai/docs/model-registry/copy-model); copy it within projects/{} or use a prebuilt container",
                source.project
            ),
        ));
    }
    match (kms_key_name, facts.kms_key_name.as_deref(), default_key) {
        (Some(k), _, _) => Ok(Some(k.clone())),
        (None, None, _) => Ok(None),
        (None, Some(_), Some(d)) => Ok(Some(d.clone())),
        (None, Some(source_key), None) => Err(Rejection::new(
            "kms_key_name",
            format!(
                "is required: the source is encrypted with the customer-managed key {source_key}, and a copy keeps no encryption spec (\"You're required to specify the encryption key when copying the model for your target region\", cloud.google.com/vertex-ai/docs/model-registry/copy-model); without one the copy would be under Google-managed encryption. Name a key in {}, or have the worker's operator configure a default key for {} (COPY_DEFAULT_KMS_KEYS)",
                dest.location, dest.location
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Project, Target};

    const PREBUILT: &str = "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest";
    const THIRD_PARTY: &str = "europe-docker.pkg.dev/my-proj/serving/model:v1";

    fn source(project: &str) -> ModelName {
        ModelName::parse(
            "source_model",
            &format!("projects/{project}/locations/us-central1/models/7"),
        )
        .unwrap()
    }

    fn dest(project: &str) -> Destination {
        Destination {
            project: Project::parse("p", project).unwrap(),
            location: "europe-west4".into(),
            target: Target::ModelId("copy-1".into()),
        }
    }

    fn facts(image: Option<&str>, key: Option<&str>) -> SourceFacts {
        SourceFacts {
            project_number: "111111111111".into(),
            container_image_uri: image.map(str::to_owned),
            kms_key_name: key.map(str::to_owned),
        }
    }

    fn key(project: &str) -> KmsKeyName {
        KmsKeyName::parse(
            "kms_key_name",
            &format!("projects/{project}/locations/europe-west4/keyRings/r/cryptoKeys/k"),
            "europe-west4",
        )
        .unwrap()
    }

    #[test]
    fn third_party_images_stop_only_cross_project_copies() {
        // (source project, destination project, image, refused?)
        let cases = [
            ("src-proj", "dst-proj", Some(THIRD_PARTY), true),
            ("src-proj", "222222222222", Some(THIRD_PARTY), true),
            ("111111111111", "222222222222", Some(THIRD_PARTY), true),
            ("src-proj", "src-proj", Some(THIRD_PARTY), false),
            ("src-proj", "111111111111", Some(THIRD_PARTY), false),
            ("111111111111", "dst-proj", Some(THIRD_PARTY), false),
            ("src-proj", "dst-proj", Some(PREBUILT), false),
            (
                "src-proj",
                "dst-proj",
                Some("gcr.io/cloud-aiplatform/prediction/tf2-cpu.2-8:latest"),
                false,
            ),
            (
                "src-proj",
                "dst-proj",
                Some("us-docker.pkg.dev/vertex-ai-evil/x"),
                true,
            ),
            ("src-proj", "dst-proj", None, false),
        ];
        for (s, d, image, refused) in cases {
            let got = check_copy_limits(&source(s), &facts(image, None), &dest(d), None, None);
            assert_eq!(got.is_err(), refused, "{s} -> {d} with {image:?}: {got:?}");
            if let Err(r) = got {
                assert_eq!(r.field, "source_model");
                assert!(r.rule.contains("third-party container image"), "{}", r.rule);
            }
        }
    }

    #[test]
    fn a_cmek_source_needs_a_key_for_its_copy() {
        let cmek = Some("projects/src-proj/locations/us-central1/keyRings/r/cryptoKeys/src");
        let (s, d) = (source("src-proj"), dest("dst-proj"));
        let f = facts(Some(PREBUILT), cmek);
        let e = check_copy_limits(&s, &f, &d, None, None).unwrap_err();
        assert_eq!(e.field, "kms_key_name");
        assert!(
            e.rule.contains("europe-west4") && e.rule.contains("src"),
            "{}",
            e.rule
        );
        let own = key("dst-proj");
        assert_eq!(
            check_copy_limits(&s, &f, &d, Some(&own), None).unwrap(),
            Some(own.clone())
        );
        let default = key("keys-proj");
        assert_eq!(
            check_copy_limits(&s, &f, &d, None, Some(&default)).unwrap(),
            Some(default.clone())
        );
        // The request's key wins over the default; a Google-encrypted source needs none.
        assert_eq!(
            check_copy_limits(&s, &f, &d, Some(&own), Some(&default)).unwrap(),
            Some(own)
        );
        let plain = facts(Some(PREBUILT), None);
        assert_eq!(
            check_copy_limits(&s, &plain, &d, None, Some(&default)).unwrap(),
            None
        );
    }
}
