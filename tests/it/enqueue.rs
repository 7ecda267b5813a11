//! `POST /v1/models/copy` and webhook callbacks (DESIGN.md §7).

use std::time::Duration;

use axum::http::StatusCode;

use crate::helpers::{Knobs, SRC, TestApp, spawn_app};
use crate::receiver::{Receiver, SECRET};

pub fn callback_knobs() -> Knobs {
    Knobs {
        extra_args: vec![
            "--callback-allow-http-loopback".into(),
            "--callback-signing-secret".into(),
            SECRET.into(),
            "--callback-allowed-hosts".into(),
            "hooks.example.com".into(),
        ],
        ..Knobs::default()
    }
}

async fn post(app: &TestApp, query: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/models/copy{query}", app.base_url))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_query_parameters_are_enqueued_with_202_and_the_copy_completes() {
    let app = spawn_app("enq-q", Knobs::default()).await;
    let (status, body) = post(
        &app,
        "?source_model_id=1001&destination_model_id=from-seed",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "accepted");
    let id = body["request_id"].as_str().unwrap().to_owned();
    assert!(!body["message_id"].as_str().unwrap().is_empty());
    let ev = app.completion_of(&id, 1, 60).await.remove(0).json();
    assert_eq!(ev["status"], "succeeded");
    assert_eq!(ev["source_model"], SRC);
    assert_eq!(
        ev["destination_model"],
        testkit::vertex::numbered("projects/dst-proj/locations/us-central1/models/from-seed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_is_enqueued_and_invalid_input_answers_400_naming_the_field() {
    let app = spawn_app("enq-j", Knobs::default()).await;
    let (status, body) = post(
        &app,
        "",
        &crate::helpers::request("enq-json-1", "from-json"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["request_id"], "enq-json-1");
    assert_eq!(
        app.completion_of("enq-json-1", 1, 60).await[0].json()["status"],
        "succeeded"
    );

    let bad = [
        (
            "",
            r#"{"source_model":"1","destination":{"model_id":"NO"}}"#,
            "destination.model_id",
        ),
        ("", "", "request"),
        ("?source_model_id=1", "", "destination_model_id"),
        ("?source_model_id=1&destination_model_id=x", "{}", "request"),
    ];
    for (q, b, field) in bad {
        let (status, body) = post(&app, q, b).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q} {b}: {body}");
        assert_eq!(body["field"], field, "{body}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.completions().snapshot().len(),
        1,
        "invalid input publishes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_failure_answers_503_and_accepts_nothing() {
    let app = spawn_app("enq-503", Knobs::default()).await;
    app.topology.delete_topic("copy-requests").await.unwrap();
    let (status, body) = post(&app, "?source_model_id=1001&destination_model_id=x-503", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("copy-requests"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_is_signed_so_the_reference_library_verifies_it() {
    let app = spawn_app("cb-ok", callback_knobs()).await;
    let (receiver, url) = Receiver::start(vec![]).await;
    let body = format!(
        r#"{{"request_id":"cb-1","source_model":"{SRC}","destination":{{"model_id":"cb-target"}},"callback_url":"{url}"}}"#
    );
    app.publish(&body).await;
    let event = app.completion_of("cb-1", 1, 60).await.remove(0);
    assert_eq!(event.json()["status"], "succeeded");
    let got = receiver.wait_for(1, 30).await;
    assert_eq!(got.len(), 1);
    let (headers, payload) = &got[0];
    assert_eq!(payload, &event.data, "the callback carries the event JSON");
    assert_eq!(headers["webhook-id"], "cb-1:succeeded");
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    verifier
        .verify(payload, headers)
        .expect("signature verifies with the reference library");
    let mut tampered = payload.clone();
    tampered[0] = b' ';
    assert!(
        verifier.verify(&tampered, headers).is_err(),
        "a changed body fails verification"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_then_200_gets_the_callback_twice_and_the_event_is_unaffected() {
    let app = spawn_app("cb-retry", callback_knobs()).await;
    let (receiver, url) = Receiver::start(vec![(500, None)]).await;
    let body = format!(
        r#"{{"request_id":"cb-2","source_model":"{SRC}","destination":{{"model_id":"cb-retry"}},"callback_url":"{url}"}}"#
    );
    app.publish(&body).await;
    assert_eq!(
        app.completion_of("cb-2", 1, 60).await[0].json()["status"],
        "succeeded"
    );
    let got = receiver.wait_for(2, 30).await;
    assert_eq!(got.len(), 2, "retried once after the 500");
    assert_eq!(got[0].0["webhook-id"], got[1].0["webhook-id"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 2, "no more calls after the 200");
    assert_eq!(app.completions().snapshot().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let app = spawn_app("cb-redir", callback_knobs()).await;
    let (target, target_url) = Receiver::start(vec![]).await;
    let (receiver, url) = Receiver::start(vec![(302, Some(target_url)); 50]).await;
    let body = format!(
        r#"{{"request_id":"cb-3","source_model":"{SRC}","destination":{{"model_id":"cb-redir"}},"callback_url":"{url}"}}"#
    );
    app.publish(&body).await;
    assert_eq!(
        app.completion_of("cb-3", 1, 60).await[0].json()["status"],
        "succeeded"
    );
    let dl = app.dead_letter_of("cb-3", 60).await;
    assert_eq!(dl.attribute("error_code"), Some("CALLBACK_REJECTED"));
    assert!(dl.attribute("error_message").unwrap().contains("302"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 1, "a redirect is not retried");
    assert!(
        target.received().is_empty(),
        "the redirect target was never called"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowed_hosts_and_plain_http_callbacks_are_rejected_naming_the_field() {
    let app = spawn_app("cb-deny", Knobs::default()).await;
    let cases = [
        ("cb-host", "https://evil.example.net/x", "not allowed"),
        ("cb-http", "http://127.0.0.1:9/x", "must use https"),
    ];
    for (id, url, why) in cases {
        let body =
            format!(r#"{{"request_id":"{id}","source_model":"{SRC}","callback_url":"{url}"}}"#);
        app.publish(&body).await;
        let ev = app.completion_of(id, 1, 30).await.remove(0).json();
        assert_eq!(ev["status"], "rejected");
        let msg = ev["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("callback_url:") && msg.contains(why),
            "{msg}"
        );
    }
    assert!(app.vertex.calls().is_empty());
}

/// The worker's service URL, the push audience of the direct callers' test.
const SERVICE: &str = "https://copy-worker-xyz.a.run.app";
/// The one account allowed to call `POST /v1/models/copy` there.
const INVOKER: &str = "ec2-caller@p.iam.gserviceaccount.com";

/// A worker that lets [`INVOKER`]'s tokens from `iss` call it directly, its issuer, and an
/// inbox of what reaches copy-requests.
async fn spawn_for_direct_callers() -> (TestApp, testkit::oidc::OidcIssuer, testkit::Inbox) {
    use testkit::oidc::OidcIssuer;
    // The seed's clients mint tokens for the full endpoint URL.
    let endpoint_aud = format!("{SERVICE}/v1/models/copy");
    let iss = OidcIssuer::start(&endpoint_aud, INVOKER).await.unwrap();
    let args = [
        "--push-auth",
        "oidc",
        "--push-audience",
        SERVICE,
        "--push-service-accounts",
        "push@p.iam.gserviceaccount.com",
        "--invoker-service-accounts",
        INVOKER,
        "--push-jwks-url",
        &iss.jwks_url(),
    ];
    let knobs = Knobs {
        extra_args: args.iter().map(|s| s.to_string()).collect(),
        tasks_keys: Some(iss.keys()),
        ..Knobs::default()
    };
    let app = spawn_app("enq-auth", knobs).await;
    // The emulator's pushes carry no token, so this worker never processes them: watch what
    // reaches copy-requests instead.
    app.topology
        .create_pull_subscription("requests-seen", "copy-requests")
        .await
        .unwrap();
    let queued = testkit::Inbox::open(&app.topology, "requests-seen")
        .await
        .unwrap();
    (app, iss, queued)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_callers_need_a_valid_token_from_an_allowed_invoker() {
    let (app, iss, queued) = spawn_for_direct_callers().await;
    let call = |token: Option<String>, query: &'static str, body: String| {
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/models/copy{query}", app.base_url))
            .body(body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let seed = "?source_model_id=1001&destination_model_id=auth-seed";
    let good = iss.mint(serde_json::json!({}));
    assert_eq!(
        call(Some(good.clone()), seed, String::new()).await,
        202,
        "seed params, endpoint audience"
    );
    let service_aud = iss.mint(serde_json::json!({"aud": SERVICE}));
    let json_body = crate::helpers::request("auth-json-1", "auth-json");
    assert_eq!(
        call(Some(service_aud), "", json_body.clone()).await,
        202,
        "JSON body, service audience"
    );
    assert_eq!(call(None, seed, String::new()).await, 401, "missing token");
    assert_eq!(
        call(Some("not.a.jwt".into()), seed, String::new()).await,
        401,
        "malformed token"
    );
    assert_eq!(
        call(Some(iss.mint_bad_signature()), seed, String::new()).await,
        401,
        "bad signature"
    );
    let wrong_aud = iss.mint(serde_json::json!({"aud": "https://elsewhere.example"}));
    assert_eq!(
        call(Some(wrong_aud), seed, String::new()).await,
        401,
        "wrong audience"
    );
    let stranger = iss.mint(serde_json::json!({"email": "someone@else.iam.gserviceaccount.com"}));
    assert_eq!(
        call(Some(stranger), "", json_body).await,
        403,
        "valid token, not an invoker"
    );
    // Exactly the two accepted requests were queued.
    queued
        .wait_for(2, Duration::from_secs(30), |_| true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids: Vec<String> = queued
        .snapshot()
        .iter()
        .map(|m| m.attribute("request_id").unwrap_or("?").to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"auth-json-1".to_owned()), "{ids:?}");
}
