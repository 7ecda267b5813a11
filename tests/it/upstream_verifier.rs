//! What `google-cloud-auth`'s ID-token verifier does on its own with odd tokens (docs/auth.md,
//! "Known upstream behaviour"): tested before `src/http/oidc/` relies on it.

use serde_json::json;
use testkit::oidc::{DEFAULT_EMAIL, OidcIssuer};

use crate::auth::AUD;

/// The odd tokens and what the upstream verifier was recorded doing with each: (case, token,
/// accepted, refused or panics).
#[expect(clippy::too_many_lines, reason = "a table: one row per odd token")]
fn recorded_behaviour(iss: &OidcIssuer) -> Vec<(&'static str, String, &'static str)> {
    let now = chrono::Utc::now().timestamp();
    let m = |o: serde_json::Value| iss.mint(o);
    vec![
        ("default", m(json!({})), "accepted"),
        ("missing iss", m(json!({"iss": null})), "accepted"),
        ("numeric iss", m(json!({"iss": 5})), "accepted"),
        (
            "iss array with google",
            m(json!({"iss": ["https://accounts.google.com", "x"]})),
            "accepted",
        ),
        (
            "wrong iss",
            m(json!({"iss": "https://evil.example.com"})),
            "refused",
        ),
        ("missing aud", m(json!({"aud": null})), "accepted"),
        ("numeric aud", m(json!({"aud": 5})), "accepted"),
        ("wrong aud", m(json!({"aud": "https://x"})), "refused"),
        ("missing exp", m(json!({"exp": null})), "refused"),
        (
            "string exp",
            m(json!({"exp": (now + 600).to_string()})),
            "refused",
        ),
        ("expired", m(json!({"exp": now - 3600})), "refused"),
        (
            "nbf in the future",
            m(json!({"nbf": now + 3600})),
            "accepted",
        ),
        (
            "iat in the future",
            m(json!({"iat": now + 3600})),
            "accepted",
        ),
        (
            "email_verified false",
            m(json!({"email_verified": false})),
            "refused",
        ),
        (
            "email_verified string",
            m(json!({"email_verified": "true"})),
            "refused",
        ),
        (
            "email_verified absent",
            m(json!({"email_verified": null})),
            "panics",
        ),
        ("email absent", m(json!({"email": null})), "panics"),
        ("other email", m(json!({"email": "x@y.z"})), "refused"),
        ("missing kid", iss.mint_without_kid(), "refused"),
        ("alg none", iss.mint_alg_none(), "refused"),
        (
            "hs256 with the public key",
            iss.mint_hs256_with_public_key(),
            "refused",
        ),
        ("bad signature", iss.mint_bad_signature(), "refused"),
    ]
}

/// What `google-cloud-auth`'s verifier does on its own with each odd token, recorded so an
/// upgrade that changes it is noticed. "accepted" rows are gaps `OidcAuth` closes itself;
/// "panics" rows are why it never calls `with_email`.
#[tokio::test]
async fn upstream_verifier_behaviour_on_odd_claims_is_what_oidc_rs_assumes() {
    use google_cloud_auth::credentials::idtoken::verifier::Builder;
    let iss = OidcIssuer::start(AUD, DEFAULT_EMAIL).await.unwrap();
    let verifier = std::sync::Arc::new(
        Builder::new([AUD])
            .with_jwks_url(iss.jwks_url())
            .with_email(DEFAULT_EMAIL)
            .build(),
    );
    let cases = recorded_behaviour(&iss);
    let mut table = vec![];
    for (name, token, want) in &cases {
        let v = verifier.clone();
        let t = token.clone();
        let got = match tokio::spawn(async move { v.verify(&t).await }).await {
            Ok(Ok(_)) => "accepted",
            Ok(Err(_)) => "refused",
            Err(e) if e.is_panic() => "panics",
            Err(e) => panic!("{e}"),
        };
        if got != *want {
            table.push(format!("{name}: upstream {got}, recorded {want}"));
        }
    }
    assert!(table.is_empty(), "{}", table.join("\n"));
}
