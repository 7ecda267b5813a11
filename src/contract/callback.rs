//! The callback message on `copy-callbacks` (DESIGN.md §7): the completion event's JSON as
//! data, and where to post it as attributes. Published before the completion delivery is
//! acked; posted inside its own push delivery to `/pubsub/copy-callbacks`.

use std::collections::BTreeMap;

use super::{OutMessage, Rejection, attr};

/// What makes a message a callback message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The request's `callback_url`, as validated by the request stage.
    pub url: String,
    /// The Standard Webhooks `webhook-id`: the event's `ce-id`, the same on every attempt, so
    /// receivers de-duplicate on it.
    pub webhook_id: String,
    pub request_id: String,
}

impl Callback {
    /// The message: the event JSON as data, our attributes, the worker's seal and
    /// `traceparent` when given.
    pub fn to_message(
        &self,
        event_json: Vec<u8>,
        seal: Option<String>,
        traceparent: Option<&str>,
    ) -> OutMessage {
        let mut attributes = BTreeMap::new();
        if let Some(seal) = seal {
            attributes.insert(attr::CALLBACK_SEAL.into(), seal);
        }
        attributes.insert(attr::REQUEST_ID.into(), self.request_id.clone());
        attributes.insert(attr::CALLBACK_URL.into(), self.url.clone());
        attributes.insert(attr::WEBHOOK_ID.into(), self.webhook_id.clone());
        if let Some(tp) = traceparent {
            attributes.insert(attr::TRACEPARENT.into(), tp.to_owned());
        }
        OutMessage {
            data: event_json,
            attributes,
        }
    }

    /// Reads a delivery's attributes.
    pub fn parse(attributes: &BTreeMap<String, String>) -> Result<Self, Rejection> {
        let get = |key: &'static str| {
            attributes
                .get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| Rejection::new(key, "is required on a callback message"))
        };
        Ok(Self {
            url: get(attr::CALLBACK_URL)?,
            webhook_id: get(attr::WEBHOOK_ID)?,
            request_id: get(attr::REQUEST_ID)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_message_reads_back_and_names_a_missing_attribute() {
        let cb = Callback {
            url: "https://hooks.example.com/done".into(),
            webhook_id: "r-1:succeeded".into(),
            request_id: "r-1".into(),
        };
        let msg = cb.to_message(
            b"{}".to_vec(),
            Some("v1,seal".into()),
            Some("00-abc-def-01"),
        );
        assert_eq!(msg.attributes.len(), 5);
        assert_eq!(msg.attributes["callback_seal"], "v1,seal");
        assert_eq!(Callback::parse(&msg.attributes).unwrap(), cb);
        let mut missing = msg.attributes.clone();
        missing.remove(attr::CALLBACK_URL);
        let e = Callback::parse(&missing).unwrap_err();
        assert!(e.to_string().contains("callback_url"), "{e}");
    }
}
