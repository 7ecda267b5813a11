//! The wire contract of DESIGN.md §3: every message copy-worker reads or writes, and the
//! attribute keys they carry. Nothing here talks to a service; the stages, the CLI and the
//! HTTP routes all build and read messages through these types, so a key or a field is
//! spelled in one place.
//!
//! - [`attr`]: attribute keys, and which of them belong to one stage only.
//! - [`rejection`]: why a request was refused (the field and the rule).
//! - [`request`]: the copy request as JSON (serde, unknown fields refused).
//! - [`task`]: the body of a copy-start or poll task (Cloud Tasks).
//! - [`unique_keys`]: JSON objects with a key given twice are refused.
//! - [`watch`]: the previous release's watch message, read only while an upgrade drains it.
//! - [`event`]: the completion event (CloudEvents, binary mode) on `copy-completions`.
//! - [`push`]: one decoded push delivery, the input of every stage.
//! - [`callback`]: the callback message on `copy-callbacks`.
//! - [`dead_letter`]: the dead-letter message, and what a replay puts back.

pub(crate) mod attr;
pub(crate) mod callback;
pub(crate) mod dead_letter;
pub(crate) mod event;
pub(crate) mod push;
pub(crate) mod rejection;
pub(crate) mod request;
pub(crate) mod task;
pub(crate) mod unique_keys;
pub(crate) mod watch;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

pub use rejection::Rejection;

/// A message to publish: data and attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutMessage {
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
}

/// RFC 3339 in UTC with second precision, as in DESIGN.md's examples.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Cuts `s` to at most `max` bytes without splitting a character.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
