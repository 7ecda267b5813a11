//! What `copy-worker publish` submits: requests from flags or JSON Lines, validated with the
//! worker's own parser ([`CopyRequest::parse`]) before anything is published.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::clients::lines::{LineError, Lines};
use crate::contract::Rejection;
use crate::contract::request::{CopyRequestWire, DestinationWire};
use crate::domain::{CopyRequest, Defaults};

/// The request fields of DESIGN.md §6, as given on the command line: the clap group that
/// `publish` flattens.
// The field docs are clap's `--help` text, where brackets are literal, not links.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct RequestFlags {
    /// Model to copy: projects/P/locations/L/models/M[@V], or a bare id.
    #[arg(long, help_heading = "Request")]
    pub source_model: Option<String>,
    /// Destination project (default: TARGET_PROJECT).
    #[arg(long, help_heading = "Request")]
    pub destination_project: Option<String>,
    /// Destination location (default: the source's).
    #[arg(long, help_heading = "Request")]
    pub destination_location: Option<String>,
    /// Id of the new model, [a-z][a-z0-9_-]{0,62} (default: derived from the request id).
    #[arg(long, help_heading = "Request")]
    pub destination_model_id: Option<String>,
    /// Existing model to add the copy to as a new version.
    #[arg(long, help_heading = "Request")]
    pub destination_parent_model: Option<String>,
    /// CMEK key for the copy, in the destination location.
    #[arg(long, help_heading = "Request")]
    pub kms_key_name: Option<String>,
    /// Request id, [A-Za-z0-9._:-]{1,128} (default: derived from source and destination).
    #[arg(long, help_heading = "Request")]
    pub request_id: Option<String>,
    /// Context pair echoed into the completion event (repeatable, or comma-separated as in
    /// gcloud: --context pipeline=nightly,commit=f00). `replay --context` filters on it.
    #[arg(
        long,
        value_name = "K=V",
        value_delimiter = ',',
        help_heading = "Request"
    )]
    pub context: Vec<String>,
    /// https URL that receives the completion event (host must be allowed by the worker).
    #[arg(long, help_heading = "Request")]
    pub callback_url: Option<String>,
}

/// One input that did not validate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The worker's own validation refused it: `flags` or `line N`, and the rejection.
    #[error("{origin}: {rejection}")]
    Rejected {
        origin: String,
        rejection: Rejection,
    },
    /// Its `request_id` (given or derived) is an earlier line's: both would run, and their
    /// events share `ce-id`, so a consumer that de-duplicates would keep only one.
    #[error("line {line}: request_id {id:?} repeats line {first}")]
    Repeated {
        line: usize,
        id: String,
        first: usize,
    },
    /// The input could not be read, or a line is over the request limit.
    #[error(transparent)]
    Unreadable(#[from] LineError),
    /// Too many invalid lines: reading stopped.
    #[error("stopped reading at line {line} after {MAX_INVALID} invalid lines")]
    TooMany { line: usize },
}

/// Invalid lines reported before reading stops: a file of garbage (`/dev/urandom`) ends
/// with a short report, not an endless one.
const MAX_INVALID: usize = 20;

impl RequestFlags {
    /// The flags' ids, which `--file` conflicts with one by one: clap's error then names the
    /// flags given, where a conflict with the whole group would list every one.
    pub fn ids() -> Vec<clap::Id> {
        <Self as clap::Args>::augment_args(clap::Command::new("request"))
            .get_arguments()
            .map(|a| a.get_id().clone())
            .collect()
    }

    /// The request JSON these flags describe; only the flags given become fields, so that the
    /// worker's defaults and derivations apply exactly as they would to a published request.
    pub fn to_json(&self) -> Result<Vec<u8>, Rejection> {
        let destination = DestinationWire {
            project: self.destination_project.clone(),
            location: self.destination_location.clone(),
            model_id: self.destination_model_id.clone(),
            parent_model: self.destination_parent_model.clone(),
        };
        let wire = CopyRequestWire {
            request_id: self.request_id.clone(),
            source_model: self.source_model.clone(),
            destination: (destination != DestinationWire::default()).then_some(destination),
            kms_key_name: self.kms_key_name.clone(),
            context: parse_context(&self.context)?,
            callback_url: self.callback_url.clone(),
        };
        Ok(wire.to_bytes())
    }
}

/// `--context k=v` (repeatable). A repeated key keeps the last value, as a JSON object would.
fn parse_context(pairs: &[String]) -> Result<BTreeMap<String, String>, Rejection> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(Rejection::new(
                "context",
                format!("--context takes key=value, got {p:?}"),
            )),
        })
        .collect()
}

/// Validates one request exactly as the worker does.
///
/// The worker checks `callback_url` against its own `CALLBACK_ALLOWED_HOSTS`, which a publisher
/// does not know; here the URL's own host is allowed, so every other rule (https, no
/// credentials, a parseable URL) is still checked, and the worker enforces its allow-list.
pub fn validate(bytes: &[u8], defaults: &Defaults) -> Result<CopyRequest, Rejection> {
    let mut defaults = defaults.clone();
    if let Some(host) = callback_host(bytes) {
        defaults.callback_allowed_hosts.push(host);
    }
    CopyRequest::parse(bytes, &defaults)
}

fn callback_host(bytes: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let url = url::Url::parse(value.get("callback_url")?.as_str()?).ok()?;
    Some(url.host_str()?.to_ascii_lowercase())
}

/// Validates every line of JSON Lines input (blank lines are skipped) and returns either all
/// the requests or every problem found, so that nothing is published from an input with an
/// error: an invalid line, a `request_id` that repeats an earlier line's, or a line over the
/// request limit (which also stops the reading, [`Lines`]).
pub fn validate_lines<R: std::io::BufRead>(
    lines: Lines<R>,
    defaults: &Defaults,
) -> Result<Vec<CopyRequest>, Vec<InvalidInput>> {
    let mut requests = Vec::new();
    let mut invalid = Vec::new();
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    for line in lines {
        let (n, bytes) = match line {
            Ok(l) => l,
            Err(e) => {
                invalid.push(e.into());
                break;
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if invalid.len() >= MAX_INVALID {
            invalid.push(InvalidInput::TooMany { line: n });
            break;
        }
        match validate(&bytes, defaults) {
            Ok(r) => match first_line_of.entry(r.request_id.to_string()) {
                Entry::Occupied(first) => invalid.push(InvalidInput::Repeated {
                    line: n,
                    id: first.key().clone(),
                    first: *first.get(),
                }),
                Entry::Vacant(v) => {
                    v.insert(n);
                    requests.push(r);
                }
            },
            Err(rejection) => invalid.push(InvalidInput::Rejected {
                origin: format!("line {n}"),
                rejection,
            }),
        }
    }
    if requests.is_empty() && invalid.is_empty() {
        invalid.push(InvalidInput::Rejected {
            origin: "input".into(),
            rejection: Rejection::new("request", "the input holds no request"),
        });
    }
    if invalid.is_empty() {
        Ok(requests)
    } else {
        Err(invalid)
    }
}

/// Validates the request described by flags.
pub fn validate_flags(
    flags: &RequestFlags,
    defaults: &Defaults,
) -> Result<CopyRequest, InvalidInput> {
    let invalid = |rejection| InvalidInput::Rejected {
        origin: "flags".into(),
        rejection,
    };
    let bytes = flags.to_json().map_err(invalid)?;
    validate(&bytes, defaults).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "projects/src-proj/locations/us-central1/models/1001";

    fn defaults() -> Defaults {
        Defaults {
            target_project: Some("dst-proj".into()),
            ..Defaults::default()
        }
    }

    #[test]
    fn flags_become_the_same_request_as_the_equivalent_json() {
        let flags = RequestFlags {
            source_model: Some(SRC.into()),
            destination_location: Some("europe-west4".into()),
            destination_model_id: Some("m1".into()),
            request_id: Some("r-1".into()),
            context: vec!["pipeline=nightly".into(), "commit=a=b".into()],
            ..Default::default()
        };
        let from_flags = validate_flags(&flags, &defaults()).unwrap();
        let json = format!(
            r#"{{"request_id":"r-1","source_model":"{SRC}","destination":{{"location":"europe-west4","model_id":"m1"}},"context":{{"pipeline":"nightly","commit":"a=b"}}}}"#
        );
        assert_eq!(from_flags, validate(json.as_bytes(), &defaults()).unwrap());
        assert_eq!(from_flags.destination.project.as_str(), "dst-proj");
    }

    #[test]
    fn context_flag_without_equals_names_the_field() {
        let flags = RequestFlags {
            source_model: Some(SRC.into()),
            context: vec!["nightly".into()],
            ..Default::default()
        };
        let e = validate_flags(&flags, &defaults()).unwrap_err();
        assert!(
            matches!(&e, InvalidInput::Rejected { origin, rejection } if origin == "flags" && rejection.field == "context"),
            "{e}"
        );
    }

    #[test]
    fn any_https_callback_host_passes_but_plain_http_does_not() {
        let ok =
            format!(r#"{{"source_model":"{SRC}","callback_url":"https://hooks.example.com/x"}}"#);
        assert!(validate(ok.as_bytes(), &defaults()).is_ok());
        let http =
            format!(r#"{{"source_model":"{SRC}","callback_url":"http://hooks.example.com/x"}}"#);
        let e = validate(http.as_bytes(), &defaults()).unwrap_err();
        assert_eq!(e.field, "callback_url");
        assert!(e.rule.contains("https"), "{e}");
    }

    #[test]
    fn one_invalid_line_rejects_the_file_and_names_line_field_and_rule() {
        let text = format!(
            "{{\"source_model\":\"{SRC}\"}}\n\n{{\"source_model\":\"{SRC}\",\"destination\":{{\"model_id\":\"Bad!\"}}}}\n"
        );
        let errs = validate_lines(text_lines(&text), &defaults()).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .to_string()
                .starts_with("line 3: destination.model_id: must match")
        );
    }

    #[test]
    fn an_empty_file_is_an_error_not_a_silent_success() {
        assert!(validate_lines(text_lines("\n  \n"), &defaults()).is_err());
    }

    fn text_lines(text: &str) -> Lines<&[u8]> {
        Lines::new(
            text.as_bytes(),
            "test",
            crate::contract::request::MAX_REQUEST_BYTES,
        )
    }

    #[test]
    fn a_repeated_request_id_names_both_lines_even_when_derived() {
        let dup = format!(r#"{{"request_id":"dup-1","source_model":"{SRC}"}}"#);
        let bare = format!(r#"{{"source_model":"{SRC}"}}"#);
        let text = format!("{dup}\n{bare}\n{dup}\n{bare}\n");
        let errs = validate_lines(text_lines(&text), &defaults()).unwrap_err();
        let said: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert_eq!(said[0], r#"line 3: request_id "dup-1" repeats line 1"#);
        assert!(
            said[1].starts_with("line 4: request_id \"") && said[1].ends_with("repeats line 2"),
            "{said:?}"
        );
    }

    #[test]
    fn a_line_over_the_request_limit_is_refused_by_number_and_ends_the_reading() {
        let ok = format!(r#"{{"source_model":"{SRC}"}}"#);
        let long = "x".repeat(crate::contract::request::MAX_REQUEST_BYTES + 1);
        let text = format!("{ok}\n{long}\nnot read\n");
        let errs = validate_lines(text_lines(&text), &defaults()).unwrap_err();
        let said: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("line 2: longer than 65536 bytes"),
            "{said:?}"
        );
    }

    #[test]
    fn garbage_input_stops_after_twenty_invalid_lines() {
        let text = "nope\n".repeat(1000);
        let errs = validate_lines(text_lines(&text), &defaults()).unwrap_err();
        assert_eq!(errs.len(), MAX_INVALID + 1);
        assert_eq!(
            errs.last().unwrap().to_string(),
            "stopped reading at line 21 after 20 invalid lines"
        );
    }
}
