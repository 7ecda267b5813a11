//! `containerSpec` and `encryptionSpec` as the official client reads them, and what a copy
//! keeps of them (cloud.google.com/vertex-ai/docs/model-registry/copy-model, "Limitations").

use crate::{PARENT, SOURCE, copy, copy_from, dst, start, wait_done};
use google_cloud_longrunning::model::operation;
use testkit::ModelSpecs;

const KEY: &str = "projects/src/locations/us-central1/keyRings/r/cryptoKeys/k";
const THIRD_PARTY: &str = "europe-docker.pkg.dev/acme/serving/model:v1";

#[tokio::test]
async fn a_source_reads_back_with_its_container_and_key_and_a_copy_keeps_only_the_container() {
    let (fake, client) = start().await;
    fake.set_specs(
        SOURCE,
        ModelSpecs {
            container_image_uri: Some(
                "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest".into(),
            ),
            kms_key_name: Some(KEY.into()),
        },
    );
    let m = client.get_model().set_name(SOURCE).send().await.unwrap();
    let image = m.container_spec.as_ref().map(|c| c.image_uri.as_str());
    assert_eq!(
        image,
        Some("us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest")
    );
    assert_eq!(
        m.encryption_spec.map(|e| e.kms_key_name).as_deref(),
        Some(KEY)
    );

    let op = copy(&client, "kept").await.unwrap();
    assert!(wait_done(&client, &op.name).await.result.is_some());
    let c = client
        .get_model()
        .set_name(dst("kept"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.container_spec.map(|s| s.image_uri),
        Some(image.unwrap().to_owned())
    );
    assert!(
        c.encryption_spec.is_none(),
        "a copy keeps no encryption spec"
    );
}

#[tokio::test]
async fn a_third_party_image_copies_within_its_project_but_fails_across_projects() {
    let (fake, client) = start().await;
    fake.set_specs(
        SOURCE,
        ModelSpecs {
            container_image_uri: Some(THIRD_PARTY.into()),
            kms_key_name: None,
        },
    );
    // PARENT is another project: the call is accepted, and the operation fails.
    let op = copy(&client, "across").await.unwrap();
    let done = wait_done(&client, &op.name).await;
    let Some(operation::Result::Error(status)) = done.result else {
        panic!("expected an error: {done:?}");
    };
    assert_eq!(status.code, 9, "FAILED_PRECONDITION");
    assert!(
        status.message.contains("third-party container image"),
        "{}",
        status.message
    );
    assert!(!PARENT.starts_with("projects/src/"));

    let same_project = "projects/src/locations/europe-west4";
    let op = copy_from(&client, same_project, SOURCE, "within")
        .await
        .unwrap();
    let done = wait_done(&client, &op.name).await;
    assert!(
        matches!(done.result, Some(operation::Result::Response(_))),
        "{done:?}"
    );
}
