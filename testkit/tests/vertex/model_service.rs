//! The wire format of each ModelService method, scripted faults and outages.

use crate::{
    PARENT, SOURCE, code, copy, copy_response, dst, lasting, start, start_with, wait_done,
};
use google_cloud_aiplatform_v1::model::CopyModelOperationMetadata;
use google_cloud_gax::error::rpc::Code;
use google_cloud_longrunning::model::operation;
use std::time::{Duration, Instant};
use testkit::vertex::numbered;
use testkit::{CopyScript, Fault};

#[tokio::test]
async fn copy_returns_a_running_operation_under_the_destination_parent() {
    let (fake, client) = start_with(lasting(Duration::from_secs(60))).await;
    let op = copy(&client, "target").await.expect("copy");
    assert!(
        op.name
            .starts_with(&format!("{}/operations/", numbered(PARENT))),
        "{}",
        op.name
    );
    assert!(!op.done);
    let metadata = op.metadata.expect("metadata");
    let metadata: CopyModelOperationMetadata = metadata.to_msg().expect("metadata type");
    assert!(
        metadata
            .generic_metadata
            .and_then(|g| g.create_time)
            .is_some()
    );
    assert_eq!(fake.copies_started(), 1);
    let call = fake.calls().pop().expect("one call");
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, format!("/v1/{PARENT}/models:copy"));
    let body = call.body.expect("body");
    assert_eq!(body["sourceModel"], SOURCE);
    assert_eq!(body["modelId"], "target");
}

#[tokio::test]
async fn finished_operation_carries_a_copy_model_response() {
    let (fake, client) = start_with(lasting(Duration::from_millis(300))).await;
    let op = copy(&client, "target").await.expect("copy");
    let response = copy_response(wait_done(&client, &op.name).await);
    assert_eq!(response.model, numbered(&dst("target")));
    assert_eq!(response.model_version_id, "1");
    // The client polls through the `/ui/` binding.
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.path == format!("/ui/{}", op.name))
    );
}

#[tokio::test]
async fn destination_is_not_found_until_the_operation_succeeds() {
    let (fake, client) = start_with(lasting(Duration::from_millis(400))).await;
    let op = copy(&client, "target").await.expect("copy");
    let early = client.get_model().set_name(dst("target")).send().await;
    assert_eq!(
        code(&early.expect_err("not yet readable")),
        Some(Code::NotFound)
    );
    assert!(!fake.model_exists(&dst("target")));
    wait_done(&client, &op.name).await;
    assert!(fake.model_exists(&dst("target")));
    assert!(fake.model_exists(&format!("{}@1", dst("target"))));
}

#[tokio::test]
async fn copied_model_records_the_original_model_with_its_version() {
    let (_fake, client) = start().await;
    let op = copy(&client, "plain").await.expect("copy");
    wait_done(&client, &op.name).await;
    let model = client
        .get_model()
        .set_name(dst("plain"))
        .send()
        .await
        .expect("get");
    assert_eq!(model.name, numbered(&dst("plain")));
    assert_eq!(model.version_id, "1");
    let original = model.original_model_info.expect("originalModelInfo").model;
    assert_eq!(original, numbered(&format!("{SOURCE}@1")));

    let versioned = client
        .copy_model()
        .set_parent(PARENT)
        .set_source_model(format!("{SOURCE}@1"));
    let op = versioned
        .set_model_id("pinned")
        .send()
        .await
        .expect("copy @1");
    wait_done(&client, &op.name).await;
    let model = client
        .get_model()
        .set_name(format!("{}@1", dst("pinned")))
        .send()
        .await;
    let model = model.expect("get with @version");
    assert_eq!(
        model.original_model_info.expect("info").model,
        numbered(&format!("{SOURCE}@1"))
    );
}

#[tokio::test]
async fn model_names_with_a_version_reach_the_fake_unencoded() {
    let (fake, client) = start().await;
    client
        .get_model()
        .set_name(format!("{SOURCE}@1"))
        .send()
        .await
        .expect("get @1");
    let call = fake.calls().pop().expect("call");
    // The Rust client does not percent-encode `@` in paths; the fake would decode `%40` anyway.
    assert_eq!(call.raw_path, format!("/v1/{SOURCE}@1"));
    assert!(
        call.query.contains("$alt=json;enum-encoding=int"),
        "{}",
        call.query
    );
}

#[tokio::test]
async fn duplicate_model_id_is_already_exists_while_running_and_after() {
    let (fake, client) = start_with(lasting(Duration::from_millis(300))).await;
    let op = copy(&client, "target").await.expect("first copy");
    let running = copy(&client, "target")
        .await
        .expect_err("duplicate while running");
    assert_eq!(code(&running), Some(Code::AlreadyExists));
    assert_eq!(running.http_status_code(), Some(409));
    wait_done(&client, &op.name).await;
    let after = copy(&client, "target").await.expect_err("duplicate after");
    assert_eq!(code(&after), Some(Code::AlreadyExists));
    assert_eq!(fake.copies_started(), 1);
}

#[tokio::test]
async fn missing_source_or_parent_model_is_not_found() {
    let (_fake, client) = start().await;
    let missing = format!("{SOURCE}999");
    let request = client
        .copy_model()
        .set_parent(PARENT)
        .set_source_model(&missing);
    let err = request
        .set_model_id("x")
        .send()
        .await
        .expect_err("missing source");
    assert_eq!(code(&err), Some(Code::NotFound));
    let request = client
        .copy_model()
        .set_parent(PARENT)
        .set_source_model(format!("{SOURCE}@9"));
    let err = request
        .set_model_id("x")
        .send()
        .await
        .expect_err("missing version");
    assert_eq!(code(&err), Some(Code::NotFound));
    let request = client
        .copy_model()
        .set_parent(PARENT)
        .set_source_model(SOURCE);
    let err = request
        .set_parent_model(dst("nope"))
        .send()
        .await
        .expect_err("missing parent");
    assert_eq!(code(&err), Some(Code::NotFound));
}

#[tokio::test]
async fn list_models_pages_one_location_of_one_project_in_either_spelling() {
    let (fake, client) = start().await;
    fake.add_model(&dst("a"));
    fake.add_model(&dst("b"));
    fake.add_model("projects/dst/locations/us-central1/models/elsewhere");
    let page = client
        .list_models()
        .set_parent(PARENT)
        .set_page_size(1)
        .send()
        .await
        .expect("first page");
    assert_eq!(page.models.len(), 1);
    assert_eq!(page.models[0].name, numbered(&dst("a")));
    assert_eq!(page.next_page_token, "1");
    let rest = client
        .list_models()
        .set_parent(numbered(PARENT))
        .set_page_token(page.next_page_token)
        .send()
        .await
        .expect("second page, project by number");
    let names: Vec<&str> = rest.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, [numbered(&dst("b"))]);
    assert!(rest.next_page_token.is_empty());
    let none = client
        .list_models()
        .set_parent("projects/empty/locations/europe-west4")
        .send()
        .await
        .expect("an empty location lists nothing, without error");
    assert!(none.models.is_empty());
}

#[tokio::test]
async fn parent_model_copies_add_versions_that_list_model_versions_shows() {
    let (fake, client) = start().await;
    fake.add_model(&dst("base"));
    let request = client
        .copy_model()
        .set_parent(PARENT)
        .set_source_model(SOURCE);
    let op = request
        .set_parent_model(dst("base"))
        .send()
        .await
        .expect("copy as version");
    let response = copy_response(wait_done(&client, &op.name).await);
    assert_eq!(
        (response.model.as_str(), response.model_version_id.as_str()),
        (numbered(&dst("base")).as_str(), "2")
    );

    let list = client
        .list_model_versions()
        .set_name(dst("base"))
        .send()
        .await
        .expect("list");
    let versions: Vec<&str> = list.models.iter().map(|m| m.version_id.as_str()).collect();
    assert_eq!(versions, ["1", "2"]);
    assert!(list.models[0].original_model_info.is_none());
    let original = list.models[1].original_model_info.as_ref().expect("info");
    assert_eq!(original.model, numbered(&format!("{SOURCE}@1")));

    let page = client
        .list_model_versions()
        .set_name(dst("base"))
        .set_page_size(1)
        .send()
        .await;
    let page = page.expect("first page");
    assert_eq!((page.models.len(), page.next_page_token.as_str()), (1, "1"));
}

#[tokio::test]
async fn scripted_503_on_copy_surfaces_as_unavailable_then_copies_work() {
    let faults = vec![Fault::Http(503, "UNAVAILABLE")];
    let (fake, client) = start_with(CopyScript {
        copy_faults: faults,
        ..Default::default()
    })
    .await;
    let err = copy(&client, "target").await.expect_err("scripted 503");
    assert_eq!(code(&err), Some(Code::Unavailable));
    assert_eq!(fake.copies_started(), 0);
    copy(&client, "target")
        .await
        .expect("second copy is normal");
    assert_eq!(fake.copies_started(), 1);
}

#[tokio::test]
async fn failed_operation_reports_an_rpc_status_and_frees_the_model_id() {
    let errors = vec![(13, "internal error".to_string())];
    let (fake, client) = start_with(CopyScript {
        operation_errors: errors,
        ..Default::default()
    })
    .await;
    let op = copy(&client, "target").await.expect("copy");
    let Some(operation::Result::Error(status)) = wait_done(&client, &op.name).await.result else {
        panic!("expected an error");
    };
    assert_eq!(
        (status.code, status.message.as_str()),
        (13, "internal error")
    );
    assert!(!fake.model_exists(&dst("target")));
    let retry = copy(&client, "target").await.expect("id is free again");
    wait_done(&client, &retry.name).await;
    assert!(fake.model_exists(&dst("target")));
}

#[tokio::test]
async fn reset_connection_surfaces_as_an_io_error() {
    let faults = vec![Fault::ResetConnection];
    let (fake, client) = start_with(CopyScript {
        copy_faults: faults,
        ..Default::default()
    })
    .await;
    let err = copy(&client, "target").await.expect_err("reset");
    assert!(err.is_io() && err.status().is_none(), "{err:?}");
    assert_eq!(fake.calls().pop().map(|c| c.status), Some(0));
    copy(&client, "target").await.expect("next copy is normal");
}

#[tokio::test]
async fn get_operation_faults_are_retried_by_the_client_and_delays_slow_it() {
    let faults = vec![
        Fault::Http(503, "UNAVAILABLE"),
        Fault::Delay(Duration::from_millis(300)),
    ];
    let (fake, client) = start_with(CopyScript {
        get_operation_faults: faults,
        ..Default::default()
    })
    .await;
    let op = copy(&client, "target").await.expect("copy");
    let started = Instant::now();
    let got = client
        .get_operation()
        .set_name(&op.name)
        .send()
        .await
        .expect("retried get");
    assert!(got.done);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let statuses: Vec<u16> = fake.calls().iter().skip(1).map(|c| c.status).collect();
    assert_eq!(statuses, [503, 200]);
}

#[tokio::test]
async fn outage_answers_every_request_until_it_ends() {
    let (fake, client) = start().await;
    fake.set_outage(
        Instant::now() + Duration::from_millis(300),
        503,
        "UNAVAILABLE",
    );
    let err = copy(&client, "target").await.expect_err("outage");
    assert_eq!(code(&err), Some(Code::Unavailable));
    tokio::time::sleep(Duration::from_millis(350)).await;
    copy(&client, "target").await.expect("after the outage");
}

#[tokio::test]
async fn unknown_paths_answer_a_google_rpc_not_found_naming_the_path() {
    let (_fake, client) = start().await;
    // DeleteModel is a method the fake does not model.
    let err = client
        .delete_model()
        .set_name(dst("gone"))
        .send()
        .await
        .expect_err("unsupported");
    assert_eq!(code(&err), Some(Code::NotFound));
    let message = &err.status().expect("status").message;
    assert!(
        message.contains(&format!("/v1/{}", dst("gone"))),
        "{message}"
    );
}
