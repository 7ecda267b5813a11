//! Property tests (the fuzz suite; docs/auth.md, "Push bodies") over the push envelope and
//! request parsers, seeded with real envelopes. Bounded: `PROPTEST_CASES` (default 2000) per
//! property.
//!
//! Properties: parsing never panics; the outcome is deterministic; a valid request
//! round-trips through `CopyRequest::to_bytes`; and a mutated envelope either parses or is
//! refused with an `EnvelopeError` (which the server answers 400), never anything else.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use copy_worker::domain::{CopyRequest, Defaults};
use copy_worker::http::parse_envelope;
use proptest::prelude::*;

use crate::auth::envelope;
use crate::helpers::request;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn defaults() -> Defaults {
    Defaults {
        source_project: Some("src-proj".into()),
        target_project: Some("dst-proj".into()),
        location: Some("us-central1".into()),
        callback_allowed_hosts: vec!["hooks.example.com".into()],
        callback_allow_http_loopback: false,
    }
}

/// Real request bodies: the design's example, the seed's form, a bare id, a parent model.
fn seed_requests() -> Vec<String> {
    vec![
        request("nightly-2026-11-22", "target-model-260213"),
        r#"{"request_id":"nightly-2026-11-22","source_model":"projects/src-proj/locations/us-central1/models/7704127342733426688@3","destination":{"project":"dst-proj","location":"europe-west4","model_id":"target-model-260213"},"kms_key_name":"projects/dst-proj/locations/europe-west4/keyRings/r/cryptoKeys/k","context":{"pipeline":"nightly","commit":"a1b2c3"},"callback_url":"https://hooks.example.com/copy-done"}"#.into(),
        r#"{"source_model_id":"7704127342733426688","destination_model_id":"copy-a"}"#.into(),
        r#"{"source_model":"1001"}"#.into(),
        r#"{"source_model":"1001","destination":{"parent_model":"projects/dst-proj/locations/us-central1/models/55"}}"#.into(),
    ]
}

/// Real envelopes: what the emulator and Pub/Sub push, around the seed requests.
fn seed_envelopes() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = seed_requests()
        .iter()
        .map(|r| envelope(r.as_bytes()).into_bytes())
        .collect();
    v.push(br#"{"message":{"attributes":{"request_id":"r1","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},"data":"eyJzb3VyY2VfbW9kZWwiOiIxMDAxIn0=","messageId":"42","message_id":"42","publishTime":"2026-11-22T10:00:00.123Z","publish_time":"2026-11-22T10:00:00.123Z","orderingKey":""},"subscription":"projects/p/subscriptions/s","deliveryAttempt":3}"#.to_vec());
    v
}

/// A seed with random bytes overwritten, inserted or removed.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(seeds),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8),
    )
        .prop_map(|(mut s, edits)| {
            for (at, byte, kind) in edits {
                if s.is_empty() {
                    s.push(byte);
                    continue;
                }
                let i = at.index(s.len());
                match kind {
                    0 => s[i] = byte,
                    1 => s.insert(i, byte),
                    _ => {
                        s.remove(i);
                    }
                }
            }
            s
        })
}

/// A JSON-ish token soup, so mutations also explore structure, not only bytes.
fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    let atom = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"message\"",
        "\"data\"",
        "\"messageId\"",
        "\"attributes\"",
        "\"eyJ9\"",
        "\"YQ==\"",
        "null",
        "true",
        "1",
        "-1e999",
        "\"\\u0000\"",
        "\"\\ud800\"",
        " ",
    ]);
    prop::collection::vec(atom, 0..64).prop_map(|v| v.concat().into_bytes())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn envelope_parser_never_panics_and_is_deterministic(body in prop_oneof![
        mutated(seed_envelopes()),
        json_soup(),
        prop::collection::vec(any::<u8>(), 0..256),
    ]) {
        let a = parse_envelope(&body);
        prop_assert_eq!(&a, &parse_envelope(&body));
        if let Ok(m) = a {
            // What was accepted is what Pub/Sub would have sent: data is canonical base64.
            prop_assert!(!m.message_id.is_empty());
            let _ = CopyRequest::parse(&m.data, &defaults());
        }
    }

    #[test]
    fn request_parser_never_panics_and_valid_requests_round_trip(data in prop_oneof![
        mutated(seed_requests().into_iter().map(String::into_bytes).collect()),
        json_soup(),
    ]) {
        let d = defaults();
        let a = CopyRequest::parse(&data, &d);
        prop_assert_eq!(&a, &CopyRequest::parse(&data, &d));
        if let Ok(r) = a {
            let again = CopyRequest::parse(&r.to_bytes(), &d);
            prop_assert_eq!(again, Ok(r));
        }
    }

    #[test]
    fn data_round_trips_through_standard_base64(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let body = envelope(&data);
        let m = parse_envelope(body.as_bytes()).expect("a real envelope parses");
        prop_assert_eq!(m.data, data);
    }

    #[test]
    fn data_that_is_not_canonical_standard_base64_is_refused(
        data in prop::collection::vec(any::<u8>(), 1..64),
        variant in 0u8..3,
    ) {
        let good = STANDARD.encode(&data);
        let bad = match variant {
            // Missing padding, or padding where none belongs.
            0 if good.ends_with('=') => good.trim_end_matches('=').to_owned(),
            0 => good + "=",
            1 => good.replace('+', "-").replace('/', "_") + "\\n",
            _ => format!(" {good}"),
        };
        let body = format!(r#"{{"message":{{"data":"{bad}","messageId":"1"}}}}"#);
        prop_assert!(parse_envelope(body.as_bytes()).is_err());
    }
}

#[test]
fn seeds_are_real_envelopes_and_valid_requests() {
    for e in seed_envelopes() {
        let m = parse_envelope(&e).expect("seed envelope parses");
        CopyRequest::parse(&m.data, &defaults()).expect("seed request is valid");
    }
}
