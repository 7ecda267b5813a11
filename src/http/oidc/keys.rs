//! The verifier behind its lock, the unknown-`kid` limiter and the cache of verified tokens.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::claims::{check_claims, header_kid, short};
use super::{KID_NOT_IN_JWKS, MAX_CACHED_TOKENS, OidcAuth};
use crate::domain::sha256_hex;
use crate::http::auth::AuthDecision;

impl OidcAuth {
    pub(super) async fn verify(&self, token: &str) -> Result<String, AuthDecision> {
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
