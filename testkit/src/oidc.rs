//! A local OIDC issuer: serves a JWKS over HTTP and mints RS256 ID tokens shaped like the
//! ones Pub/Sub push sends, plus the hostile tokens an attacker would try (DESIGN.md §9).
//!
//! # Behaviour worth knowing
//! - Keys are 2048-bit RSA, generated per issuer with `aws-lc-rs` (the crypto backend that
//!   `jsonwebtoken` already uses in this workspace), so no key material is checked in.
//! - [`OidcIssuer::rotate`] makes a new key current and keeps the old one published, as
//!   Google's JWKS does during a rotation; [`OidcIssuer::retire_old_keys`] drops the old ones.
//! - [`JwksMode`] makes the JWKS answer 503 or hang, to test an unreachable issuer.
//! - [`OidcIssuer::jwks_fetches`] counts every JWKS request, whatever the mode.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

/// The email of the push service account that [`OidcIssuer::mint`] puts in tokens by default.
pub const DEFAULT_EMAIL: &str = "push-invoker@it-project.iam.gserviceaccount.com";
/// The issuer of Google ID tokens.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// How the JWKS endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwksMode {
    /// Serve the published keys.
    Serve,
    /// Answer 503, as an issuer outage looks to the verifier.
    Unavailable,
    /// Accept the request and never answer.
    Hang,
}

struct SigningKey {
    kid: String,
    pair: Arc<KeyPair>,
    jwk: Value,
}

struct Keys {
    current: usize,
    all: Vec<SigningKey>,
}

struct Inner {
    keys: Mutex<Keys>,
    mode: Mutex<JwksMode>,
    fetches: AtomicUsize,
    next_kid: AtomicUsize,
}

/// A local issuer of Google-style ID tokens with its JWKS on `127.0.0.1`.
pub struct OidcIssuer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    audience: String,
    email: String,
    task: JoinHandle<()>,
}

impl Drop for OidcIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn new_key(kid: String) -> anyhow::Result<SigningKey> {
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow::anyhow!("RSA keygen"))?;
    let parts = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let jwk = json!({
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
        "n": b64(&parts.n), "e": b64(&parts.e),
    });
    Ok(SigningKey {
        kid,
        pair: Arc::new(pair),
        jwk,
    })
}

async fn jwks(State(inner): State<Arc<Inner>>) -> Response {
    inner.fetches.fetch_add(1, Ordering::SeqCst);
    let mode = *lock(&inner.mode);
    match mode {
        JwksMode::Serve => {
            let keys: Vec<Value> = lock(&inner.keys)
                .all
                .iter()
                .map(|k| k.jwk.clone())
                .collect();
            axum::Json(json!({ "keys": keys })).into_response()
        }
        JwksMode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "jwks down").into_response(),
        JwksMode::Hang => std::future::pending().await,
    }
}

impl OidcIssuer {
    /// Starts an issuer whose default tokens carry `aud = audience` and `email = email`.
    pub async fn start(audience: &str, email: &str) -> anyhow::Result<Self> {
        Self::start_on(0, audience, email).await
    }

    /// As [`OidcIssuer::start`], with the JWKS on `port` of 127.0.0.1 (0: a free one).
    pub async fn start_on(port: u16, audience: &str, email: &str) -> anyhow::Result<Self> {
        let first = new_key("it-key-0".into())?;
        let inner = Arc::new(Inner {
            keys: Mutex::new(Keys {
                current: 0,
                all: vec![first],
            }),
            mode: Mutex::new(JwksMode::Serve),
            fetches: AtomicUsize::new(0),
            next_kid: AtomicUsize::new(1),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding the JWKS server to 127.0.0.1:{port}"))?;
        let addr = listener.local_addr()?;
        let router = axum::Router::new()
            .route("/oauth2/v3/certs", axum::routing::get(jwks))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            inner,
            addr,
            audience: audience.to_owned(),
            email: email.to_owned(),
            task,
        })
    }

    /// The JWKS URL, for `PUSH_JWKS_URL`.
    pub fn jwks_url(&self) -> String {
        format!("http://{}/oauth2/v3/certs", self.addr)
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> String {
        let keys = lock(&self.inner.keys);
        keys.all[keys.current].kid.clone()
    }

    /// How many times the JWKS was requested.
    pub fn jwks_fetches(&self) -> usize {
        self.inner.fetches.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: JwksMode) {
        *lock(&self.inner.mode) = mode;
    }

    /// Shorthand for [`JwksMode::Unavailable`] / [`JwksMode::Serve`].
    pub fn set_unreachable(&self, down: bool) {
        self.set_mode(if down {
            JwksMode::Unavailable
        } else {
            JwksMode::Serve
        });
    }

    /// Makes a new key current (the old ones stay published); returns its `kid`.
    pub fn rotate(&self) -> String {
        let n = self.inner.next_kid.fetch_add(1, Ordering::SeqCst);
        let key = new_key(format!("it-key-{n}")).expect("RSA keygen");
        let kid = key.kid.clone();
        let mut keys = lock(&self.inner.keys);
        keys.all.push(key);
        keys.current = keys.all.len() - 1;
        kid
    }

    /// Unpublishes every key but the current one.
    pub fn retire_old_keys(&self) {
        let mut keys = lock(&self.inner.keys);
        let i = keys.current;
        let current = keys.all.swap_remove(i);
        keys.all = vec![current];
        keys.current = 0;
    }

    /// The claims of a default token: what Pub/Sub push sends.
    pub fn default_claims(&self) -> Map<String, Value> {
        let now = chrono::Utc::now().timestamp();
        let v = json!({
            "iss": GOOGLE_ISSUER,
            "aud": self.audience,
            "azp": "1234567890",
            "sub": "1234567890",
            "email": self.email,
            "email_verified": true,
            "iat": now,
            "exp": now + 3600,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    /// A valid RS256 token with `overrides` applied to the default claims. An override
    /// whose value is `null` removes that claim (use [`Self::mint_claims`] for a real null).
    pub fn mint(&self, overrides: Value) -> String {
        let mut claims = self.default_claims();
        if let Value::Object(o) = overrides {
            for (k, v) in o {
                if v.is_null() {
                    claims.remove(&k);
                } else {
                    claims.insert(k, v);
                }
            }
        }
        self.mint_claims(&Value::Object(claims))
    }

    /// Signs exactly `claims` with the current key.
    pub fn mint_claims(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid()});
        self.sign_rs256(&header, claims)
    }

    /// Signs `header` and `claims` with the current key, whatever the header says.
    pub fn sign_rs256(&self, header: &Value, claims: &Value) -> String {
        let pair = {
            let keys = lock(&self.inner.keys);
            keys.all[keys.current].pair.clone()
        };
        sign(&pair, header, claims)
    }

    /// `alg: none` with default claims and an empty signature.
    pub fn mint_alg_none(&self) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.kid()});
        format!(
            "{}.",
            signing_input(&header, &Value::Object(self.default_claims()))
        )
    }

    /// HS256, keyed with the issuer's public key as published (the RS/HS confusion attack).
    pub fn mint_hs256_with_public_key(&self) -> String {
        let (kid, jwk) = {
            let keys = lock(&self.inner.keys);
            let k = &keys.all[keys.current];
            (k.kid.clone(), k.jwk.to_string())
        };
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
        let input = signing_input(&header, &Value::Object(self.default_claims()));
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, jwk.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    }

    /// A correctly signed token without `kid` in its header.
    pub fn mint_without_kid(&self) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT"});
        self.sign_rs256(&header, &Value::Object(self.default_claims()))
    }

    /// A correctly signed token whose header names `kid`, which the JWKS may not have.
    pub fn mint_with_kid(&self, kid: &str) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        self.sign_rs256(&header, &Value::Object(self.default_claims()))
    }

    /// A default token whose signature has one bit flipped.
    pub fn mint_bad_signature(&self) -> String {
        let token = self.mint(json!({}));
        let (input, sig) = token.rsplit_once('.').expect("three parts");
        let mut raw = URL_SAFE_NO_PAD.decode(sig).expect("signature is base64url");
        raw[10] ^= 0x01;
        format!("{input}.{}", b64(&raw))
    }

    /// A default token whose claims were changed after signing (signature of other claims).
    pub fn mint_tampered(&self, overrides: Value) -> String {
        let good = self.mint(json!({}));
        let forged = self.mint(overrides);
        let sig = good.rsplit('.').next().expect("signature");
        let (input, _) = forged.rsplit_once('.').expect("three parts");
        format!("{input}.{sig}")
    }
}

/// A handle on an issuer's keys for Google's side of the test stack (the Cloud Run front):
/// it verifies tokens as Google's front ends do, and mints the tokens Pub/Sub attaches to
/// pushes. It shares the issuer's keys, so a rotation is seen at once.
#[derive(Clone)]
pub struct IssuerKeys {
    inner: Arc<Inner>,
}

impl OidcIssuer {
    /// A handle on this issuer's keys (see [`IssuerKeys`]).
    pub fn keys(&self) -> IssuerKeys {
        IssuerKeys {
            inner: self.inner.clone(),
        }
    }
}

impl IssuerKeys {
    /// A default-shaped token for `email` and `aud`, signed with the current key: what
    /// Pub/Sub sends with a push whose subscription has an `oidcToken`.
    pub fn mint_for(&self, email: &str, aud: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": GOOGLE_ISSUER, "aud": aud, "azp": "1234567890", "sub": "1234567890",
            "email": email, "email_verified": true, "iat": now, "exp": now + 3600,
        });
        let (kid, pair) = {
            let keys = lock(&self.inner.keys);
            let k = &keys.all[keys.current];
            (k.kid.clone(), k.pair.clone())
        };
        sign(
            &pair,
            &json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
            &claims,
        )
    }

    /// The claims of `token` when it is an RS256 token signed by a published key of this
    /// issuer and not expired; otherwise why not.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT".into());
        };
        let json = |part: &str| -> Result<Value, String> {
            let raw = URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
            serde_json::from_slice(&raw).map_err(|e| e.to_string())
        };
        let header = json(h)?;
        if header["alg"] != "RS256" {
            return Err("alg is not RS256".into());
        }
        let public = {
            let keys = lock(&self.inner.keys);
            let key = keys.all.iter().find(|k| header["kid"] == k.kid.as_str());
            key.map(|k| k.pair.public_key().as_ref().to_vec())
        }
        .ok_or("unknown kid")?;
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?;
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            public,
        )
        .verify(format!("{h}.{c}").as_bytes(), &signature)
        .map_err(|_| "bad signature".to_string())?;
        let Value::Object(claims) = json(c)? else {
            return Err("claims are not an object".into());
        };
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp < chrono::Utc::now().timestamp() {
            return Err("expired".into());
        }
        Ok(claims)
    }
}

/// Signs `header` and `claims` with `pair` (RS256).
fn sign(pair: &KeyPair, header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("RS256 signing");
    format!("{input}.{}", b64(&sig))
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}
