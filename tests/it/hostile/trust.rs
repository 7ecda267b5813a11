//! `PUSH_AUTH=cloud-run` verifies its own trust anchor (issue 28, item 6). The finding: the mode
//! trusts Cloud Run's invoker check, which the worker never read. With the check off ("Allow
//! public access", `--no-invoker-iam-check`) or `roles/run.invoker` granted to `allUsers`,
//! anyone who reaches the service can send a hand-made `…SIGNATURE_REMOVED_BY_GOOGLE` token
//! naming the push account, and it was accepted.
//!
//! Each test deploys the worker behind testkit's Cloud Run front, reading its own service from
//! testkit's Cloud Run Admin fake, and pushes as Pub/Sub does: the front verifies the token and
//! forwards it with the signature removed. Only the first case may accept it.

use copy_worker::app::WorkerService;
use serde_json::json;
use testkit::cloud_run::SIGNATURE_REMOVED;
use testkit::oidc::DEFAULT_EMAIL;
use testkit::{RunAdminFake, RunService};

use crate::auth::envelope;
use crate::helpers::{Knobs, TestApp, request, spawn_app};

const SERVICE: &str = "projects/it-project/locations/us-central1/services/copy-worker";

fn invoker(members: &[&str]) -> (String, Vec<String>) {
    (
        "roles/run.invoker".into(),
        members.iter().map(|m| m.to_string()).collect(),
    )
}

/// A worker behind the front whose service the fake describes (or refuses to, with `deny`).
async fn deployed(name: &str, service: RunService, deny: bool) -> (TestApp, RunAdminFake) {
    let admin = RunAdminFake::start().await.expect("cloud run admin fake");
    admin.put(SERVICE, service);
    admin.deny(deny);
    let knobs = Knobs {
        worker_service: Some(WorkerService {
            name: SERVICE.into(),
            endpoint: Some(admin.endpoint()),
        }),
        ..Knobs::cloud_run()
    };
    (spawn_app(name, knobs).await, admin)
}

/// A push of request `id` through the front with the token Pub/Sub attaches; the status and
/// body the worker answered.
async fn push(app: &TestApp, id: &str) -> (u16, String) {
    let cr = app.cloud_run.as_ref().unwrap();
    let token = cr.issuer.mint(json!({"aud": cr.front.url()}));
    let resp = reqwest::Client::new()
        .post(format!("{}/pubsub/copy-requests", cr.front.url()))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(envelope(request(id, &format!("target-{id}")).as_bytes()))
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

fn push_account() -> String {
    format!("serviceAccount:{DEFAULT_EMAIL}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_invoker_check_on_and_not_public_a_stripped_push_is_accepted() {
    let service = RunService {
        invoker_iam_disabled: false,
        bindings: vec![
            invoker(&[&push_account()]),
            ("roles/run.viewer".into(), vec!["allUsers".into()]),
        ],
    };
    let (app, admin) = deployed("trust-on", service, false).await;
    let (status, body) = push(&app, "trust-on").await;
    assert_eq!(status, 204, "{body}");
    // The copy starts through the copy-start queue, whose tasks pass the same check.
    let ev = app.completion_of("trust-on", 1, 60).await;
    assert_eq!(ev[0].attribute("status"), Some("succeeded"));
    assert_eq!(app.vertex_calls("models:copy"), 1);
    let calls = admin.calls();
    assert!(
        calls.contains(&("GET".into(), format!("/v2/{SERVICE}"))),
        "{calls:?}"
    );
    assert!(
        calls.contains(&("GET".into(), format!("/v2/{SERVICE}:getIamPolicy"))),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_invoker_check_off_a_stripped_push_is_refused_naming_it() {
    let service = RunService {
        invoker_iam_disabled: true,
        bindings: vec![invoker(&[&push_account()])],
    };
    let (app, _admin) = deployed("trust-off", service, false).await;
    let (status, body) = push(&app, "trust-off").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invokerIamDisabled"), "{body}");
    assert!(app.vertex.calls().is_empty());

    // A token that keeps its signature does not lean on the check: verified in full, it
    // passes even now (sent straight to the worker, as nothing forwards it unstripped).
    let cr = app.cloud_run.as_ref().unwrap();
    let signed = cr.issuer.mint(json!({"aud": cr.front.url()}));
    assert!(!signed.ends_with(SIGNATURE_REMOVED));
    let resp = reqwest::Client::new()
        .post(format!("{}/pubsub/copy-requests", app.base_url))
        .header("authorization", format!("Bearer {signed}"))
        .body(envelope(request("trust-off-2", "target-2").as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_run_invoker_granted_to_all_users_a_stripped_push_is_refused_naming_it() {
    let service = RunService {
        invoker_iam_disabled: false,
        bindings: vec![invoker(&[&push_account(), "allUsers"])],
    };
    let (app, _admin) = deployed("trust-public", service, false).await;
    let (status, body) = push(&app, "trust-public").await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("allUsers") && body.contains("roles/run.invoker"),
        "{body}"
    );
    assert!(app.vertex.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_service_cannot_be_read_a_stripped_push_is_refused_naming_the_permission() {
    let (app, admin) = deployed("trust-unread", RunService::default(), true).await;
    let (status, body) = push(&app, "trust-unread").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("run.services.get"), "{body}");
    assert!(app.vertex.calls().is_empty());
    assert!(!admin.calls().is_empty(), "the worker tried to read it");
}
