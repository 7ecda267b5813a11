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
//! as a signed token ([`check_claims`](claims::check_claims): `iss`, `aud`, `exp`, `iat`/`nbf`, `email_verified`,
//! `email`), and still verifies in full any token that keeps a signature. Without that mode a
//! signature-removed token is refused with a message that names the mode. [`anchor`] holds
//! that mode to the service's own settings: its tokens are refused while the invoker check is
//! not confirmed on.

pub(crate) mod anchor;
mod claims;
mod keys;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use google_cloud_auth::credentials::idtoken::verifier::{Builder, Verifier};

use super::auth::{AuthDecision, PushAuth};
use crate::domain::sha256_hex;

/// Clock skew allowed on `exp`, `iat` and `nbf`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// At most one JWKS fetch for never-seen `kid`s per interval.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
/// Longest wait for the verifier (a JWKS fetch included) before asking for a retry (DESIGN.md §4).
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
    /// Whether that fetch failed to load the JWKS, so a limited `kid` asks for a retry instead of being refused for its token.
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
