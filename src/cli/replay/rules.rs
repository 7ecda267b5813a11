//! Which dead letters a replay moves (DESIGN.md §6). What the republished message carries is
//! part of the contract: `contract::dead_letter::republished`.

use std::collections::HashMap;

use crate::contract::attr;
use crate::contract::dead_letter::{FailedStage, replay_count, request_id};

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
    /// Messages already replayed this often are left in place.
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
    /// Filters first, so that `skipped_max_replays` counts only messages the caller asked for.
    pub fn verdict(&self, attributes: &HashMap<String, String>, data: &[u8]) -> Verdict {
        let id_ok = self.request_ids.is_empty()
            || request_id(attributes, data).is_some_and(|id| self.request_ids.contains(&id));
        let code_ok = self.error_codes.is_empty()
            || attributes
                .get(attr::ERROR_CODE)
                .is_some_and(|c| self.error_codes.contains(c));
        let attrs_ok = self
            .attributes
            .iter()
            .all(|(k, v)| attributes.get(k) == Some(v));
        let context_ok = self.context.is_empty() || context_matches(data, &self.context);
        let is_callback = attributes.get(attr::FAILED_STAGE).map(String::as_str)
            == Some(FailedStage::Callback.as_str());
        if !(id_ok && code_ok && attrs_ok && context_ok && is_callback == self.callbacks) {
            Verdict::SkipFilter
        } else if replay_count(attributes) >= self.max_replays {
            Verdict::SkipMaxReplays
        } else {
            Verdict::Replay
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

    #[test]
    fn verdicts_follow_filters_then_the_replay_count() {
        let nf = attrs(&[("request_id", "a"), ("error_code", "NOT_FOUND"), ("k", "v")]);
        let cases: Vec<(&str, Rules, HashMap<String, String>, Verdict)> = vec![
            ("no filter", rules(), nf.clone(), Verdict::Replay),
            (
                "request id matches",
                Rules {
                    request_ids: vec!["b".into(), "a".into()],
                    ..rules()
                },
                nf.clone(),
                Verdict::Replay,
            ),
            (
                "request id differs",
                Rules {
                    request_ids: vec!["b".into()],
                    ..rules()
                },
                nf.clone(),
                Verdict::SkipFilter,
            ),
            (
                "error code differs",
                Rules {
                    error_codes: vec!["INVALID_REQUEST".into()],
                    ..rules()
                },
                nf.clone(),
                Verdict::SkipFilter,
            ),
            (
                "attribute value differs",
                Rules {
                    attributes: vec![("k".into(), "w".into())],
                    ..rules()
                },
                nf.clone(),
                Verdict::SkipFilter,
            ),
            (
                "replayed twice is below 3",
                rules(),
                attrs(&[("replay_count", "2")]),
                Verdict::Replay,
            ),
            (
                "replayed three times is at the guard",
                rules(),
                attrs(&[("replay_count", "3")]),
                Verdict::SkipMaxReplays,
            ),
            (
                "a filter miss is counted as a filter miss even at the guard",
                Rules {
                    error_codes: vec!["X".into()],
                    ..rules()
                },
                attrs(&[("replay_count", "9")]),
                Verdict::SkipFilter,
            ),
            (
                "a dead callback is not a request",
                rules(),
                attrs(&[("failed_stage", "callback")]),
                Verdict::SkipFilter,
            ),
            (
                "--callbacks moves dead callbacks",
                Rules {
                    callbacks: true,
                    ..rules()
                },
                attrs(&[("failed_stage", "callback")]),
                Verdict::Replay,
            ),
            (
                "--callbacks leaves requests",
                Rules {
                    callbacks: true,
                    ..rules()
                },
                nf.clone(),
                Verdict::SkipFilter,
            ),
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
