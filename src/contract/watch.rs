//! The watch message of the previous release on `copy-operations` (DESIGN.md, "Upgrading"):
//! the normalised request as data, and the operation, attempt and acceptance time as
//! attributes. The worker no longer writes it; while an upgrade drains the old subscription
//! (`COPY_OPERATIONS_DRAIN`), it reads what is left.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Rejection, attr};

/// The attributes that make a message a watch message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The long-running operation name, as Vertex AI returned it. `None` for a *pending*
    /// watch: the copy is not started yet (waiting for its turn), or CopyModel answered
    /// ALREADY_EXISTS and the destination could not be read yet (the first copy is probably
    /// still running), so the watch stage reads the destination instead of an operation.
    /// The attribute is then absent.
    pub operation: Option<String>,
    /// The copy attempt, from 1.
    pub attempt: u32,
    /// When the request stage accepted the request.
    pub accepted_at: DateTime<Utc>,
}

impl Watch {
    /// Reads a delivery's attributes. `publish_time` stands in for a missing `accepted_at`.
    pub fn parse(
        attributes: &BTreeMap<String, String>,
        publish_time: Option<&str>,
    ) -> Result<Self, Rejection> {
        let operation = attributes
            .get(attr::OPERATION)
            .filter(|op| !op.is_empty())
            .cloned();
        let attempt = match attributes.get(attr::ATTEMPT) {
            None => 1,
            Some(s) => s.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                Rejection::new(
                    attr::ATTEMPT,
                    format!("must be a positive integer, got {s:?}"),
                )
            })?,
        };
        let accepted_at = attributes
            .get(attr::ACCEPTED_AT)
            .map(String::as_str)
            .or(publish_time)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| Rejection::new(attr::ACCEPTED_AT, "must be an RFC 3339 time"))?;
        Ok(Self {
            operation,
            attempt,
            accepted_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_watch_message_is_read_with_or_without_its_operation() {
        let attrs = BTreeMap::from([
            (
                "operation".to_owned(),
                "projects/1/locations/l/operations/2".to_owned(),
            ),
            ("attempt".to_owned(), "2".to_owned()),
            ("accepted_at".to_owned(), "2026-11-22T10:00:00Z".to_owned()),
        ]);
        let w = Watch::parse(&attrs, None).unwrap();
        assert_eq!(
            w.operation.as_deref(),
            Some("projects/1/locations/l/operations/2")
        );
        assert_eq!(w.attempt, 2);
        let pending = BTreeMap::from([("attempt".to_owned(), "1".to_owned())]);
        let w = Watch::parse(&pending, Some("2026-11-22T10:00:00Z")).unwrap();
        assert_eq!(w.operation, None, "a pending watch names no operation");
        let bad = BTreeMap::from([("attempt".to_owned(), "0".to_owned())]);
        assert_eq!(
            Watch::parse(&bad, Some("2026-11-22T10:00:00Z"))
                .unwrap_err()
                .field,
            "attempt"
        );
    }
}
