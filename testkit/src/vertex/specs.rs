//! A model's serving container and encryption, as Vertex AI returns them, and what CopyModel
//! does with them.
//!
//! - `Model.containerSpec` (`ModelContainerSpec`: `imageUri`, …; cloud.google.com/vertex-ai/docs/
//!   reference/rest/v1/ModelContainerSpec) and `Model.encryptionSpec` (`{kmsKeyName}`,
//!   cloud.google.com/vertex-ai/docs/reference/rest/v1/EncryptionSpec) are fields of the model
//!   version, left out when unset.
//! - A copy keeps the container, but not the encryption: "The copied model won't retain …
//!   Encryption specs. You're required to specify the encryption key when copying the model"
//!   (cloud.google.com/vertex-ai/docs/model-registry/copy-model, "Limitations"). The copy gets
//!   the request's `encryptionSpec`, or none.
//! - "For cross-project copy, you can't copy custom models that have a third-party container
//!   image" (same page). The page does not say how it fails; the fake accepts the call and
//!   ends the operation with FAILED_PRECONDITION (9), as a precondition of the source, which
//!   is what the issue that asked for this fake observed: an LRO submission spent.

use serde_json::{Value, json};

/// A source model's serving container and customer-managed key, for
/// [`super::VertexFake::set_specs`]. A copy keeps the container and drops the key; a copy of a
/// third-party image into another project fails in its operation (FAILED_PRECONDITION).
#[derive(Clone, Debug, Default)]
pub struct ModelSpecs {
    /// `containerSpec.imageUri`; `None`: no container of its own (AutoML).
    pub container_image_uri: Option<String>,
    /// `encryptionSpec.kmsKeyName`; `None`: Google-managed encryption.
    pub kms_key_name: Option<String>,
}

impl ModelSpecs {
    pub(crate) fn container_spec(&self) -> Option<Value> {
        let uri = self.container_image_uri.as_ref()?;
        Some(json!({"imageUri": uri, "predictRoute": "/predict", "healthRoute": "/health"}))
    }

    pub(crate) fn encryption_spec(&self) -> Option<Value> {
        let key = self.kms_key_name.as_ref()?;
        Some(json!({"kmsKeyName": key}))
    }
}

/// Vertex AI's own serving images: the prebuilt prediction containers
/// (cloud.google.com/vertex-ai/docs/predictions/pre-built-containers, in the `vertex-ai`
/// repositories of `{us,europe,asia}-docker.pkg.dev`) and their older `gcr.io/cloud-aiplatform`
/// home. Every other image is a third party's.
fn is_first_party(uri: &str) -> bool {
    match uri.split_once('/') {
        Some((host, path)) if host.ends_with("-docker.pkg.dev") => {
            path.starts_with("vertex-ai/") || path.starts_with("vertex-ai-restricted/")
        }
        Some((host, path)) if host == "gcr.io" || host.ends_with(".gcr.io") => {
            path.starts_with("cloud-aiplatform/")
        }
        _ => false,
    }
}

/// The operation error of a copy from `source` (canonical) into `parent` (canonical): the
/// cross-project limit on third-party images, when it applies.
pub(crate) fn cross_project_refusal(
    source: &str,
    parent: &str,
    container_spec: &Option<Value>,
) -> Option<(i32, String)> {
    let project = |name: &str| name.split('/').nth(1).unwrap_or_default().to_owned();
    let uri = container_spec.as_ref()?.get("imageUri")?.as_str()?;
    (project(source) != project(parent) && !is_first_party(uri)).then(|| {
        (
            9,
            format!(
                "Cannot copy model {source} to another project: for cross-project copy, custom models with a third-party container image ({uri}) are not supported."
            ),
        )
    })
}

/// Why a CopyModel request's `encryptionSpec` is refused (400 INVALID_ARGUMENT), if it is.
/// `EncryptionSpec` (cloud.google.com/vertex-ai/docs/reference/rest/v1/EncryptionSpec) has one
/// field, `kmsKeyName`: "Required. The Cloud KMS resource identifier of the customer managed
/// encryption key used to protect a resource. Has the form:
/// `projects/my-project/locations/my-region/keyRings/my-kr/cryptoKeys/my-key`. The key needs
/// to be in the same region as where the compute resource is created." Here the resource is
/// the copy, in `parent`'s location.
pub(crate) fn encryption_refusal(parent: &str, spec: Option<&Value>) -> Option<String> {
    let spec = spec?;
    let Some(fields) = spec.as_object() else {
        return Some(format!("Invalid value for encryption_spec: {spec}."));
    };
    if let Some(unknown) = fields.keys().find(|k| *k != "kmsKeyName") {
        return Some(format!(
            "Invalid JSON payload received. Unknown name {unknown:?} at 'encryption_spec'."
        ));
    }
    let key = fields
        .get("kmsKeyName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let parts: Vec<&str> = key.split('/').collect();
    let location = match parts.as_slice() {
        [
            "projects",
            p,
            "locations",
            l,
            "keyRings",
            r,
            "cryptoKeys",
            k,
        ] if ![p, l, r, k].iter().any(|s| s.is_empty()) => *l,
        _ => {
            return Some(format!(
                "Invalid encryption_spec.kms_key_name {key:?}: expected projects/*/locations/*/keyRings/*/cryptoKeys/*."
            ));
        }
    };
    let region = parent.split('/').nth(3).unwrap_or_default();
    (location != region).then(|| {
        format!("The key {key} is in {location}, but the model is created in {region}: the key needs to be in the same region as the resource.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encryption_spec_needs_a_key_in_the_copy_s_region() {
        let parent = "projects/222/locations/europe-west4";
        let key = |k: &str| json!({ "kmsKeyName": k });
        let ok = key("projects/k/locations/europe-west4/keyRings/r/cryptoKeys/c");
        assert_eq!(encryption_refusal(parent, None), None);
        assert_eq!(encryption_refusal(parent, Some(&ok)), None);
        for bad in [
            key("projects/k/locations/us-central1/keyRings/r/cryptoKeys/c"),
            key("projects/k/locations/europe-west4/keyRings/r"),
            json!({"kmsKeyName": "projects/k/locations/europe-west4/keyRings/r/cryptoKeys/c", "x": 1}),
            json!("projects/k/locations/europe-west4/keyRings/r/cryptoKeys/c"),
        ] {
            assert!(encryption_refusal(parent, Some(&bad)).is_some(), "{bad}");
        }
    }

    #[test]
    fn only_a_third_party_image_across_projects_fails() {
        let spec = |uri: &str| Some(json!({ "imageUri": uri }));
        let src = "projects/111/locations/us-central1/models/7";
        let third = spec("europe-docker.pkg.dev/acme/serving/m:1");
        let prebuilt = spec("us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest");
        assert!(
            cross_project_refusal(src, "projects/222/locations/europe-west4", &third).is_some()
        );
        assert!(
            cross_project_refusal(src, "projects/111/locations/europe-west4", &third).is_none()
        );
        assert!(
            cross_project_refusal(src, "projects/222/locations/europe-west4", &prebuilt).is_none()
        );
        assert!(cross_project_refusal(src, "projects/222/locations/europe-west4", &None).is_none());
        let legacy = spec("gcr.io/cloud-aiplatform/prediction/tf2-cpu.2-8:latest");
        assert!(cross_project_refusal(src, "projects/222/locations/l", &legacy).is_none());
    }
}
