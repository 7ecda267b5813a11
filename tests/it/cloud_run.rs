//! Push and direct-caller authentication behind Cloud Run (`PUSH_AUTH=cloud-run`,
//! docs/auth.md): a `testkit` Cloud Run front verifies each token as Cloud Run's IAM invoker
//! check does and forwards it with the signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`.
//! The first test is the production failure that `PUSH_AUTH=oidc` has there.

use serde_json::{Value, json};
use testkit::cloud_run::SIGNATURE_REMOVED;
use testkit::oidc::DEFAULT_EMAIL;

use crate::auth::envelope;
use crate::helpers::{INVOKER, Knobs, TestApp, request, spawn_app};

/// POSTs to `url` + `path` with these headers; returns the status and body.
async fn post(url: &str, path: &str, headers: &[(&str, String)], body: String) -> (u16, String) {
    let mut rq = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        rq = rq.header(*k, v);
    }
    let resp = rq.send().await.expect("answers");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// `token` as Cloud Run forwards it: its signature replaced.
fn stripped(token: &str) -> String {
    let (signed, _) = token.rsplit_once('.').expect("three parts");
    format!("{signed}.{SIGNATURE_REMOVED}")
}

fn push_body(id: &str) -> String {
    envelope(request(id, &format!("target-{id}")).as_bytes())
}

async fn behind_cloud_run(name: &str, extra: &[&str]) -> TestApp {
    let knobs = Knobs {
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..Knobs::cloud_run()
    };
    spawn_app(name, knobs).await
}

/// A push of request `id` through the front, with the token Pub/Sub would attach; returns
/// the token, the status and the body.
async fn push_as_pubsub(app: &TestApp, id: &str) -> (String, u16, String) {
    let cr = app.cloud_run.as_ref().unwrap();
    let token = cr.issuer.mint(json!({"aud": cr.front.url()}));
    let (status, body) = post(
        &cr.front.url(),
        "/pubsub/copy-requests",
        &[("authorization", bearer(&token))],
        push_body(id),
    )
    .await;
    (token, status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_push_auth_oidc_behind_cloud_run_every_push_is_refused_and_the_answer_names_the_mode()
{
    let app = behind_cloud_run("cr-oidc", &["--push-auth", "oidc"]).await;
    let (_, status, body) = push_as_pubsub(&app, "cr-oidc").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("PUSH_AUTH=cloud-run"), "{body}");
    assert!(app.vertex.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_cloud_run_a_push_arrives_without_its_signature_and_starts_the_copy() {
    let app = behind_cloud_run("cr-push", &[]).await;
    let (token, status, body) = push_as_pubsub(&app, "cr-push").await;
    assert_eq!(status, 204, "{body}");
    let events = app.completion_of("cr-push", 1, 60).await;
    assert_eq!(events[0].attribute("status"), Some("succeeded"));
    // The push's token, then the queues' tasks (start, polls) with the tasks account's: every
    // one reached the worker with its signature removed.
    let front = &app.cloud_run.as_ref().unwrap().front;
    let forwarded = front.forwarded_tokens();
    assert_eq!(forwarded[0], stripped(&token));
    assert!(
        forwarded.len() >= 3,
        "the push, a start and a poll: {forwarded:?}"
    );
    assert!(forwarded.iter().all(|t| t.ends_with(SIGNATURE_REMOVED)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claims_of_a_signature_removed_token_are_checked_as_a_signed_tokens_are() {
    let app = behind_cloud_run("cr-claims", &[]).await;
    let cr = app.cloud_run.as_ref().unwrap();
    let aud = cr.front.url();
    let now = chrono::Utc::now().timestamp();
    let forged = |overrides: Value| {
        let mut o = json!({"aud": aud});
        o.as_object_mut()
            .unwrap()
            .extend(overrides.as_object().unwrap().clone());
        bearer(&stripped(&cr.issuer.mint(o)))
    };
    let none_alg = {
        let t = cr.issuer.mint_alg_none();
        bearer(&format!("{}{SIGNATURE_REMOVED}", t))
    };
    let cases = [
        (
            "foreign audience",
            forged(json!({"aud": "https://other.run.app"})),
            401,
        ),
        ("expired", forged(json!({"exp": now - 3600})), 401),
        (
            "not Google's issuer",
            forged(json!({"iss": "https://evil.example"})),
            401,
        ),
        (
            "email not verified",
            forged(json!({"email_verified": false})),
            401,
        ),
        ("no email", forged(json!({"email": null})), 401),
        ("alg none", none_alg, 401),
        ("not a push account", forged(json!({"email": INVOKER})), 403),
    ];
    for (what, token, want) in cases {
        // Straight to the container: what an attacker past the front could send.
        let (status, body) = post(
            &app.base_url,
            "/pubsub/copy-requests",
            &[("authorization", token)],
            push_body("cr-claims"),
        )
        .await;
        assert_eq!(status, want, "{what}: {body}");
    }
    assert!(app.vertex.calls().is_empty(), "{:?}", app.vertex.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_keeps_its_signature_is_verified_in_full() {
    let app = behind_cloud_run("cr-signed", &[]).await;
    let cr = app.cloud_run.as_ref().unwrap();
    let (status, body) = post(
        &app.base_url,
        "/pubsub/copy-requests",
        &[("authorization", bearer(&cr.issuer.mint_bad_signature()))],
        push_body("cr-signed"),
    )
    .await;
    assert_eq!(status, 401, "a bad signature is not trusted: {body}");
    let signed = cr.issuer.mint(json!({"aud": cr.front.url()}));
    let (status, body) = post(
        &app.base_url,
        "/pubsub/copy-requests",
        &[("authorization", bearer(&signed))],
        push_body("cr-signed"),
    )
    .await;
    assert_eq!(status, 204, "a valid signed token: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_cloud_run_checked_counts_not_a_forged_authorization_beside_it() {
    let app = behind_cloud_run("cr-xsa", &[]).await;
    let cr = app.cloud_run.as_ref().unwrap();
    let url = cr.front.url();
    // An invoker (not a push account) puts its real token where Cloud Run checks first, and
    // a forged, signature-removed push-account token in Authorization, which Cloud Run
    // forwards untouched.
    let checked = cr.issuer.mint(json!({"aud": url, "email": INVOKER}));
    let forged = stripped(&cr.issuer.mint(json!({"aud": url, "email": DEFAULT_EMAIL})));
    let (status, body) = post(
        &url,
        "/pubsub/copy-requests",
        &[
            ("x-serverless-authorization", bearer(&checked)),
            ("authorization", bearer(&forged)),
        ],
        push_body("cr-xsa"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains(INVOKER), "{body}");
    assert!(app.vertex.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ec2_caller_behind_cloud_run_enqueues_with_the_endpoint_url_as_audience() {
    let app = behind_cloud_run("cr-ec2", &[]).await;
    let cr = app.cloud_run.as_ref().unwrap();
    let url = cr.front.url();
    let seed = "/v1/models/copy?source_model_id=1001&destination_model_id=cr-ec2";
    let token = cr.issuer.mint(json!({
        "aud": format!("{url}/v1/models/copy"), "email": INVOKER,
    }));
    let (status, body) = post(
        &url,
        seed,
        &[("authorization", bearer(&token))],
        String::new(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "accepted");
    // The push account may push but not call the direct route.
    let push = cr.issuer.mint(json!({"aud": url}));
    let (status, body) = post(
        &url,
        seed,
        &[("authorization", bearer(&push))],
        String::new(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
}
