//! Which dead letters a replay moves (DESIGN.md §6). What the republished message carries is
//! part of the contract: `contract::dead_letter::republished`.

use std::collections::HashMap;

use crate::contract::dead_letter::DeadLetterView;

/// The filters and the loop guard of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Replay only these request ids (any of them); empty means all.
    pub request_ids: Vec<String>,
    /// Replay only these `error_code`s (any of them); empty means all.
    pub error_codes: Vec<String>,
    /// Every one of these attributes must be present with exactly this value.
    pub attributes: Vec<(String, String)>,
    /// Every one of these pairs must be in the request's `context` (`publish --context`),
    /// which travels in the message body, not in the attributes.
    pub context: Vec<(String, String)>,
    /// Messages already replayed this often, or whose `replay_count` cannot be read, are
    /// left in place.
    pub max_replays: u32,
    /// Replay dead-lettered webhook callbacks (`failed_stage=callback`) instead of requests.
    /// The two kinds go to different topics, so a run only ever moves one of them.
    pub callbacks: bool,
}

/// What to do with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Republish it, then ack it.
    Replay,
    /// It does not match the filters: hand it back untouched.
    SkipFilter,
    /// It was replayed `--max-replays` times already: hand it back untouched.
    SkipMaxReplays,
}

impl Rules {
    /// The verdict on a dead letter with these attributes and data.
    pub fn verdict(&self, attributes: &HashMap<String, String>, data: &[u8]) -> Verdict {
        self.verdict_of(&DeadLetterView::parse(attributes, data))
    }

    /// Filters first, so that `skipped_max_replays` counts only messages the caller asked for.
    pub fn verdict_of(&self, d: &DeadLetterView<'_>) -> Verdict {
        let id_ok = self.request_ids.is_empty()
            || d.request_id
                .as_ref()
                .is_some_and(|id| self.request_ids.contains(id));
        let code_ok = self.error_codes.is_empty()
            || d.error_code
                .is_some_and(|c| self.error_codes.iter().any(|e| e == c));
        let attrs_ok = self
            .attributes
            .iter()
            .all(|(k, v)| d.attributes.get(k) == Some(v));
        let context_ok = self.context.is_empty() || context_matches(d.data, &self.context);
        if !(id_ok && code_ok && attrs_ok && context_ok && d.is_callback == self.callbacks) {
            Verdict::SkipFilter
        } else {
            // An unreadable count is at the guard: counting it as 0 would let a message go
            // round for ever.
            match d.replay_count {
                Some(n) if n < self.max_replays => Verdict::Replay,
                _ => Verdict::SkipMaxReplays,
            }
        }
    }
}

/// Whether the body's `context` object (a copy request's, or the request echoed in a
/// callback's event) holds every pair. A body that is not JSON matches no context filter.
fn context_matches(data: &[u8], pairs: &[(String, String)]) -> bool {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    let context = if body.get("context").is_some() {
        &body["context"]
    } else {
        // A webhook callback's body is the completion event: its data holds the context.
        &body["data"]["context"]
    };
    pairs
        .iter()
        .all(|(k, v)| context.get(k).and_then(|x| x.as_str()) == Some(v.as_str()))
}

/// Parses `--attribute K=V`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::contract::attr::from_pairs as attrs;

    fn rules() -> Rules {
        Rules {
            max_replays: 3,
            ..Rules::default()
        }
    }

    /// [`rules`], changed by `f`.
    fn with(f: impl FnOnce(&mut Rules)) -> Rules {
        let mut r = rules();
        f(&mut r);
        r
    }

    fn ids(ids: &[&str]) -> Rules {
        with(|r| r.request_ids = ids.iter().map(|&i| i.into()).collect())
    }

    fn code(c: &str) -> Rules {
        with(|r| r.error_codes = vec![c.into()])
    }

    #[test]
    fn verdicts_follow_filters_then_the_replay_count() {
        use Verdict::{Replay, SkipFilter, SkipMaxReplays};
        let nf = || attrs(&[("request_id", "a"), ("error_code", "NOT_FOUND"), ("k", "v")]);
        let count = |n| attrs(&[("replay_count", n)]);
        let callback = || attrs(&[("failed_stage", "callback")]);
        let attr = with(|r| r.attributes = vec![("k".into(), "w".into())]);
        let callbacks = || with(|r| r.callbacks = true);
        let cases: Vec<(&str, Rules, HashMap<String, String>, Verdict)> = vec![
            ("no filter", rules(), nf(), Replay),
            ("request id matches", ids(&["b", "a"]), nf(), Replay),
            ("request id differs", ids(&["b"]), nf(), SkipFilter),
            (
                "error code differs",
                code("INVALID_REQUEST"),
                nf(),
                SkipFilter,
            ),
            ("attribute value differs", attr, nf(), SkipFilter),
            ("replayed twice is below 3", rules(), count("2"), Replay),
            (
                "replayed three times is at the guard",
                rules(),
                count("3"),
                SkipMaxReplays,
            ),
            (
                "an unreadable count is at the guard (the probe: it reset the guard)",
                rules(),
                count("junk"),
                SkipMaxReplays,
            ),
            (
                "a filter miss is counted as a filter miss even at the guard",
                code("X"),
                count("9"),
                SkipFilter,
            ),
            (
                "a dead callback is not a request",
                rules(),
                callback(),
                SkipFilter,
            ),
            (
                "--callbacks moves dead callbacks",
                callbacks(),
                callback(),
                Replay,
            ),
            ("--callbacks leaves requests", callbacks(), nf(), SkipFilter),
        ];
        for (name, rules, a, want) in cases {
            assert_eq!(rules.verdict(&a, b"{}"), want, "{name}");
        }
    }

    #[test]
    fn request_id_filter_falls_back_to_the_request_json() {
        let r = Rules {
            request_ids: vec!["in-body".into()],
            ..rules()
        };
        let body = br#"{"request_id":"in-body","source_model":"m"}"#;
        assert_eq!(r.verdict(&HashMap::new(), body), Verdict::Replay);
        assert_eq!(r.verdict(&HashMap::new(), b"not json"), Verdict::SkipFilter);
    }

    #[test]
    fn context_filters_read_the_request_body_not_the_attributes() {
        let nightly = Rules {
            context: vec![("pipeline".into(), "nightly".into())],
            ..rules()
        };
        let a = attrs(&[("request_id", "a")]);
        let body = br#"{"request_id":"a","context":{"pipeline":"nightly","commit":"f00"}}"#;
        assert_eq!(nightly.verdict(&a, body), Verdict::Replay);
        let other = br#"{"request_id":"a","context":{"pipeline":"weekly"}}"#;
        assert_eq!(nightly.verdict(&a, other), Verdict::SkipFilter);
        assert_eq!(
            nightly.verdict(&a, br#"{"request_id":"a"}"#),
            Verdict::SkipFilter
        );
        assert_eq!(nightly.verdict(&a, b"not json"), Verdict::SkipFilter);
        // The attribute of the same name is not the context.
        let in_attrs = attrs(&[("request_id", "a"), ("pipeline", "nightly")]);
        assert_eq!(nightly.verdict(&in_attrs, b"{}"), Verdict::SkipFilter);
    }

    #[test]
    fn attribute_flags_need_a_key_and_an_equals_sign() {
        assert_eq!(
            parse_key_value("k=v=w").unwrap(),
            ("k".into(), "v=w".into())
        );
        assert_eq!(parse_key_value("k=").unwrap(), ("k".into(), "".into()));
        assert!(parse_key_value("=v").is_err());
        assert!(parse_key_value("kv").is_err());
    }
}
