//! The Pub/Sub push contract: the envelope Pub/Sub POSTs.
//!
//! Pub/Sub sends both spellings of some fields at once (`messageId` and `message_id`,
//! `publishTime` and `publish_time`), `deliveryAttempt` only when a dead-letter policy is
//! set, and no `data` for attributes-only messages. The parser accepts exactly that.
//!
//! `message.data` must be base64 in the standard alphabet (`+`, `/`) with canonical `=`
//! padding, as Pub/Sub sends it. Nothing else is accepted: no URL-safe alphabet, no missing
//! or extra padding, no whitespace or line breaks, no non-zero trailing bits. An empty string
//! or an absent/null `data` is an empty message (its request is then rejected, not retried).
//!
//! The attributes are screened at this door (`contract::attr::screen_incoming`): a
//! `traceparent` or `waiter` of the wrong shape, and anything beyond Pub/Sub's limits, is
//! dropped and logged, so no stage carries it onto a message it publishes (DESIGN.md §3, §10).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

pub use crate::contract::push::PushMessage;

/// Why a body is not a push envelope (answered 400: it did not come from Pub/Sub).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not JSON of the envelope's shape.
    #[error("body is not a Pub/Sub push envelope: {0}")]
    Shape(String),
    /// `message.data` is not standard base64 with padding, as Pub/Sub sends it.
    #[error("message.data is not standard base64: {0}")]
    Base64(String),
    /// The body is a JSON object without `message`: most likely a subscription with payload
    /// unwrapping (no-wrapper push), which loses the message id and attributes. Configure the
    /// subscription to push the wrapped envelope.
    #[error(
        "body has no `message`: it looks like an unwrapped payload; the push subscription must send the Pub/Sub envelope (no payload unwrapping)"
    )]
    Unwrapped,
    /// The message carries no id under either spelling.
    #[error("message.messageId is missing")]
    NoMessageId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    message: WireMessage,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default)]
    delivery_attempt: Option<i64>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    attributes: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "messageId")]
    message_id_camel: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time_camel: Option<String>,
    #[serde(default)]
    publish_time: Option<String>,
    #[serde(default, rename = "orderingKey")]
    ordering_key: Option<String>,
}

/// Parses a push body. Unknown fields are ignored: Pub/Sub may add some.
pub fn parse_envelope(body: &[u8]) -> Result<PushMessage, EnvelopeError> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| {
        match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
            Ok(obj) if !obj.contains_key("message") => EnvelopeError::Unwrapped,
            _ => EnvelopeError::Shape(e.to_string()),
        }
    })?;
    let m = env.message;
    let message_id = m
        .message_id_camel
        .or(m.message_id)
        .filter(|s| !s.is_empty())
        .ok_or(EnvelopeError::NoMessageId)?;
    let data = match m.data {
        None => Vec::new(),
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(|e| EnvelopeError::Base64(e.to_string()))?,
    };
    let mut attributes = m.attributes.unwrap_or_default();
    let dropped = crate::contract::attr::screen_incoming(&mut attributes);
    if !dropped.is_empty() {
        tracing::warn!(
            message_id,
            ?dropped,
            "attributes of the wrong shape or beyond Pub/Sub's limits dropped at the door"
        );
    }
    Ok(PushMessage {
        message_id,
        data,
        attributes,
        publish_time: m.publish_time_camel.or(m.publish_time),
        ordering_key: m.ordering_key.filter(|s| !s.is_empty()),
        subscription: env.subscription,
        delivery_attempt: env.delivery_attempt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_with_both_spellings_and_delivery_attempt_parses() {
        let body = br#"{"message":{"attributes":{"request_id":"r1"},"data":"eyJhIjoxfQ==",
            "messageId":"42","message_id":"42","publishTime":"2026-11-22T10:00:00Z",
            "publish_time":"2026-11-22T10:00:00Z","orderingKey":"k"},
            "subscription":"projects/p/subscriptions/s","deliveryAttempt":3}"#;
        let m = parse_envelope(body).unwrap();
        assert_eq!(m.message_id, "42");
        assert_eq!(m.data, br#"{"a":1}"#);
        assert_eq!(m.attribute("request_id"), Some("r1"));
        assert_eq!(m.delivery_attempt, Some(3));
        assert_eq!(m.ordering_key.as_deref(), Some("k"));
        assert_eq!(m.publish_time.as_deref(), Some("2026-11-22T10:00:00Z"));
    }

    /// The probe sent a push whose `traceparent` and `waiter` were 1 KiB of junk; both were
    /// carried onto every message the worker published.
    #[test]
    fn junk_traceparent_and_waiter_are_dropped_at_the_door() {
        let junk = "x".repeat(1024);
        let body = format!(
            r#"{{"message":{{"attributes":{{"traceparent":"{junk}","waiter":"{junk}","k":"v"}},"messageId":"7"}}}}"#
        );
        let m = parse_envelope(body.as_bytes()).unwrap();
        assert_eq!(m.attribute("traceparent"), None);
        assert_eq!(m.attribute("waiter"), None);
        assert_eq!(m.attribute("k"), Some("v"));
    }

    #[test]
    fn attributes_only_message_without_data_or_delivery_attempt_parses() {
        let body = br#"{"message":{"attributes":{"a":"b"},"message_id":"7"},"subscription":"s"}"#;
        let m = parse_envelope(body).unwrap();
        assert!(m.data.is_empty());
        assert_eq!(m.delivery_attempt, None);
        assert_eq!(m.message_id, "7");
    }

    #[test]
    fn bodies_that_are_not_envelopes_are_refused_with_the_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "not a Pub/Sub push envelope"),
            (br#"{"source_model":"x"}"#, "unwrapped payload"),
            (b"[]", "not a Pub/Sub push envelope"),
            (b"", "not a Pub/Sub push envelope"),
            (br#"{"message":null}"#, "not a Pub/Sub push envelope"),
            (
                br#"{"message":{"messageId":1}}"#,
                "not a Pub/Sub push envelope",
            ),
            (
                br#"{"message":{"messageId":"1"},"message":{"messageId":"2"}}"#,
                "duplicate field",
            ),
            (br#"{"message":{"data":"!!!","messageId":"1"}}"#, "base64"),
            (br#"{"message":{"data":"eyJ"}}"#, "messageId is missing"),
            (br#"{"message":{"data":5,"messageId":"1"}}"#, "envelope"),
            (
                br#"{"message":{"attributes":{"a":1},"messageId":"1"}}"#,
                "envelope",
            ),
        ];
        for (body, want) in cases {
            let e = parse_envelope(body).unwrap_err().to_string();
            assert!(e.contains(want), "{:?}: {e}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn only_standard_padded_base64_is_accepted_as_data() {
        let parse = |data: &str| {
            let body = format!(r#"{{"message":{{"data":"{data}","messageId":"1"}}}}"#);
            parse_envelope(body.as_bytes()).map(|m| m.data)
        };
        assert_eq!(parse("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(parse("YQ==").unwrap(), b"a");
        assert_eq!(parse("").unwrap(), b"");
        for bad in [
            "-_8=", "YQ", "YQ=", "YQ===", "Y Q==", "YQ==\\n", "YR==", "=", "YQ==YQ==",
        ] {
            assert!(
                matches!(parse(bad), Err(EnvelopeError::Base64(_))),
                "{bad:?} was accepted"
            );
        }
        let null = parse_envelope(br#"{"message":{"data":null,"messageId":"1"}}"#).unwrap();
        assert!(null.data.is_empty());
    }

    #[test]
    fn deeply_nested_json_is_refused_without_a_stack_overflow() {
        let mut body = String::from(r#"{"message":{"messageId":"1","data":"#);
        body.push_str(&"[".repeat(100_000));
        let e = parse_envelope(body.as_bytes()).unwrap_err();
        assert!(matches!(e, EnvelopeError::Shape(_)));
    }
}
