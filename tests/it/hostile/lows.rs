//! The probe's "low" findings on the HTTP surface (issue 28, item 8), each through the real
//! router.

use serde_json::json;
use testkit::oidc::DEFAULT_EMAIL;

use crate::auth::{envelope, spawn_oidc_app};
use crate::helpers::{Knobs, request, spawn_app};

/// The probe: `/v1/models/copy` answered a duplicated query parameter in plain text, not
/// JSON, and silently dropped unknown parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubled_or_unknown_query_parameter_is_a_json_400_naming_it() {
    let app = spawn_app("hostile-query", Knobs::default()).await;
    let cases = [
        (
            "?source_model_id=1001&source_model_id=1002&destination_model_id=x",
            "source_model_id",
        ),
        (
            "?source_model_id=1001&destination_model_id=x&callback=evil",
            "callback",
        ),
    ];
    for (query, field) in cases {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/models/copy{query}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.expect("a JSON answer");
        assert_eq!(body["field"], field, "{body}");
        assert!(body["rule"].as_str().is_some(), "{body}");
        assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    }
    assert_eq!(app.vertex_calls("models:copy"), 0, "nothing was queued");
}

/// The probe: a doubled `Authorization` or `X-Serverless-Authorization` header was read by
/// its first value, so a front end that checked one value let another through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubled_token_header_is_refused_401_even_when_one_token_is_good() {
    let (app, iss) = spawn_oidc_app("hostile-twice").await;
    let good = format!("Bearer {}", iss.mint(json!({"email": DEFAULT_EMAIL})));
    let body = envelope(request("hostile-twice", "target-hostile-twice").as_bytes());
    for header in ["authorization", "x-serverless-authorization"] {
        let resp = reqwest::Client::new()
            .post(format!("{}/pubsub/copy-requests", app.base_url))
            .header("content-type", "application/json")
            .header(header, &good)
            .header(header, "Bearer forged")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, 401, "{header}: {text}");
        assert!(text.contains("more than once"), "{text}");
    }
    assert!(app.vertex.calls().is_empty(), "{:?}", app.vertex.calls());
}
