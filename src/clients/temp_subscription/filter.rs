//! The filter of a waiting subscription: its waiter's tag, or its request ids as far as
//! Pub/Sub's limit allows (<https://cloud.google.com/pubsub/docs/subscription-message-filter>).

use super::WaiterTag;
use crate::contract::attr;

/// Pub/Sub's limit on a filter expression.
pub const MAX_FILTER_BYTES: usize = 256;

/// The filter of a tagged waiter: its own requests' events, whatever their number.
pub fn tag_filter(tag: &WaiterTag) -> String {
    format!("attributes.{} = \"{}\"", attr::WAITER, tag.as_str())
}

/// The narrowest filter on `request_id` within [`MAX_FILTER_BYTES`]: the ids themselves, else
/// their common prefix, else none (empty).
pub fn request_id_filter(ids: &[String]) -> String {
    let quoted = |s: &str| format!("{:?}", s); // request ids are [A-Za-z0-9._:-]: no escapes
    let exact = ids
        .iter()
        .map(|id| format!("attributes.{} = {}", attr::REQUEST_ID, quoted(id)))
        .collect::<Vec<_>>()
        .join(" OR ");
    if !ids.is_empty() && exact.len() <= MAX_FILTER_BYTES {
        return exact;
    }
    let prefix = common_prefix(ids);
    let by_prefix = format!(
        "hasPrefix(attributes.{}, {})",
        attr::REQUEST_ID,
        quoted(prefix)
    );
    if !prefix.is_empty() && by_prefix.len() <= MAX_FILTER_BYTES {
        return by_prefix;
    }
    String::new()
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
}
