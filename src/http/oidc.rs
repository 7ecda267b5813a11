//! Verification of Google-signed OIDC ID tokens (push subscriptions and direct callers).
//!
//! The signature, `iss`, `aud` and `exp` checks are `google-cloud-auth`'s ID-token verifier.
//! Around it this module closes the gaps found by testing it (see
//! `tests/it/upstream_verifier.rs`, `tests/it/auth.rs` and `docs/auth.md`):
//! - only RS256 is accepted, whatever the token header claims (the verifier builds its
//!   validation from the header's `alg`);
//! - `iss` and `aud` must be present and well-formed: the verifier (through `jsonwebtoken`,
//!   which only requires `exp`) accepts a token with no `iss` or no `aud` at all, or with one
//!   that is not a string (a number, say), and an `iss` array with one Google entry;
//! - `iat`/`nbf` in the future, or not numbers, are refused (the verifier checks neither);
//! - `email_verified` and `email` are checked here, against a list, because the verifier's
//!   own email check indexes the claims map and panics when a claim is absent;
//! - the verifier's certificate cache takes its lock with `try_write` and holds it across the
//!   JWKS fetch, so concurrent calls fail spuriously: calls into it are serialised, bounded by
//!   [`JWKS_TIMEOUT`] (its HTTP client has none, so a hanging JWKS would hold every push),
//!   and verified tokens are cached by hash until they expire (Pub/Sub reuses one token for
//!   many pushes);
//! - tokens whose `kid` was never seen may trigger a JWKS fetch at most once per
//!   [`UNKNOWN_KID_INTERVAL`], so a flood of made-up `kid`s is not a flood of fetches.
//!
//! # Behind Cloud Run (`PUSH_AUTH=cloud-run`)
//! Cloud Run's IAM invoker check verifies the ID token itself, then forwards it with the
//! signature replaced by [`SIGNATURE_REMOVED`] (cloud.google.com/run/docs/troubleshooting,
//! "signature removed"; the token can no longer be replayed elsewhere). No verifier can check
//! that form, so [`OidcAuth::behind_cloud_run`] accepts exactly it, with the same claim checks
//! as a signed token ([`check_claims`]: `iss`, `aud`, `exp`, `iat`/`nbf`, `email_verified`,
//! `email`), and still verifies in full any token that keeps a signature. Without that mode a
//! signature-removed token is refused with a message that names the mode.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use google_cloud_auth::credentials::idtoken::verifier::{Builder, Verifier};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::auth::{AuthDecision, PushAuth};
use crate::domain::sha256_hex;

/// Clock skew allowed on `exp`, `iat` and `nbf`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// At most one JWKS fetch for never-seen `kid`s per interval.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
/// Longest wait for the verifier (a JWKS fetch included) before answering 503.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CACHED_TOKENS: usize = 4096;
/// The issuers of Google ID tokens (the verifier accepts both spellings).
const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// What the verifier says when the JWKS was fetched but lacks the token's `kid`.
const KID_NOT_IN_JWKS: &str = "did not contain a matching `kid`";
/// The signature segment of a token that Cloud Run's front end has verified and forwarded
/// (cloud.google.com/run/docs/troubleshooting#signature-removed).
pub const SIGNATURE_REMOVED: &str = "SIGNATURE_REMOVED_BY_GOOGLE";

/// Checks `Authorization: Bearer <JWT>` against audiences and allowed emails.
pub struct OidcAuth {
    verifier: tokio::sync::Mutex<Verifier>,
    audiences: HashSet<String>,
    allowed_emails: HashSet<String>,
    state: Mutex<State>,
    unknown_kid_interval: Duration,
    jwks_timeout: Duration,
    /// `PUSH_AUTH=cloud-run`: Cloud Run's front end verified the signature it removed.
    behind_cloud_run: bool,
}

#[derive(Default)]
struct State {
    /// sha256(token) → (email, expiry).
    verified: HashMap<String, (String, Instant)>,
    /// `kid`s the JWKS was seen to hold (the verifier found a key for them).
    known_kids: HashSet<String>,
    last_unknown_kid_fetch: Option<Instant>,
    /// Whether that fetch failed to load the JWKS, so a limited `kid` is 503, not 401.
    last_fetch_failed: bool,
}

impl OidcAuth {
    pub fn new(audiences: &[String], allowed_emails: &[String], jwks_url: Option<&str>) -> Self {
        let mut b = Builder::new(audiences.iter().cloned()).with_clock_skew(CLOCK_SKEW);
        if let Some(u) = jwks_url {
            b = b.with_jwks_url(u);
        }
        Self {
            verifier: tokio::sync::Mutex::new(b.build()),
            audiences: audiences.iter().cloned().collect(),
            allowed_emails: allowed_emails
                .iter()
                .map(|e| e.to_ascii_lowercase())
                .collect(),
            state: Mutex::new(State::default()),
            unknown_kid_interval: UNKNOWN_KID_INTERVAL,
            jwks_timeout: JWKS_TIMEOUT,
            behind_cloud_run: false,
        }
    }

    /// `PUSH_AUTH=cloud-run`: accept tokens whose signature Cloud Run's IAM invoker check
    /// verified and removed, after the same claim checks as a signed token.
    pub fn behind_cloud_run(mut self) -> Self {
        self.behind_cloud_run = true;
        self
    }

    /// Overrides [`UNKNOWN_KID_INTERVAL`] (tests).
    pub fn with_unknown_kid_interval(mut self, d: Duration) -> Self {
        self.unknown_kid_interval = d;
        self
    }

    /// Overrides [`JWKS_TIMEOUT`] (tests).
    pub fn with_jwks_timeout(mut self, d: Duration) -> Self {
        self.jwks_timeout = d;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn allow(&self, email: &str) -> AuthDecision {
        if self.allowed_emails.contains(&email.to_ascii_lowercase()) {
            AuthDecision::Allowed
        } else {
            AuthDecision::Forbidden(format!("account {email} is not allowed"))
        }
    }

    async fn verify(&self, token: &str) -> Result<String, AuthDecision> {
        let kid = header_kid(token)?;
        self.admit_kid(&kid).await?;
        let claims = self.call_verifier(token, &kid).await?;
        let (email, exp) = check_claims(&claims, &self.audiences)?;
        self.remember(token, &email, exp);
        Ok(email)
    }

    /// The unknown-`kid` limiter: a never-seen `kid` may cause one JWKS fetch per interval.
    async fn admit_kid(&self, kid: &str) -> Result<(), AuthDecision> {
        {
            let mut st = self.state();
            if st.known_kids.contains(kid) {
                return Ok(());
            }
            let recent = st
                .last_unknown_kid_fetch
                .is_some_and(|t| t.elapsed() < self.unknown_kid_interval);
            if !recent {
                st.last_unknown_kid_fetch = Some(Instant::now());
                return Ok(());
            }
        }
        // A fetch may be under way for this very kid (a burst of pushes at a cold start):
        // it holds the verifier, so wait for the verifier, then look again.
        let _ = tokio::time::timeout(self.jwks_timeout, self.verifier.lock()).await;
        let st = self.state();
        if st.known_kids.contains(kid) {
            return Ok(());
        }
        // The JWKS was just fetched: if it loaded, this kid was not in it; if it did not,
        // we cannot tell, and the push must be redelivered rather than refused.
        Err(if st.last_fetch_failed {
            AuthDecision::Unavailable("signing keys could not be loaded recently".into())
        } else {
            AuthDecision::Unauthenticated(format!("unknown kid {:?}", short(kid)))
        })
    }

    async fn call_verifier(
        &self,
        token: &str,
        kid: &str,
    ) -> Result<Map<String, Value>, AuthDecision> {
        let call = async { self.verifier.lock().await.verify(token).await };
        let result = tokio::time::timeout(self.jwks_timeout, call).await;
        let mut st = self.state();
        let Ok(result) = result else {
            st.last_fetch_failed = true;
            return Err(AuthDecision::Unavailable(format!(
                "signing keys not loaded within {:?}",
                self.jwks_timeout
            )));
        };
        match result {
            Ok(claims) => {
                st.known_kids.insert(kid.to_owned());
                st.last_fetch_failed = false;
                Ok(claims)
            }
            Err(e) if e.is_load_cert() && e.to_string().contains(KID_NOT_IN_JWKS) => {
                st.last_fetch_failed = false;
                Err(AuthDecision::Unauthenticated(format!(
                    "unknown kid {:?}",
                    short(kid)
                )))
            }
            Err(e) if e.is_load_cert() => {
                st.last_fetch_failed = true;
                Err(AuthDecision::Unavailable(format!(
                    "cannot load signing keys: {e}"
                )))
            }
            Err(e) => {
                // A key was found for this kid: the token itself is wrong.
                st.known_kids.insert(kid.to_owned());
                st.last_fetch_failed = false;
                Err(AuthDecision::Unauthenticated(format!("invalid token: {e}")))
            }
        }
    }

    fn remember(&self, token: &str, email: &str, exp: i64) {
        let now = chrono::Utc::now().timestamp();
        let ttl = Duration::from_secs((exp - now).clamp(0, 3600) as u64);
        let mut st = self.state();
        if st.verified.len() >= MAX_CACHED_TOKENS {
            st.verified.retain(|_, (_, until)| *until > Instant::now());
            if st.verified.len() >= MAX_CACHED_TOKENS {
                st.verified.clear();
            }
        }
        st.verified.insert(
            sha256_hex(token.as_bytes()),
            (email.to_owned(), Instant::now() + ttl),
        );
    }
}

impl OidcAuth {
    /// A token whose signature Cloud Run removed: its claims, checked as a signed token's are,
    /// when this worker is behind Cloud Run; otherwise a refusal that says which mode fits.
    fn signature_removed(&self, token: &str) -> Result<String, AuthDecision> {
        if !self.behind_cloud_run {
            return Err(AuthDecision::Unauthenticated(format!(
                "the token's signature is {SIGNATURE_REMOVED}: Cloud Run's IAM invoker check verified it and removed the signature; behind Cloud Run set PUSH_AUTH=cloud-run (docs/auth.md)"
            )));
        }
        let data = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
            .map_err(|e| AuthDecision::Unauthenticated(format!("malformed token: {e}")))?;
        if data.header.alg != Algorithm::RS256 {
            return Err(AuthDecision::Unauthenticated(format!(
                "alg {:?} is not RS256",
                data.header.alg
            )));
        }
        check_claims(&data.claims, &self.audiences).map(|(email, _)| email)
    }
}

/// At most 64 characters of an attacker-chosen string, for messages and logs.
fn short(s: &str) -> &str {
    s.char_indices().nth(64).map_or(s, |(i, _)| &s[..i])
}

/// The `kid` of an RS256 token, read before any network call.
fn header_kid(token: &str) -> Result<String, AuthDecision> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| AuthDecision::Unauthenticated(format!("malformed token: {e}")))?;
    if header.alg != Algorithm::RS256 {
        return Err(AuthDecision::Unauthenticated(format!(
            "alg {:?} is not RS256",
            header.alg
        )));
    }
    header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or_else(|| AuthDecision::Unauthenticated("token has no kid".into()))
}

/// The claim checks the upstream verifier leaves out; returns the email and `exp`.
fn check_claims(
    claims: &Map<String, Value>,
    audiences: &HashSet<String>,
) -> Result<(String, i64), AuthDecision> {
    let bad = |m: String| AuthDecision::Unauthenticated(m);
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if GOOGLE_ISSUERS.contains(&iss) => {}
        _ => return Err(bad("token iss is missing or not Google's".into())),
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.contains(a),
        Some(Value::Array(all)) => all
            .iter()
            .any(|a| a.as_str().is_some_and(|a| audiences.contains(a))),
        _ => false,
    };
    if !aud_ok {
        return Err(bad("token aud is missing or not ours".into()));
    }
    let now = chrono::Utc::now().timestamp() as f64;
    let skew = CLOCK_SKEW.as_secs() as f64;
    for claim in ["iat", "nbf"] {
        match claims.get(claim) {
            None => {}
            Some(v) => match v.as_f64() {
                Some(t) if t <= now + skew => {}
                Some(_) => return Err(bad(format!("token {claim} is in the future"))),
                None => return Err(bad(format!("token {claim} is not a number"))),
            },
        }
    }
    let Some(exp) = claims.get("exp").and_then(Value::as_f64) else {
        return Err(bad("token exp is missing or not a number".into()));
    };
    if exp + skew < now {
        return Err(bad("token has expired".into()));
    }
    if claims.get("email_verified") != Some(&Value::Bool(true)) {
        return Err(bad("email_verified is not true".into()));
    }
    let Some(email) = claims.get("email").and_then(Value::as_str) else {
        return Err(bad("token has no email claim".into()));
    };
    Ok((email.to_owned(), exp as i64))
}

#[async_trait::async_trait]
impl PushAuth for OidcAuth {
    async fn check(&self, authorization: Option<&str>) -> AuthDecision {
        let Some(h) = authorization else {
            return AuthDecision::Unauthenticated("missing Authorization header".into());
        };
        // RFC 7235: the scheme is case-insensitive.
        let token = h
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return AuthDecision::Unauthenticated("Authorization is not a Bearer token".into());
        };
        let cached = {
            let st = self.state();
            st.verified
                .get(&sha256_hex(token.as_bytes()))
                .filter(|(_, until)| *until > Instant::now())
                .map(|(email, _)| email.clone())
        };
        if let Some(email) = cached {
            return self.allow(&email);
        }
        if token.rsplit('.').next() == Some(SIGNATURE_REMOVED) {
            return match self.signature_removed(token) {
                Ok(email) => self.allow(&email),
                Err(refusal) => refusal,
            };
        }
        match self.verify(token).await {
            Ok(email) => self.allow(&email),
            Err(refusal) => refusal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
