//! The checks this module adds around the upstream verifier, without a network.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::claims::{check_claims, header_kid, short};
use crate::http::auth::AuthDecision;

fn claims(v: Value) -> Map<String, Value> {
    let now = chrono::Utc::now().timestamp();
    let mut base = json!({"exp": now + 600, "iat": now, "email": "a@b.c", "email_verified": true,
        "iss": "https://accounts.google.com", "aud": "https://svc"});
    for (k, x) in v.as_object().unwrap() {
        if x.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = x.clone();
        }
    }
    base.as_object().unwrap().clone()
}

#[test]
fn claims_the_upstream_verifier_ignores_are_checked_here() {
    let now = chrono::Utc::now().timestamp();
    let refused = [
        json!({"iat": now + 3600}),
        json!({"nbf": now + 3600}),
        json!({"nbf": "0"}),
        json!({"iat": [1]}),
        json!({"exp": "9999999999"}),
        json!({"exp": null}),
        json!({"exp": now - 3600}),
        json!({"email_verified": false}),
        json!({"email_verified": "true"}),
        json!({"email_verified": null}),
        json!({"email": null}),
        json!({"email": 5}),
        json!({"iss": null}),
        json!({"iss": 5}),
        json!({"iss": ["https://accounts.google.com", "https://evil"]}),
        json!({"iss": "https://evil"}),
        json!({"aud": null}),
        json!({"aud": 5}),
        json!({"aud": "https://other"}),
        json!({"aud": ["https://other"]}),
    ];
    let auds = HashSet::from(["https://svc".to_owned()]);
    for c in refused {
        assert!(
            matches!(
                check_claims(&claims(c.clone()), &auds),
                Err(AuthDecision::Unauthenticated(_))
            ),
            "{c}"
        );
    }
    for c in [
        json!({"nbf": now, "iat": now + 10}),
        json!({"iss": "accounts.google.com"}),
        json!({"aud": ["https://other", "https://svc"]}),
    ] {
        let ok = check_claims(&claims(c.clone()), &auds);
        assert_eq!(ok.map(|o| o.0), Ok("a@b.c".to_owned()), "{c}");
    }
}

#[test]
fn headers_other_than_rs256_with_a_kid_are_refused_before_any_fetch() {
    let enc = |h: &str| {
        use base64::Engine as _;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", e.encode(h), e.encode("{}"))
    };
    for h in [
        r#"{"alg":"none","kid":"k"}"#,
        r#"{"alg":"HS256","kid":"k"}"#,
        r#"{"alg":"ES256","kid":"k"}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"RS256","kid":""}"#,
        r#"{"alg":"RS256","kid":5}"#,
        "not json",
    ] {
        assert!(header_kid(&enc(h)).is_err(), "{h}");
    }
    assert_eq!(
        header_kid(&enc(r#"{"alg":"RS256","kid":"k"}"#)).unwrap(),
        "k"
    );
    assert!(header_kid("").is_err());
    assert_eq!(short(&"é".repeat(100)).chars().count(), 64);
    assert!(header_kid("a.b").is_err());
}
