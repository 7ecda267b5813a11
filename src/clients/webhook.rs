//! Webhook callbacks (DESIGN.md §7): POST the completion event to the request's
//! `callback_url`, signed the Standard Webhooks way by the `standardwebhooks` crate.
//!
//! One attempt per call, inside the push delivery of `copy-callbacks`
//! (`pipeline::callback_stage`): Pub/Sub's retry policy spaces the attempts, so nothing runs
//! after a delivery is answered.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use standardwebhooks::Webhook;

/// `CALLBACK_SIGNING_SECRET` could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// A `whsec_` secret whose rest is not base64: copy the secret again, whole.
    #[error("whsec_ part is not base64: {0}")]
    NotBase64(#[from] base64::DecodeError),
}

/// Why one callback attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The receiver could not be reached, or did not answer within 10 s.
    #[error("callback not delivered: {0}")]
    Transport(#[from] reqwest::Error),
    /// The receiver answered something other than 2xx.
    #[error("receiver answered {0}")]
    Status(reqwest::StatusCode),
    /// The event could not be signed (its body is not UTF-8, which the worker never sends).
    #[error("cannot sign the callback: {0}")]
    Sign(String),
}

impl CallbackError {
    /// Whether trying again cannot help: the receiver refused the event (4xx other than
    /// 408 Request Timeout, 425 Too Early and 429 Too Many Requests), redirected it (never
    /// followed, so the same answer would come back), or it cannot be signed.
    pub fn is_permanent(&self) -> bool {
        match self {
            CallbackError::Transport(_) => false,
            CallbackError::Status(s) => {
                s.is_redirection()
                    || (s.is_client_error() && ![408, 425, 429].contains(&s.as_u16()))
            }
            CallbackError::Sign(_) => true,
        }
    }
}

/// Sends callbacks. Built once; cheap to share.
pub struct Callbacks {
    client: reqwest::Client,
    /// `CALLBACK_SIGNING_SECRET`, decoded (`whsec_` + base64, or raw bytes).
    signer: Option<Arc<Webhook>>,
    /// A key of its own, derived from the same secret, that seals the worker's callback
    /// messages (see [`Callbacks::seal`]).
    sealer: Option<Arc<Webhook>>,
}

impl Callbacks {
    pub fn new(secret: Option<&str>) -> Result<Self, SecretError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a reqwest client with rustls builds");
        let key = secret.map(decode_secret).transpose()?;
        let webhook =
            |k: Vec<u8>| Arc::new(Webhook::from_bytes(k).expect("any key length is accepted"));
        let sealer = key.as_ref().map(|k| {
            // Its own key: a seal is never a valid webhook signature, nor the reverse.
            let mut derived = b"copy-worker callback seal\n".to_vec();
            derived.extend_from_slice(k);
            webhook(crate::domain::sha256_hex(&derived).into_bytes())
        });
        Ok(Self {
            client,
            signer: key.map(webhook),
            sealer,
        })
    }

    /// The seal of a callback message (DESIGN.md §7): an HMAC-SHA256, by the Standard Webhooks
    /// library, over its URL, request id, webhook id and event, keyed from
    /// `CALLBACK_SIGNING_SECRET`, which only the worker holds. Whoever may publish to
    /// `copy-callbacks` but holds no secret cannot make the worker sign and post a body it
    /// did not produce. `None` without a secret (callbacks are then unsigned anyway).
    pub fn seal(
        &self,
        url: &str,
        request_id: &str,
        webhook_id: &str,
        event: &[u8],
    ) -> Option<String> {
        let sealer = self.sealer.as_ref()?;
        let mut payload = format!("{url}\n{request_id}\n").into_bytes();
        payload.extend_from_slice(event);
        sealer.sign(webhook_id, 0, &payload).ok()
    }

    /// Whether `seal` is this worker's seal of that callback (always, without a secret).
    pub fn sealed_here(
        &self,
        seal: Option<&str>,
        (url, request_id, webhook_id): (&str, &str, &str),
        event: &[u8],
    ) -> bool {
        let Some(want) = self.seal(url, request_id, webhook_id, event) else {
            return true;
        };
        let got = seal.unwrap_or_default().as_bytes();
        // Compared in constant time: the length is public, the bytes are not.
        got.len() == want.len()
            && got
                .iter()
                .zip(want.as_bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Posts `body` to `url` once (no redirects, 10 s timeout); `Ok` is the 2xx status.
    pub async fn post(&self, url: &str, id: &str, body: &[u8]) -> Result<u16, CallbackError> {
        post(&self.client, url, id, body, self.signer.as_deref()).await
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    body: &[u8],
    signer: Option<&Webhook>,
) -> Result<u16, CallbackError> {
    let timestamp = chrono::Utc::now().timestamp();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header(standardwebhooks::HEADER_WEBHOOK_ID, id)
        .header(
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        )
        .body(body.to_vec());
    if let Some(w) = signer {
        let sig = w
            .sign(id, timestamp, body)
            .map_err(|e| CallbackError::Sign(e.to_string()))?;
        req = req.header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, sig);
    }
    let resp = req.send().await?;
    let status = resp.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(CallbackError::Status(status))
    }
}

/// Standard Webhooks secrets are `whsec_` followed by base64; anything else is used as is.
pub fn decode_secret(s: &str) -> Result<Vec<u8>, SecretError> {
    match s.strip_prefix("whsec_") {
        Some(b64) => Ok(base64::engine::general_purpose::STANDARD.decode(b64)?),
        None => Ok(s.as_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's test vectors.
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = Webhook::from_bytes(key)
            .unwrap()
            .sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#,
            )
            .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(decode_secret("whsec_!!!").is_err());
    }

    #[test]
    fn a_seal_holds_for_its_own_callback_only_and_is_not_a_webhook_signature() {
        let c = Callbacks::new(Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        let cb = ("https://h.example.com/x", "r-1", "r-1:succeeded");
        let seal = c.seal(cb.0, cb.1, cb.2, b"{}").unwrap();
        assert!(c.sealed_here(Some(&seal), cb, b"{}"));
        assert!(!c.sealed_here(Some(&seal), cb, b"{\"forged\":1}"));
        assert!(!c.sealed_here(
            Some(&seal),
            ("https://h.example.com/y", "r-1", "r-1:succeeded"),
            b"{}"
        ));
        assert!(!c.sealed_here(None, cb, b"{}"));
        let sig = c
            .signer
            .as_ref()
            .unwrap()
            .sign(cb.2, 0, b"https://h.example.com/x\nr-1\n{}")
            .unwrap();
        assert_ne!(sig, seal, "its own key");
        // Without a secret nothing is sealed, and nothing is refused.
        let open = Callbacks::new(None).unwrap();
        assert_eq!(open.seal(cb.0, cb.1, cb.2, b"{}"), None);
        assert!(open.sealed_here(None, cb, b"{}"));
        assert_eq!(decode_secret("raw").unwrap(), b"raw");
    }
}
