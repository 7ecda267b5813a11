//! Table-driven tests of request parsing and validation.

use super::*;
use crate::domain::destination::{Target, derive_model_id};

pub(super) fn defaults() -> Defaults {
    Defaults {
        source_project: Some("src-proj".into()),
        target_project: Some("dst-proj".into()),
        location: Some("us-central1".into()),
        callback_allowed_hosts: vec!["hooks.example.com".into()],
        callback_allow_http_loopback: false,
    }
}

pub(super) fn parse(s: &str) -> Result<CopyRequest, Rejection> {
    CopyRequest::parse(s.as_bytes(), &defaults())
}

#[test]
fn design_example_parses_into_normalised_fields() {
    let r = parse(
        r#"{"request_id":"nightly-2026-11-22",
        "source_model":"projects/src-proj/locations/us-central1/models/7704127342733426688@3",
        "destination":{"project":"dst-proj","location":"europe-west4","model_id":"target-model-260213"},
        "kms_key_name":"projects/dst-proj/locations/europe-west4/keyRings/r/cryptoKeys/k",
        "context":{"pipeline":"nightly","commit":"a1b2c3"},
        "callback_url":"https://hooks.example.com/copy-done"}"#,
    )
    .unwrap();
    assert_eq!(r.request_id.as_str(), "nightly-2026-11-22");
    assert_eq!(r.source_model.version.as_deref(), Some("3"));
    assert_eq!(
        r.destination.model_name(),
        "projects/dst-proj/locations/europe-west4/models/target-model-260213"
    );
    assert_eq!(r.context["commit"], "a1b2c3");
    // The normalised JSON parses without defaults into the same request.
    let again = CopyRequest::parse(
        &r.to_bytes(),
        &Defaults {
            callback_allowed_hosts: vec!["hooks.example.com".into()],
            ..Defaults::default()
        },
    )
    .unwrap();
    assert_eq!(again, r);
}

#[test]
fn defaults_fill_bare_ids_project_and_location_and_derive_ids() {
    let r = parse(r#"{"source_model":"123"}"#).unwrap();
    assert_eq!(
        r.source_model.to_string(),
        "projects/src-proj/locations/us-central1/models/123"
    );
    assert_eq!(r.destination.project.as_str(), "dst-proj");
    assert_eq!(r.destination.location, "us-central1");
    assert_eq!(r.request_id.as_str().len(), 32);
    let Target::ModelId(id) = &r.destination.target else {
        panic!("expected a model id")
    };
    assert_eq!(id, &derive_model_id(&r.request_id));
    assert!(id.starts_with("copy-") && id.len() == 25);
    // Derived ids are stable: same input, same ids.
    assert_eq!(parse(r#"{"source_model":"123"}"#).unwrap(), r);
    // And differ for a different destination.
    let other =
        parse(r#"{"source_model":"123","destination":{"location":"europe-west4"}}"#).unwrap();
    assert_ne!(other.request_id, r.request_id);
}

#[test]
fn seed_two_field_form_is_normalised_with_worker_defaults() {
    let r = parse(r#"{"source_model_id":"777","destination_model_id":"target-a"}"#).unwrap();
    assert_eq!(
        r.source_model.to_string(),
        "projects/src-proj/locations/us-central1/models/777"
    );
    assert_eq!(
        r.destination.model_name(),
        "projects/dst-proj/locations/us-central1/models/target-a"
    );
    let from_query = CopyRequest::from_seed("777", "target-a", &defaults()).unwrap();
    assert_eq!(from_query, r);
}

#[test]
fn parent_model_destination_takes_project_and_location_from_the_parent() {
    let r = parse(
        r#"{"source_model":"projects/src-proj/locations/us-central1/models/1",
        "destination":{"parent_model":"projects/p-other1/locations/europe-west4/models/9"}}"#,
    )
    .unwrap();
    assert_eq!(r.destination.project.as_str(), "p-other1");
    assert_eq!(r.destination.location, "europe-west4");
    assert_eq!(
        r.destination.model_name(),
        "projects/p-other1/locations/europe-west4/models/9"
    );
}

/// Each input is refused, and the error names `field` and contains `rule`.
fn assert_rejections(cases: &[(&str, &str, &str)]) {
    for &(input, field, rule) in cases {
        let e = parse(input).expect_err(&input[..input.len().min(60)]);
        assert_eq!(
            e.field,
            field,
            "input {:?}: {e}",
            &input[..input.len().min(60)]
        );
        assert!(
            e.rule.contains(rule),
            "input {:?}: {e}",
            &input[..input.len().min(60)]
        );
    }
}

#[test]
fn every_rejection_of_the_request_as_a_whole_names_the_field_and_the_rule() {
    let big = format!(r#"{{"source_model":"1","x":"{}"}}"#, "a".repeat(70_000));
    assert_rejections(&[
        ("", "request", "no data"),
        ("not json", "request", "not valid JSON"),
        ("[1]", "request", "must be a JSON object"),
        (&big, "request", "limit is 65536"),
        (
            r#"{"source_model":"1","extra":1}"#,
            "extra",
            "not a known field",
        ),
    ]);
}

#[test]
fn every_rejection_of_source_model_or_request_id_names_the_field_and_the_rule() {
    assert_rejections(&[
        (r#"{}"#, "source_model", "is required"),
        (r#"{"source_model":5}"#, "source_model", "must be a string"),
        (
            r#"{"source_model":"projects/x/models/1"}"#,
            "source_model",
            "must look like",
        ),
        (
            r#"{"source_model":"Bad Id"}"#,
            "source_model",
            "model id must be",
        ),
        (
            r#"{"source_model":"1@V!"}"#,
            "source_model",
            "version after @",
        ),
        (
            r#"{"source_model":"1","request_id":"has space"}"#,
            "request_id",
            "must match",
        ),
        (
            r#"{"source_model":"1","request_id":""}"#,
            "request_id",
            "must match",
        ),
    ]);
}

#[test]
fn every_rejection_of_the_destination_names_the_field_and_the_rule() {
    assert_rejections(&[
        (
            r#"{"source_model":"1","destination":"x"}"#,
            "destination",
            "must be an object",
        ),
        (
            r#"{"source_model":"1","destination":{"model_id":"Bad"}}"#,
            "destination.model_id",
            "must match [a-z]",
        ),
        (
            r#"{"source_model":"1","destination":{"model_id":"a","parent_model":"projects/dst-proj/locations/us-central1/models/2"}}"#,
            "destination",
            "at most one",
        ),
        (
            r#"{"source_model":"1","destination":{"parent_model":"projects/dst-proj/locations/us-central1/models/2@1"}}"#,
            "destination.parent_model",
            "without @version",
        ),
        (
            r#"{"source_model":"1","destination":{"project":"dst-proj","parent_model":"projects/other-p/locations/us-central1/models/2"}}"#,
            "destination.parent_model",
            "must be in the destination",
        ),
        (
            r#"{"source_model":"1","destination":{"project":"X"}}"#,
            "destination.project",
            "project id",
        ),
        (
            r#"{"source_model":"1","destination":{"location":"Europe West"}}"#,
            "destination.location",
            "region",
        ),
        (
            r#"{"source_model":"1","destination":{"zone":"a"}}"#,
            "destination.zone",
            "not a known field",
        ),
    ]);
}

#[test]
fn every_rejection_of_kms_context_or_callback_names_the_field_and_the_rule() {
    assert_rejections(&[
        (
            r#"{"source_model":"1","kms_key_name":"k"}"#,
            "kms_key_name",
            "must look like",
        ),
        (
            r#"{"source_model":"1","kms_key_name":"projects/dst-proj/locations/europe-west4/keyRings/r/cryptoKeys/k"}"#,
            "kms_key_name",
            "destination's location",
        ),
        (
            r#"{"source_model":"1","context":[]}"#,
            "context",
            "object of strings",
        ),
        (
            r#"{"source_model":"1","context":{"a":1}}"#,
            "context.a",
            "must be a string",
        ),
        (
            r#"{"source_model":"1","callback_url":"http://hooks.example.com/x"}"#,
            "callback_url",
            "must use https",
        ),
        (
            r#"{"source_model":"1","callback_url":"https://evil.example.net/x"}"#,
            "callback_url",
            "not allowed",
        ),
        (
            r#"{"source_model":"1","callback_url":"::"}"#,
            "callback_url",
            "not a URL",
        ),
    ]);
}

#[test]
fn every_rejection_of_the_legacy_form_names_the_field_and_the_rule() {
    assert_rejections(&[
        (
            r#"{"source_model_id":"1"}"#,
            "destination_model_id",
            "is required",
        ),
        (
            r#"{"source_model_id":"1","destination_model_id":"B"}"#,
            "destination_model_id",
            "must match",
        ),
        (
            r#"{"source_model_id":"1","destination_model_id":"b","context":{}}"#,
            "context",
            "not a known field",
        ),
    ]);
}

#[test]
fn too_many_context_pairs_are_refused() {
    let pairs: Vec<String> = (0..17).map(|i| format!(r#""k{i}":"v""#)).collect();
    let e = parse(&format!(
        r#"{{"source_model":"1","context":{{{}}}}}"#,
        pairs.join(",")
    ))
    .unwrap_err();
    assert_eq!(e.field, "context");
    assert!(e.rule.contains("at most 16"));
}

#[test]
fn bare_ids_need_worker_defaults() {
    let e = CopyRequest::parse(br#"{"source_model":"1"}"#, &Defaults::default()).unwrap_err();
    assert_eq!(e.field, "source_model");
    assert!(e.rule.contains("SOURCE_PROJECT"));
    let e = CopyRequest::parse(
        br#"{"source_model":"projects/src-proj/locations/us-central1/models/1"}"#,
        &Defaults::default(),
    )
    .unwrap_err();
    assert_eq!(e.field, "destination.project");
    assert!(e.rule.contains("TARGET_PROJECT"));
}

#[test]
fn source_matching_compares_project_numbers_and_pinned_versions() {
    use crate::domain::names::ModelIdentity;
    let pinned = ModelIdentity {
        project_number: "123456789012".into(),
        location: "us-central1".into(),
        model_id: "1".into(),
        version_id: Some("3".into()),
    };
    let any = ModelIdentity {
        version_id: None,
        ..pinned.clone()
    };
    let rec3 = "projects/123456789012/locations/us-central1/models/1@3";
    let rec1 = "projects/123456789012/locations/us-central1/models/1@1";
    assert!(pinned.is_source_of(rec3));
    assert!(!pinned.is_source_of(rec1));
    assert!(any.is_source_of(rec1));
    // The id spelling of the same project is not the number Vertex records.
    assert!(!any.is_source_of("projects/src-proj/locations/us-central1/models/1@1"));
    assert!(!any.is_source_of("projects/123456789012/locations/us-central1/models/2@1"));
    assert!(!any.is_source_of("projects/123456789012/locations/europe-west4/models/1@1"));
    assert!(!any.is_source_of("garbage"));
    let name = ModelName::parse(
        "s",
        "projects/src-proj/locations/us-central1/models/1@default",
    )
    .unwrap();
    assert!(name.pins_alias() && name.identity("1").is_none());
    assert_eq!(
        ModelName::parse("s", "projects/src-proj/locations/us-central1/models/1@3")
            .unwrap()
            .identity("123456789012"),
        Some(pinned)
    );
}

#[test]
fn loopback_http_callbacks_need_the_explicit_opt_in() {
    let mut d = defaults();
    let url = "http://127.0.0.1:9999/hook";
    assert!(validate_callback_url(url, &d).is_err());
    d.callback_allow_http_loopback = true;
    assert!(validate_callback_url(url, &d).is_ok());
    assert!(validate_callback_url("http://10.0.0.1/x", &d).is_err());
}
