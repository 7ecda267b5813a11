//! Webhook callbacks (DESIGN.md §7): after the completion event is published, POST it to
//! the request's `callback_url`, signed the Standard Webhooks way.
//!
//! A callback runs in its own task, so a slow or failing receiver never blocks, delays or
//! undoes the completion event; the event on `copy-completions` is the source of truth.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Sends callbacks. Built once; cheap to share.
pub struct Callbacks {
    client: reqwest::Client,
    /// `CALLBACK_SIGNING_SECRET`, decoded (`whsec_` + base64, or raw bytes).
    secret: Option<Vec<u8>>,
    /// Total time spent retrying one callback.
    retry_for: Duration,
}

impl Callbacks {
    pub fn new(secret: Option<&str>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            client,
            secret: secret.map(decode_secret).transpose()?,
            retry_for: Duration::from_secs(300),
        })
    }

    /// Posts `body` to `url` in the background, retrying with backoff for a bounded time.
    pub fn spawn(&self, url: String, id: String, body: Vec<u8>) {
        let client = self.client.clone();
        let secret = self.secret.clone();
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(60))
            .with_jitter()
            .without_max_times()
            .with_total_delay(Some(self.retry_for));
        tokio::spawn(async move {
            let send = || post(&client, &url, &id, &body, secret.as_deref());
            match send.retry(policy).await {
                Ok(status) => tracing::info!(callback.status = status, "callback delivered"),
                Err(e) => tracing::warn!(error.message = %e, "callback abandoned after retries"),
            }
        });
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    body: &[u8],
    secret: Option<&[u8]>,
) -> Result<u16, String> {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", &timestamp)
        .body(body.to_vec());
    if let Some(key) = secret {
        req = req.header("webhook-signature", sign(key, id, &timestamp, body));
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(format!("receiver answered {status}"))
    }
}

/// `v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">`.
pub fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{sig}")
}

/// Standard Webhooks secrets are `whsec_` followed by base64; anything else is used as is.
pub fn decode_secret(s: &str) -> anyhow::Result<Vec<u8>> {
    match s.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| {
                anyhow::anyhow!("CALLBACK_SIGNING_SECRET: whsec_ part is not base64: {e}")
            }),
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
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
