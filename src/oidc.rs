//! Verification of Google-signed OIDC ID tokens (push subscriptions and direct callers).
//!
//! The signature, `iss`, `aud` and `exp` checks are `google-cloud-auth`'s ID-token verifier.
//! Around it this module closes the gaps found by testing it (see `tests/it/auth.rs`):
//! - only RS256 is accepted, whatever the token header claims;
//! - `iat`/`nbf` in the future are refused (the verifier checks neither);
//! - `email_verified` and `email` are checked here, against a list, because the verifier's
//!   own email check indexes the claims and panics when a claim is absent;
//! - the verifier's certificate cache takes its lock with `try_write`, so concurrent calls
//!   fail spuriously: calls into it are serialised, and verified tokens are cached by hash
//!   until they expire (Pub/Sub reuses one token for many pushes);
//! - tokens whose `kid` was never seen may trigger a JWKS fetch at most once per
//!   [`UNKNOWN_KID_INTERVAL`], so a flood of made-up `kid`s is not a flood of fetches.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use google_cloud_auth::credentials::idtoken::verifier::{Builder, Verifier};
use jsonwebtoken::Algorithm;

use crate::push::{AuthDecision, PushAuth};
use crate::request::sha256_hex;

/// Clock skew allowed on `exp`, `iat` and `nbf`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// At most one JWKS fetch for never-seen `kid`s per interval.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
const MAX_CACHED_TOKENS: usize = 4096;

/// Checks `Authorization: Bearer <JWT>` against audiences and allowed emails.
pub struct OidcAuth {
    verifier: tokio::sync::Mutex<Verifier>,
    allowed_emails: HashSet<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// sha256(token) → (email, expiry).
    verified: HashMap<String, (String, Instant)>,
    known_kids: HashSet<String>,
    last_unknown_kid_fetch: Option<Instant>,
}

impl OidcAuth {
    pub fn new(audiences: &[String], allowed_emails: &[String], jwks_url: Option<&str>) -> Self {
        let mut b = Builder::new(audiences.iter().cloned()).with_clock_skew(CLOCK_SKEW);
        if let Some(u) = jwks_url {
            b = b.with_jwks_url(u);
        }
        Self {
            verifier: tokio::sync::Mutex::new(b.build()),
            allowed_emails: allowed_emails
                .iter()
                .map(|e| e.to_ascii_lowercase())
                .collect(),
            state: Mutex::new(State::default()),
        }
    }

    fn allow(&self, email: &str) -> AuthDecision {
        if self.allowed_emails.contains(&email.to_ascii_lowercase()) {
            AuthDecision::Allowed
        } else {
            AuthDecision::Forbidden(format!("account {email} is not allowed"))
        }
    }

    async fn verify(&self, token: &str) -> AuthDecision {
        let header = match jsonwebtoken::decode_header(token) {
            Ok(h) => h,
            Err(e) => return AuthDecision::Unauthenticated(format!("malformed token: {e}")),
        };
        if header.alg != Algorithm::RS256 {
            return AuthDecision::Unauthenticated(format!("alg {:?} is not RS256", header.alg));
        }
        let Some(kid) = header.kid else {
            return AuthDecision::Unauthenticated("token has no kid".into());
        };
        {
            let mut st = self.state.lock().expect("lock");
            if !st.known_kids.contains(&kid) {
                let recent = st
                    .last_unknown_kid_fetch
                    .is_some_and(|t| t.elapsed() < UNKNOWN_KID_INTERVAL);
                if recent {
                    return AuthDecision::Unauthenticated(format!("unknown kid {kid:?}"));
                }
                st.last_unknown_kid_fetch = Some(Instant::now());
            }
        }
        let result = self.verifier.lock().await.verify(token).await;
        let claims = match result {
            Ok(c) => c,
            Err(e) if e.is_load_cert() && !e.to_string().contains("kid") => {
                return AuthDecision::Unavailable(format!("cannot load signing keys: {e}"));
            }
            Err(e) => return AuthDecision::Unauthenticated(format!("invalid token: {e}")),
        };
        self.state.lock().expect("lock").known_kids.insert(kid);
        let now = chrono::Utc::now().timestamp();
        let skew = CLOCK_SKEW.as_secs() as i64;
        for claim in ["iat", "nbf"] {
            if let Some(t) = claims.get(claim).and_then(|v| v.as_i64())
                && t > now + skew
            {
                return AuthDecision::Unauthenticated(format!("token {claim} is in the future"));
            }
        }
        if claims.get("email_verified").and_then(|v| v.as_bool()) != Some(true) {
            return AuthDecision::Unauthenticated("email_verified is not true".into());
        }
        let Some(email) = claims.get("email").and_then(|v| v.as_str()) else {
            return AuthDecision::Unauthenticated("token has no email claim".into());
        };
        let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(now);
        let ttl = Duration::from_secs((exp - now).clamp(0, 3600) as u64);
        let mut st = self.state.lock().expect("lock");
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
        drop(st);
        self.allow(email)
    }
}

#[async_trait::async_trait]
impl PushAuth for OidcAuth {
    async fn check(&self, authorization: Option<&str>) -> AuthDecision {
        let Some(h) = authorization else {
            return AuthDecision::Unauthenticated("missing Authorization header".into());
        };
        let Some(token) = h
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return AuthDecision::Unauthenticated("Authorization is not a Bearer token".into());
        };
        let cached = {
            let st = self.state.lock().expect("lock");
            st.verified
                .get(&sha256_hex(token.as_bytes()))
                .filter(|(_, until)| *until > Instant::now())
                .map(|(email, _)| email.clone())
        };
        match cached {
            Some(email) => self.allow(&email),
            None => self.verify(token).await,
        }
    }
}
