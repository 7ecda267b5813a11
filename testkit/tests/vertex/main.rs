//! Proves that the Vertex AI fake behaves like the service for the official
//! `google-cloud-aiplatform-v1` client, by driving it with that client only.
//!
//! # Layout
//! - `model_service`: the wire format of each method, scripted faults and outages.
//! - `names`: project numbers in every returned name, either spelling accepted, version aliases.
//! - `quotas`: per-(project, location) request quotas and their 429 body.

mod model_service;
mod names;
mod quotas;
mod specs;

use google_cloud_aiplatform_v1::client::ModelService;
use google_cloud_gax::error::rpc::Code;
use google_cloud_longrunning::model::{Operation, operation};
use std::time::{Duration, Instant};
use testkit::pubsub::anonymous;
use testkit::{CopyScript, VertexFake};

const PARENT: &str = "projects/dst/locations/europe-west4";
const SOURCE: &str = "projects/src/locations/us-central1/models/123";

/// A fake with [`SOURCE`] (version 1) and an official client pointed at it.
async fn start() -> (VertexFake, ModelService) {
    let fake = VertexFake::start().await.expect("start fake");
    fake.add_model(SOURCE);
    let client = ModelService::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(anonymous())
        .build()
        .await
        .expect("build client");
    (fake, client)
}

/// [`start`], with copies of [`SOURCE`] scripted.
async fn start_with(script: CopyScript) -> (VertexFake, ModelService) {
    let (fake, client) = start().await;
    fake.script(SOURCE, script);
    (fake, client)
}

/// Copies that run for `duration`, then succeed.
fn lasting(duration: Duration) -> CopyScript {
    CopyScript {
        duration,
        ..CopyScript::default()
    }
}

/// A destination model name under [`PARENT`], spelled with the project id.
fn dst(id: &str) -> String {
    format!("{PARENT}/models/{id}")
}

/// A copy of [`SOURCE`] to [`PARENT`] with model id `id`.
async fn copy(client: &ModelService, id: &str) -> google_cloud_gax::Result<Operation> {
    copy_from(client, PARENT, SOURCE, id).await
}

async fn copy_from(
    client: &ModelService,
    parent: &str,
    source: &str,
    id: &str,
) -> google_cloud_gax::Result<Operation> {
    let request = client
        .copy_model()
        .set_parent(parent)
        .set_source_model(source);
    request.set_model_id(id).send().await
}

async fn wait_done(client: &ModelService, name: &str) -> Operation {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let op = client
            .get_operation()
            .set_name(name)
            .send()
            .await
            .expect("get op");
        if op.done {
            return op;
        }
        assert!(Instant::now() < deadline, "operation {name} never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CopyModelResponse of a finished operation.
fn copy_response(op: Operation) -> google_cloud_aiplatform_v1::model::CopyModelResponse {
    let Some(operation::Result::Response(any)) = op.result else {
        panic!("expected a response: {op:?}");
    };
    any.to_msg().expect("CopyModelResponse")
}

fn code(e: &google_cloud_gax::error::Error) -> Option<Code> {
    e.status().map(|s| s.code)
}
