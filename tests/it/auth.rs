//! Push authentication and hostile bodies (docs/auth.md), against a worker with `PUSH_AUTH=oidc`
//! and `testkit`'s local OIDC issuer. Pushes are POSTed straight to the worker: the emulator
//! sends no tokens.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use copy_worker::http::OidcAuth;
use copy_worker::http::{AuthDecision, PushAuth};
use serde_json::json;
use testkit::oidc::{DEFAULT_EMAIL, JwksMode, OidcIssuer};

use crate::helpers::{Knobs, TestApp, request, spawn_app};

pub const AUD: &str = "https://copy-worker-abc.a.run.app/pubsub/copy-requests";
const OTHER_AUD: &str = "https://copy-worker-abc.a.run.app";

pub async fn spawn_oidc_app(name: &str) -> (TestApp, OidcIssuer) {
    let issuer = OidcIssuer::start(AUD, DEFAULT_EMAIL).await.expect("issuer");
    let extra_args = [
        "--push-auth",
        "oidc",
        "--push-audience",
        &format!("{AUD},{OTHER_AUD}"),
        "--push-service-accounts",
        &format!(
            "other@p.iam.gserviceaccount.com,{}",
            DEFAULT_EMAIL.to_uppercase()
        ),
        "--push-jwks-url",
        &issuer.jwks_url(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let app = spawn_app(
        name,
        Knobs {
            extra_args,
            tasks_keys: Some(issuer.keys()),
            ..Knobs::default()
        },
    )
    .await;
    (app, issuer)
}

/// A push envelope as Pub/Sub sends it, around `data`.
pub fn envelope(data: &[u8]) -> String {
    json!({
        "subscription": "projects/p/subscriptions/copy-requests-push",
        "message": {
            "attributes": {},
            "data": STANDARD.encode(data),
            "messageId": "1", "message_id": "1",
            "publishTime": "2026-11-22T10:00:00Z", "publish_time": "2026-11-22T10:00:00Z",
        }
    })
    .to_string()
}

async fn post(app: &TestApp, auth: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, String) {
    let mut rq = reqwest::Client::new()
        .post(format!("{}/pubsub/copy-requests", app.base_url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        rq = rq.header("authorization", a);
    }
    let resp = rq.send().await.expect("worker answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Nothing reached Vertex, the completions or the dead letters.
async fn assert_no_side_effects(app: &TestApp) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(app.vertex.calls().is_empty(), "{:?}", app.vertex.calls());
    assert!(app.completions().snapshot().is_empty());
    assert!(app.dead_letters.snapshot().is_empty());
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// Every token the push route must refuse: (case, Authorization header, status).
#[expect(clippy::too_many_lines, reason = "a table: one row per refused token")]
fn refused_tokens(iss: &OidcIssuer) -> Vec<(&'static str, Option<String>, u16)> {
    let now = chrono::Utc::now().timestamp();
    let m = |o: serde_json::Value| bearer(&iss.mint(o));
    vec![
        ("no header", None, 401),
        ("basic scheme", Some("Basic dXNlcjpwYXNz".into()), 401),
        ("empty bearer", Some("Bearer ".into()), 401),
        ("not a jwt", Some(bearer("garbage")), 401),
        ("two parts", Some(bearer("e30.e30")), 401),
        (
            "bad signature",
            Some(bearer(&iss.mint_bad_signature())),
            401,
        ),
        (
            "claims changed after signing",
            Some(bearer(
                &iss.mint_tampered(json!({"email": "x@evil.example"})),
            )),
            401,
        ),
        ("alg none", Some(bearer(&iss.mint_alg_none())), 401),
        (
            "hs256 keyed with the public key",
            Some(bearer(&iss.mint_hs256_with_public_key())),
            401,
        ),
        (
            "unknown kid",
            Some(bearer(&iss.mint_with_kid("no-such-kid"))),
            401,
        ),
        ("missing kid", Some(bearer(&iss.mint_without_kid())), 401),
        (
            "wrong iss",
            Some(m(json!({"iss": "https://evil.example.com"}))),
            401,
        ),
        ("missing iss", Some(m(json!({"iss": null}))), 401),
        ("numeric iss", Some(m(json!({"iss": 5}))), 401),
        (
            "iss array",
            Some(m(json!({"iss": ["https://accounts.google.com", "x"]}))),
            401,
        ),
        (
            "wrong aud",
            Some(m(json!({"aud": "https://other.example.com"}))),
            401,
        ),
        ("missing aud", Some(m(json!({"aud": null}))), 401),
        ("numeric aud", Some(m(json!({"aud": 5}))), 401),
        ("expired", Some(m(json!({"exp": now - 3600}))), 401),
        ("missing exp", Some(m(json!({"exp": null}))), 401),
        (
            "string exp",
            Some(m(json!({"exp": (now + 600).to_string()}))),
            401,
        ),
        (
            "not yet valid (nbf)",
            Some(m(json!({"nbf": now + 3600}))),
            401,
        ),
        (
            "issued in the future (iat)",
            Some(m(json!({"iat": now + 3600}))),
            401,
        ),
        (
            "email_verified false",
            Some(m(json!({"email_verified": false}))),
            401,
        ),
        (
            "email_verified absent",
            Some(m(json!({"email_verified": null}))),
            401,
        ),
        (
            "email_verified a string",
            Some(m(json!({"email_verified": "true"}))),
            401,
        ),
        ("email absent", Some(m(json!({"email": null}))), 401),
        (
            "email not allowed",
            Some(m(json!({"email": "intruder@p.iam.gserviceaccount.com"}))),
            403,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_or_foreign_token_is_refused_before_any_side_effect() {
    let (app, iss) = spawn_oidc_app("authrefuse").await;
    let body = envelope(request("auth-refused", "target-auth-refused").as_bytes());
    let cases = refused_tokens(&iss);
    let mut wrong = vec![];
    for (name, auth, want) in &cases {
        let (got, text) = post(&app, auth.as_deref(), body.clone()).await;
        if got != *want {
            wrong.push(format!("{name}: got {got} ({text}), want {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_no_side_effects(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_tokens_in_every_accepted_form_start_the_copy() {
    let (app, iss) = spawn_oidc_app("authok").await;
    let now = chrono::Utc::now().timestamp();
    let cases = [
        ("default", iss.mint(json!({}))),
        ("short iss", iss.mint(json!({"iss": "accounts.google.com"}))),
        ("second audience", iss.mint(json!({"aud": OTHER_AUD}))),
        (
            "aud array",
            iss.mint(json!({"aud": ["https://x.example", AUD]})),
        ),
        ("expired within the skew", iss.mint(json!({"exp": now - 5}))),
        ("nbf now", iss.mint(json!({"nbf": now}))),
    ];
    for (i, (name, token)) in cases.iter().enumerate() {
        let body =
            envelope(request(&format!("auth-ok-{i}"), &format!("target-auth-ok-{i}")).as_bytes());
        let (got, text) = post(&app, Some(&bearer(token)), body.clone()).await;
        assert_eq!(got, 204, "{name}: {text}");
        // Pub/Sub reuses a token; the second push hits the cache and the copy is idempotent.
        let (again, text) = post(&app, Some(&format!("bearer  {token}")), body).await;
        assert_eq!(again, 204, "{name} again: {text}");
    }
    // Each request's copy starts through the copy-start queue (whose tasks carry the tasks'
    // account's token): one copy each, the second push of the same message queued nothing new.
    for i in 0..cases.len() {
        let ev = app.completion_of(&format!("auth-ok-{i}"), 1, 60).await;
        assert_eq!(ev[0].attribute("status"), Some("succeeded"));
    }
    assert_eq!(app.vertex_calls("models:copy"), cases.len());
    // Keys are cached between tokens: one fetch by each route group's verifier that saw a
    // token (the push routes' and the task routes', which have allow-lists of their own).
    assert_eq!(iss.jwks_fetches(), 2, "keys are cached between tokens");
}

/// The health check needs no token, under both paths: `/healthz` for Cloud Run's probes and
/// `/health` for callers through the service URL (Cloud Run's front end keeps paths ending
/// in z to itself); everything else still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_answers_without_a_token_under_both_paths() {
    let (app, _iss) = spawn_oidc_app("authhealth").await;
    let c = reqwest::Client::new();
    for path in ["/healthz", "/health"] {
        let r = c
            .get(format!("{}{path}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(r.text().await.unwrap(), "ok", "{path}");
    }
    let (status, _) = post(&app, None, envelope(b"{}")).await;
    assert_eq!(status, 401, "a push without a token is still refused");
}

/// One allow-list per route (docs/DESIGN.md §11): the push account's token opens the
/// `/pubsub/*` routes only, the queues' account's token the `/tasks/*` routes only, and the
/// upgrade route is not served at all unless an upgrade is draining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_accepts_only_its_own_account() {
    let (app, iss) = spawn_oidc_app("authroutes").await;
    let c = reqwest::Client::new();
    let task = crate::shutdown::start_task(&request("auth-route", "auth-route-t"), "m-route");
    // The push account, with an audience the task routes would accept: 403 (not its route).
    let push_token = iss.mint(json!({"aud": app.base_url}));
    for route in ["/tasks/copy-starts", "/tasks/copy-polls"] {
        let url = format!("{}{route}", app.base_url);
        let none = c.post(&url).body(task.clone()).send().await.unwrap();
        assert_eq!(none.status().as_u16(), 401, "{route} without a token");
        let r = c
            .post(&url)
            .bearer_auth(&push_token)
            .body(task.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            403,
            "{route} with the push account's token"
        );
    }
    // The queues' account on a push route: refused too.
    let tasks_token = iss.mint(json!({"email": crate::helpers::TASKS_ACCOUNT}));
    let (status, _) = post(&app, Some(&bearer(&tasks_token)), envelope(b"{}")).await;
    assert_eq!(status, 403, "the queues' account on /pubsub/copy-requests");
    let old = c
        .post(format!("{}/pubsub/copy-operations", app.base_url))
        .bearer_auth(iss.mint(json!({})))
        .body(envelope(b"{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status().as_u16(), 404, "the upgrade route is off");
    assert_no_side_effects(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_answers_503_and_nothing_is_lost() {
    let (app, iss) = spawn_oidc_app("authjwks").await;
    iss.set_unreachable(true);
    let body = envelope(request("auth-jwks", "target-auth-jwks").as_bytes());
    let token = bearer(&iss.mint(json!({})));
    for _ in 0..3 {
        let (got, text) = post(&app, Some(&token), body.clone()).await;
        assert_eq!(got, 503, "{text}");
    }
    assert!(
        iss.jwks_fetches() <= 1,
        "fetches are limited: {}",
        iss.jwks_fetches()
    );
    assert_no_side_effects(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_causes_at_most_one_jwks_fetch() {
    let (app, iss) = spawn_oidc_app("authflood").await;
    let body = envelope(request("auth-flood", "target-auth-flood").as_bytes());
    for i in 0..50 {
        let (got, _) = post(
            &app,
            Some(&bearer(&iss.mint_with_kid(&format!("made-up-{i}")))),
            body.clone(),
        )
        .await;
        assert_eq!(got, 401);
    }
    assert_eq!(iss.jwks_fetches(), 1);
    assert_no_side_effects(&app).await;
}

fn verifier_for(iss: &OidcIssuer) -> OidcAuth {
    verifier_with_interval(iss, Duration::from_millis(300))
}

/// A verifier whose unknown-`kid` limiter allows one JWKS fetch per `interval`.
fn verifier_with_interval(iss: &OidcIssuer, interval: Duration) -> OidcAuth {
    OidcAuth::new(
        &[AUD.into()],
        &[DEFAULT_EMAIL.into()],
        Some(&iss.jwks_url()),
    )
    .with_unknown_kid_interval(interval)
    .with_jwks_timeout(Duration::from_millis(500))
}

#[tokio::test]
async fn a_rotated_key_is_accepted_once_the_jwks_is_fetched_again() {
    let iss = OidcIssuer::start(AUD, DEFAULT_EMAIL).await.unwrap();
    let auth = verifier_for(&iss);
    let old = bearer(&iss.mint(json!({})));
    assert_eq!(auth.check(Some(&old)).await, AuthDecision::Allowed);
    iss.rotate();
    iss.retire_old_keys();
    // Past the unknown-kid interval, the new kid makes the verifier fetch the JWKS again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let new = bearer(&iss.mint(json!({})));
    assert_eq!(auth.check(Some(&new)).await, AuthDecision::Allowed);
    assert_eq!(iss.jwks_fetches(), 2);
    assert_eq!(
        auth.check(Some(&old)).await,
        AuthDecision::Allowed,
        "still cached"
    );
}

#[tokio::test]
async fn a_jwks_outage_is_503_until_it_recovers_and_a_hanging_jwks_times_out() {
    let iss = OidcIssuer::start(AUD, DEFAULT_EMAIL).await.unwrap();
    // A 2 s interval: the second check must fall inside it even on a loaded machine (with
    // 300 ms, a CI run under load saw the second check fetch again).
    let interval = Duration::from_secs(2);
    let past_interval = interval + Duration::from_millis(100);
    let auth = verifier_with_interval(&iss, interval);
    let token = bearer(&iss.mint(json!({})));
    iss.set_unreachable(true);
    assert!(matches!(
        auth.check(Some(&token)).await,
        AuthDecision::Unavailable(_)
    ));
    // Within the limiter's interval: still 503 (not 401), and no new fetch.
    assert!(matches!(
        auth.check(Some(&token)).await,
        AuthDecision::Unavailable(_)
    ));
    assert_eq!(iss.jwks_fetches(), 1);
    iss.set_mode(JwksMode::Hang);
    tokio::time::sleep(past_interval).await;
    let started = std::time::Instant::now();
    assert!(matches!(
        auth.check(Some(&token)).await,
        AuthDecision::Unavailable(_)
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
    iss.set_mode(JwksMode::Serve);
    tokio::time::sleep(past_interval).await;
    assert_eq!(auth.check(Some(&token)).await, AuthDecision::Allowed);
}

#[tokio::test]
async fn concurrent_first_checks_do_not_fail_on_the_upstream_cache_lock() {
    let iss = OidcIssuer::start(AUD, DEFAULT_EMAIL).await.unwrap();
    let auth = std::sync::Arc::new(verifier_for(&iss));
    let mut tasks = vec![];
    for i in 0..16 {
        let (auth, token) = (auth.clone(), bearer(&iss.mint(json!({"jti": i}))));
        tasks.push(tokio::spawn(async move { auth.check(Some(&token)).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), AuthDecision::Allowed);
    }
}
