//! What `copy-worker publish` submits: requests from flags or JSON Lines, validated with the
//! worker's own parser ([`CopyRequest::parse`]) before anything is published.

use std::collections::BTreeMap;

use serde_json::Value;

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

/// One input that did not validate: where it came from, and the worker's rejection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {rejection}")]
pub struct InvalidInput {
    /// `flags`, or `line N` of a JSON Lines file.
    pub origin: String,
    pub rejection: Rejection,
}

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

/// Validates every line of a JSON Lines text (blank lines are skipped) and returns either all
/// the requests or every invalid line, so that nothing is published from a file with an error.
pub fn validate_lines(
    text: &str,
    defaults: &Defaults,
) -> Result<Vec<CopyRequest>, Vec<InvalidInput>> {
    let mut requests = Vec::new();
    let mut invalid = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match validate(line.as_bytes(), defaults) {
            Ok(r) => requests.push(r),
            Err(rejection) => invalid.push(InvalidInput {
                origin: format!("line {}", n + 1),
                rejection,
            }),
        }
    }
    if requests.is_empty() && invalid.is_empty() {
        invalid.push(InvalidInput {
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
    let invalid = |rejection| InvalidInput {
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
        assert_eq!(e.origin, "flags");
        assert_eq!(e.rejection.field, "context");
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
        let errs = validate_lines(&text, &defaults()).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].origin, "line 3");
        assert_eq!(errs[0].rejection.field, "destination.model_id");
        assert!(
            errs[0]
                .to_string()
                .starts_with("line 3: destination.model_id: must match")
        );
    }

    #[test]
    fn an_empty_file_is_an_error_not_a_silent_success() {
        assert!(validate_lines("\n  \n", &defaults()).is_err());
    }
}
