//! The filter of a temporary subscription, one builder for all of them: a waiter's tag, a
//! waiter's request ids, or the attributes `copy-worker events` filters on, each as far as
//! Pub/Sub's limit allows (<https://cloud.google.com/pubsub/docs/subscription-message-filter>).
//! The filter only saves traffic: what does not fit is checked by the reader, which always
//! checks for itself (the local emulator applies no filter at all).

use std::collections::HashMap;

use super::WaiterTag;
use crate::contract::attr;

/// Pub/Sub's limit on a filter expression.
pub const MAX_FILTER_BYTES: usize = 256;

/// What a temporary subscription filters on.
#[derive(Debug, Clone, Copy)]
pub enum FilterBy<'a> {
    /// The subscription's tag, which its waiter's own requests carry (`publish --wait`).
    Tag,
    /// These request ids, as far as the filter limit allows (`copy-worker wait`).
    RequestIds(&'a [String]),
    /// Completion events' plain attributes (`copy-worker events`).
    Events(&'a EventFilter),
}

impl FilterBy<'_> {
    /// The filter expression (empty: none) of a subscription whose tag is `tag`.
    pub fn expression(&self, tag: &WaiterTag) -> String {
        match self {
            FilterBy::Tag => tag_filter(tag),
            FilterBy::RequestIds(ids) => request_id_filter(ids),
            FilterBy::Events(f) => f.subscription_filter(),
        }
    }
}

/// The filters of `copy-worker events`, on completion events' plain attributes: in the
/// subscription filter where they fit, and always applied by the reader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Any of these statuses; empty: all.
    pub status: Vec<String>,
    /// Any of these request ids; empty: all.
    pub request_ids: Vec<String>,
    pub destination_project: Option<String>,
}

impl EventFilter {
    /// Whether an event with these attributes passes.
    pub fn matches(&self, attributes: &HashMap<String, String>) -> bool {
        let any = |values: &[String], key: &str| {
            values.is_empty() || attributes.get(key).is_some_and(|v| values.contains(v))
        };
        any(&self.status, attr::STATUS)
            && any(&self.request_ids, attr::REQUEST_ID)
            && self
                .destination_project
                .as_ref()
                .is_none_or(|p| attributes.get(attr::DESTINATION_PROJECT) == Some(p))
    }

    /// The subscription filter: every clause that fits, most selective first (request ids,
    /// then destination project, then status); what does not fit is still applied by
    /// [`EventFilter::matches`].
    pub fn subscription_filter(&self) -> String {
        Builder::default()
            .and_first_fitting([any_of(attr::REQUEST_ID, &self.request_ids)])
            .and_first_fitting([self
                .destination_project
                .as_ref()
                .and_then(|p| any_of(attr::DESTINATION_PROJECT, std::slice::from_ref(p)))])
            .and_first_fitting([any_of(attr::STATUS, &self.status)])
            .0
    }
}

/// The filter of a tagged waiter: its own requests' events, whatever their number.
pub fn tag_filter(tag: &WaiterTag) -> String {
    equals(attr::WAITER, tag.as_str())
}

/// The narrowest filter on `request_id` within [`MAX_FILTER_BYTES`]: the ids themselves, else
/// their common prefix, else none (empty).
pub fn request_id_filter(ids: &[String]) -> String {
    let prefix = common_prefix(ids);
    let by_prefix = (!prefix.is_empty()).then(|| {
        format!(
            "hasPrefix(attributes.{}, {})",
            attr::REQUEST_ID,
            quoted(prefix)
        )
    });
    Builder::default()
        .and_first_fitting([or_list(attr::REQUEST_ID, ids), by_prefix])
        .0
}

/// A filter built clause by clause, never longer than [`MAX_FILTER_BYTES`].
#[derive(Default)]
struct Builder(String);

impl Builder {
    /// ANDs on the first of `choices` with which the filter still fits; none that fits (or
    /// none at all) leaves the filter as it was.
    fn and_first_fitting(self, choices: impl IntoIterator<Item = Option<String>>) -> Self {
        for clause in choices.into_iter().flatten() {
            let joined = if self.0.is_empty() {
                clause
            } else {
                format!("{} AND {clause}", self.0)
            };
            if joined.len() <= MAX_FILTER_BYTES {
                return Self(joined);
            }
        }
        self
    }
}

/// A quoted attribute value (request ids are `[A-Za-z0-9._:-]`, needing no escapes).
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// `attributes.{key} = "{value}"`.
fn equals(key: &str, value: &str) -> String {
    format!("attributes.{key} = {}", quoted(value))
}

/// `a OR b OR …`, bare: for a filter of this clause alone. `None` for no values.
fn or_list(key: &str, values: &[String]) -> Option<String> {
    let parts: Vec<String> = values.iter().map(|v| equals(key, v)).collect();
    (!parts.is_empty()).then(|| parts.join(" OR "))
}

/// One value's clause, or `(a OR b …)` for several: a clause to AND with others.
fn any_of(key: &str, values: &[String]) -> Option<String> {
    let list = or_list(key, values)?;
    Some(if values.len() == 1 {
        list
    } else {
        format!("({list})")
    })
}

fn common_prefix(ids: &[String]) -> &str {
    let Some(first) = ids.first() else {
        return "";
    };
    let mut len = first.len();
    for id in &ids[1..] {
        len = first
            .bytes()
            .zip(id.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    &first[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize, prefix: &str) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:04}")).collect()
    }

    #[test]
    fn a_few_ids_are_filtered_exactly() {
        let f = request_id_filter(&["a".into(), "b-2".into()]);
        assert_eq!(
            f,
            r#"attributes.request_id = "a" OR attributes.request_id = "b-2""#
        );
    }

    #[test]
    fn many_ids_fall_back_to_their_common_prefix_then_to_no_filter() {
        let f = request_id_filter(&ids(60, "nightly-2026-11-22-"));
        assert_eq!(
            f,
            r#"hasPrefix(attributes.request_id, "nightly-2026-11-22-00")"#
        );
        assert!(f.len() <= MAX_FILTER_BYTES);
        let mut mixed = ids(60, "a");
        mixed.push("zzz".into());
        assert_eq!(request_id_filter(&mixed), "");
        assert_eq!(request_id_filter(&[]), "");
    }

    #[test]
    fn a_tagged_waiter_filters_on_its_tag_in_a_few_bytes_whatever_the_batch() {
        let tag = WaiterTag::generate();
        let f = tag_filter(&tag);
        assert_eq!(f, format!("attributes.waiter = \"{}\"", tag.as_str()));
        assert!(f.len() < 64, "{f}");
        // The ids of the same batch would not fit: about five long ids fill 256 bytes.
        let long = ids(20, "nightly-2026-11-22-pipeline-model-copy-");
        let exact = long[..5]
            .iter()
            .map(|id| format!("attributes.request_id = \"{id}\""))
            .collect::<Vec<_>>()
            .join(" OR ");
        assert!(exact.len() > MAX_FILTER_BYTES, "{}", exact.len());
    }

    #[test]
    fn the_filter_never_exceeds_pubsubs_limit() {
        for n in [1, 5, 9, 10, 11, 50] {
            let f = request_id_filter(&ids(n, "r"));
            assert!(f.len() <= MAX_FILTER_BYTES, "{n}: {}", f.len());
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        crate::contract::attr::from_pairs(pairs)
    }

    #[test]
    fn filters_match_on_the_plain_attributes() {
        let f = EventFilter {
            status: vec!["failed".into(), "rejected".into()],
            request_ids: vec![],
            destination_project: Some("ml-serving".into()),
        };
        assert!(f.matches(&attrs(&[
            ("status", "failed"),
            ("destination_project", "ml-serving")
        ])));
        assert!(!f.matches(&attrs(&[
            ("status", "succeeded"),
            ("destination_project", "ml-serving")
        ])));
        assert!(!f.matches(&attrs(&[
            ("status", "failed"),
            ("destination_project", "other")
        ])));
        assert!(EventFilter::default().matches(&attrs(&[])));
        assert_eq!(
            f.subscription_filter(),
            r#"attributes.destination_project = "ml-serving" AND (attributes.status = "failed" OR attributes.status = "rejected")"#
        );
    }

    #[test]
    fn clauses_that_do_not_fit_are_left_to_the_client() {
        let f = EventFilter {
            status: vec!["failed".into()],
            request_ids: (0..20)
                .map(|i| format!("a-rather-long-request-id-{i}"))
                .collect(),
            destination_project: None,
        };
        assert_eq!(f.subscription_filter(), r#"attributes.status = "failed""#);
    }
}
