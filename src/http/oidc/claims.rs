//! What a token must say: its header (`alg`, `kid`) and the claims the upstream verifier
//! leaves unchecked, for signed tokens and for those whose signature Cloud Run removed.

use std::collections::HashSet;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::{CLOCK_SKEW, GOOGLE_ISSUERS, OidcAuth, SIGNATURE_REMOVED};
use crate::http::auth::AuthDecision;

impl OidcAuth {
    /// A token whose signature Cloud Run removed: its claims, checked as a signed token's are,
    /// when this worker is behind Cloud Run; otherwise a refusal that says which mode fits.
    pub(super) fn signature_removed(&self, token: &str) -> Result<String, AuthDecision> {
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
pub(super) fn short(s: &str) -> &str {
    s.char_indices().nth(64).map_or(s, |(i, _)| &s[..i])
}

/// The `kid` of an RS256 token, read before any network call.
pub(super) fn header_kid(token: &str) -> Result<String, AuthDecision> {
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
pub(super) fn check_claims(
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
