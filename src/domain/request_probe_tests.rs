//! The probe of issue 28 against request validation: what it found accepted, now refused.

use super::tests::{defaults, parse};
use super::*;
use crate::contract::attr::MAX_VALUE_BYTES;

/// The probe: `http://localhost` passed the loopback flag, which the contract limits to
/// `http://127.0.0.1` (a name may resolve anywhere).
#[test]
fn the_loopback_flag_admits_127_0_0_1_and_not_localhost() {
    let d = Defaults {
        callback_allow_http_loopback: true,
        ..defaults()
    };
    for bad in [
        "http://localhost:9999/hook",
        "http://LOCALHOST/x",
        "http://127.0.0.2/x",
    ] {
        let e = validate_callback_url(bad, &d).unwrap_err();
        assert_eq!(e.field, "callback_url", "{bad}");
        assert!(e.rule.contains("https"), "{bad}: {}", e.rule);
    }
}

/// The probe: a `callback_url` over 1,024 bytes on an allowed host passed validation, then
/// broke Pub/Sub's attribute limit on every publish of its callback message.
#[test]
fn a_callback_url_must_fit_in_an_attribute() {
    let base = "https://hooks.example.com/";
    let fits = format!("{base}{}", "a".repeat(MAX_VALUE_BYTES - base.len()));
    assert_eq!(
        validate_callback_url(&fits, &defaults()).unwrap().len(),
        1024
    );
    let over = format!("{fits}a");
    let e = validate_callback_url(&over, &defaults()).unwrap_err();
    assert_eq!(e.field, "callback_url");
    assert!(
        e.rule.contains("1025 bytes") && e.rule.contains("1024"),
        "{}",
        e.rule
    );
    // Normalising can lengthen a URL (percent-encoding); the normalised form is what travels.
    let spaces = format!("{base}a{}b", " ".repeat(400));
    let e = validate_callback_url(&spaces, &defaults()).unwrap_err();
    assert!(e.rule.contains("1228 bytes"), "{}", e.rule);
    let body = format!(r#"{{"source_model":"1","callback_url":"{over}"}}"#);
    assert_eq!(parse(&body).unwrap_err().field, "callback_url");
}

/// The probe: duplicate JSON keys were accepted, the last one winning.
#[test]
fn a_key_given_twice_is_rejected_naming_it() {
    let e = parse(r#"{"source_model":"1","request_id":"a","request_id":"b"}"#).unwrap_err();
    assert_eq!(e.field, "request_id");
    let e = parse(
        r#"{"source_model":"1","destination":{"location":"europe-west4","location":"us-east1"}}"#,
    )
    .unwrap_err();
    assert_eq!(e.field, "destination.location");
}
