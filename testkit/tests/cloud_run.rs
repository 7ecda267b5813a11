//! The Cloud Run front answers as Cloud Run's IAM invoker check is documented to (see the
//! sources in `testkit/src/cloud_run.rs`): no token 403, an invalid token or a foreign
//! audience 401, a caller without the invoker role 403, and otherwise the request reaches the
//! container with the checked token's signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`.

use axum::http::HeaderMap;
use serde_json::json;
use testkit::cloud_run::SIGNATURE_REMOVED;
use testkit::oidc::{DEFAULT_EMAIL, OidcIssuer};
use testkit::{CloudRunFront, CloudRunIam};
use tokio::net::TcpListener;

const CALLER: &str = "ec2-caller@p.iam.gserviceaccount.com";

/// A container stand-in that answers with the two token headers it received.
async fn container() -> String {
    async fn echo(headers: HeaderMap) -> String {
        let h = |n: &str| {
            headers
                .get(n)
                .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned())
        };
        format!(
            "{}\n{}",
            h("authorization"),
            h("x-serverless-authorization")
        )
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn stack() -> (CloudRunFront, OidcIssuer) {
    let issuer = OidcIssuer::start("unused", DEFAULT_EMAIL)
        .await
        .expect("issuer");
    let iam = CloudRunIam {
        keys: issuer.keys(),
        custom_audiences: vec!["copy-worker-custom".into()],
        invokers: vec![DEFAULT_EMAIL.into(), CALLER.into()],
        push_account: DEFAULT_EMAIL.into(),
        push_audience: None,
    };
    let front = CloudRunFront::start(&container().await, iam)
        .await
        .expect("front");
    (front, issuer)
}

async fn post(url: &str, headers: &[(&str, String)]) -> (u16, String) {
    let mut rq = reqwest::Client::new().post(format!("{url}/pubsub/copy-requests"));
    for (k, v) in headers {
        rq = rq.header(*k, v);
    }
    let resp = rq.send().await.expect("front answers");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn stripped(token: &str) -> String {
    let (signed, _) = token.rsplit_once('.').unwrap();
    format!("Bearer {signed}.{SIGNATURE_REMOVED}")
}

#[tokio::test]
async fn refusals_follow_cloud_runs_invoker_check() {
    let (front, iss) = stack().await;
    let url = front.url();
    let now = chrono::Utc::now().timestamp();
    let aud = json!({ "aud": url });
    let cases = [
        ("no token", vec![], 403),
        ("not a jwt", vec![("authorization", bearer("x.y.z"))], 401),
        (
            "bad signature",
            vec![("authorization", bearer(&iss.mint_bad_signature()))],
            401,
        ),
        (
            "expired",
            vec![(
                "authorization",
                bearer(&iss.mint(json!({"aud": url, "exp": now - 60}))),
            )],
            401,
        ),
        (
            "another service's audience",
            vec![(
                "authorization",
                bearer(&iss.mint(json!({"aud": "http://127.0.0.1:1"}))),
            )],
            401,
        ),
        (
            "already stripped (cannot be replayed)",
            vec![("authorization", stripped(&iss.mint(aud.clone())))],
            401,
        ),
        (
            "not an invoker",
            vec![(
                "authorization",
                bearer(&iss.mint(json!({"aud": url, "email": "x@p.iam.gserviceaccount.com"}))),
            )],
            403,
        ),
    ];
    for (what, headers, status) in cases {
        let (got, body) = post(&url, &headers).await;
        assert_eq!(got, status, "{what}: {body}");
        assert!(
            body.contains("<html>"),
            "{what}: Google's page, not the container's: {body}"
        );
    }
    assert!(
        front.forwarded_tokens().is_empty(),
        "nothing reached the container"
    );
}

#[tokio::test]
async fn an_invoker_reaches_the_container_with_the_signature_removed() {
    let (front, iss) = stack().await;
    let url = front.url();
    for aud in [
        url.clone(),
        format!("{url}/v1/models/copy"),
        "copy-worker-custom".into(),
    ] {
        let token = iss.mint(json!({"aud": aud, "email": CALLER}));
        let (status, seen) = post(&url, &[("authorization", bearer(&token))]).await;
        assert_eq!(status, 200, "aud {aud}: {seen}");
        assert_eq!(seen, format!("{}\n-", stripped(&token)), "aud {aud}");
    }
    assert_eq!(front.forwarded_tokens().len(), 3);
}

#[tokio::test]
async fn x_serverless_authorization_is_checked_and_authorization_passes_untouched() {
    let (front, iss) = stack().await;
    let url = front.url();
    let checked = iss.mint(json!({"aud": url, "email": CALLER}));
    let app_token = "Bearer app-level-token".to_owned();
    let (status, seen) = post(
        &url,
        &[
            ("x-serverless-authorization", bearer(&checked)),
            ("authorization", app_token.clone()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen, format!("{app_token}\n{}", stripped(&checked)));
}

#[tokio::test]
async fn the_push_side_attaches_the_push_accounts_token_as_pubsub_does() {
    let (front, _iss) = stack().await;
    let (status, seen) = post(&front.push_url(), &[]).await;
    assert_eq!(status, 200, "{seen}");
    let token = seen
        .lines()
        .next()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    assert!(token.ends_with(&format!(".{SIGNATURE_REMOVED}")), "{token}");
    let claims: serde_json::Value = {
        use base64::Engine as _;
        let c = token.split('.').nth(1).unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c)
            .unwrap();
        serde_json::from_slice(&raw).unwrap()
    };
    assert_eq!(claims["email"], DEFAULT_EMAIL);
    assert_eq!(claims["aud"], front.url(), "the service URL by default");
}
