//! One push delivery as the stages read it: the message Pub/Sub (or the copy-start queue)
//! handed over, decoded from its envelope by `http::envelope` (docs/DESIGN.md §4).

use std::collections::BTreeMap;

/// A decoded push delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    pub message_id: String,
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub publish_time: Option<String>,
    pub ordering_key: Option<String>,
    pub subscription: Option<String>,
    /// Present only on subscriptions with a dead-letter policy.
    pub delivery_attempt: Option<i64>,
}

impl PushMessage {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}
