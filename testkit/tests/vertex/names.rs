//! Vertex AI names every resource it returns with the project number, accepts the id or the
//! number in every request, and resolves version aliases to the version they point to.

use crate::{PARENT, SOURCE, code, copy, copy_from, copy_response, dst, start, wait_done};
use google_cloud_gax::error::rpc::Code;
use testkit::VertexFake;
use testkit::vertex::{numbered, project_number};

#[tokio::test]
async fn every_returned_name_uses_the_project_number() {
    let (fake, client) = start().await;
    let (dst_number, src_number) = (project_number("dst"), project_number("src"));
    assert_eq!(dst_number.len(), 12, "{dst_number}");
    assert_ne!(dst_number, src_number);

    let op = copy(&client, "target").await.expect("copy");
    let op_prefix = format!("projects/{dst_number}/locations/europe-west4/operations/");
    assert!(op.name.starts_with(&op_prefix), "{}", op.name);
    let target = format!("projects/{dst_number}/locations/europe-west4/models/target");
    let response = copy_response(wait_done(&client, &op.name).await);
    assert_eq!(response.model, target);

    let model = client.get_model().set_name(dst("target")).send().await;
    let model = model.expect("get by id");
    assert_eq!(model.name, target);
    let original = model.original_model_info.expect("originalModelInfo").model;
    assert_eq!(
        original,
        format!("projects/{src_number}/locations/us-central1/models/123@1")
    );
    let list = client.list_model_versions().set_name(dst("target")).send();
    let names: Vec<String> = list
        .await
        .expect("list")
        .models
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, std::slice::from_ref(&target));

    assert_eq!(fake.operations(), std::slice::from_ref(&op.name));
    assert_eq!(fake.model(&dst("target")).expect("model")["name"], target);
    let map = fake.project_numbers();
    assert_eq!(map.get("dst"), Some(&dst_number));
    assert_eq!(map.get("src"), Some(&src_number));
    assert_eq!(VertexFake::project_number("dst"), dst_number);
}

#[tokio::test]
async fn either_spelling_of_a_project_names_the_same_resources() {
    let (fake, client) = start().await;
    let by_number = copy_from(&client, &numbered(PARENT), SOURCE, "same").await;
    let op = by_number.expect("copy with the parent as a number");
    let again = copy_from(&client, PARENT, &numbered(SOURCE), "same").await;
    let again = again.expect_err("the same model id, spelled with the project id");
    assert_eq!(code(&again), Some(Code::AlreadyExists));

    let by_id = op.name.replace(&project_number("dst"), "dst");
    assert_ne!(by_id, op.name);
    let polled = client.get_operation().set_name(&by_id).send().await;
    assert_eq!(polled.expect("operation by id").name, op.name);
    wait_done(&client, &op.name).await;

    let as_id = client.get_model().set_name(dst("same")).send().await;
    let as_number = client.get_model().set_name(numbered(&dst("same"))).send();
    assert_eq!(as_id.expect("by id"), as_number.await.expect("by number"));

    // parent_model spelled with the id, parent with the number.
    let request = client
        .copy_model()
        .set_parent(numbered(PARENT))
        .set_source_model(SOURCE);
    let op = request.set_parent_model(dst("same")).send().await;
    let response = copy_response(wait_done(&client, &op.expect("copy as version").name).await);
    assert_eq!(
        (response.model, response.model_version_id.as_str()),
        (numbered(&dst("same")), "2")
    );

    // Seeding by number is found by id, and the other way round.
    let seeded = "projects/other/locations/asia-east1/models/9";
    fake.add_model(&numbered(seeded));
    assert!(fake.model_exists(seeded));
    client
        .get_model()
        .set_name(seeded)
        .send()
        .await
        .expect("seeded by number, read by id");
}

#[tokio::test]
async fn version_aliases_resolve_to_the_concrete_version() {
    let (fake, client) = start().await;
    assert_eq!(fake.add_version(SOURCE, &["golden"]), "2");
    let get = |name: String| client.get_model().set_name(name).send();

    let default = get(format!("{SOURCE}@default")).await.expect("@default");
    assert_eq!(default.version_id, "1");
    assert_eq!(default.version_aliases, ["default"]);
    let golden = get(format!("{SOURCE}@golden")).await.expect("@golden");
    assert_eq!(golden.version_id, "2");
    assert_eq!(golden.version_aliases, ["golden"]);
    assert_eq!(
        golden.name,
        numbered(SOURCE),
        "Model.name carries no version"
    );
    let missing = get(format!("{SOURCE}@silver"))
        .await
        .expect_err("unknown alias");
    assert_eq!(code(&missing), Some(Code::NotFound));

    // Vertex records the version it copied, not the alias the request named.
    let cases = [
        ("@default", "from-default", "1"),
        ("@golden", "from-golden", "2"),
        ("", "from-bare", "1"),
    ];
    for (alias, id, want) in cases {
        let op = copy_from(&client, PARENT, &format!("{SOURCE}{alias}"), id).await;
        wait_done(&client, &op.expect("copy").name).await;
        let copied = get(dst(id)).await.expect("copy exists");
        let original = copied.original_model_info.expect("info").model;
        assert_eq!(original, numbered(&format!("{SOURCE}@{want}")), "{alias}");
    }

    // Moving `default` changes what a bare name means.
    assert_eq!(fake.add_version(SOURCE, &["default"]), "3");
    assert_eq!(get(SOURCE.to_string()).await.expect("bare").version_id, "3");
    let silver = copy_from(&client, PARENT, &format!("{SOURCE}@silver"), "x").await;
    assert_eq!(
        code(&silver.expect_err("unknown alias")),
        Some(Code::NotFound)
    );
}
