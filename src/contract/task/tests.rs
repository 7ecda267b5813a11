use super::*;

fn task(request: serde_json::Value, attributes: BTreeMap<String, String>) -> CopyTask {
    CopyTask {
        request: raw_request(request.to_string().as_bytes()).unwrap(),
        attempt: 1,
        accepted_at: DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
        operation: Some("projects/123/locations/europe-west4/operations/9".into()),
        started_at: None,
        due_ms: None,
        previous_operation: None,
        origin: "m-1".into(),
        seq: 3,
        attributes,
    }
}

#[test]
fn a_task_round_trips_through_its_body() {
    let attrs = BTreeMap::from([("traceparent".to_owned(), "00-ab-cd-01".to_owned())]);
    let mut t = task(serde_json::json!({"request_id": "r1"}), attrs);
    // Milliseconds survive: the poll schedule counts the copy's age from `started_at`.
    t.started_at = Some(t.accepted_at + chrono::Duration::milliseconds(30_250));
    t.due_ms = Some(2_250);
    let (body, dropped) = t.to_body();
    assert!(dropped.is_empty());
    assert_eq!(CopyTask::parse(&body).unwrap(), t);
    let d = t.to_delivery("poll-1");
    assert_eq!(d.attribute("request_id"), Some("r1"));
    assert_eq!(d.attribute("traceparent"), Some("00-ab-cd-01"));
}

/// A dead letter carries the request's bytes exactly as received, so the task does too.
#[test]
fn a_task_keeps_the_request_bytes_as_received() {
    let received = br#"{ "source_model" : "m",  "request_id":"r2" }"#;
    let mut t = task(serde_json::json!({}), BTreeMap::new());
    t.request = raw_request(received).unwrap();
    let back = CopyTask::parse(&t.to_body().0).unwrap();
    assert_eq!(back.request_bytes(), received.to_vec());
    assert_eq!(back.to_delivery("t").attribute("request_id"), Some("r2"));
}

/// The largest request the contract accepts (64 KiB) with 100 caller attributes of the
/// largest size Pub/Sub allows still makes a task under Cloud Tasks' 100 KB: the attributes
/// that do not fit are dropped (and named), the waiter's tag and the trace first kept.
#[test]
fn the_largest_request_with_a_hundred_attributes_fits_a_task() {
    let context: serde_json::Map<String, serde_json::Value> = (0..16)
        .map(|i| (format!("k{i}"), serde_json::json!("v".repeat(4000))))
        .collect();
    let request = serde_json::json!({"request_id": "big", "context": context});
    assert!(serde_json::to_vec(&request).unwrap().len() > 64_000);
    let mut attrs: BTreeMap<String, String> = (0..97)
        .map(|i| (format!("{i:0>256}"), "x".repeat(1024)))
        .collect();
    attrs.insert("waiter".into(), "3f2a9c1e0b7d4a58".into());
    attrs.insert("traceparent".into(), "t".repeat(1024));
    attrs.insert("replay_count".into(), "2".into());
    let (body, dropped) = task(request, attrs).to_body();
    assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
    assert!(!dropped.is_empty());
    let back = CopyTask::parse(&body).unwrap();
    for k in ["waiter", "traceparent", "replay_count"] {
        assert!(back.attributes.contains_key(k), "{k} kept");
    }
    assert_eq!(back.attributes.len() + dropped.len(), 100);
}

#[test]
fn a_body_that_is_not_a_task_names_what_is_wrong() {
    assert!(CopyTask::parse(b"not json").is_err());
    let unknown = br#"{"request":{},"attempt":1,"accepted_at":"2026-11-22T10:00:00Z","origin":"m","seq":0,"x":1}"#;
    assert!(
        CopyTask::parse(unknown)
            .unwrap_err()
            .to_string()
            .contains("unknown field")
    );
    let zero =
        br#"{"request":{},"attempt":0,"accepted_at":"2026-11-22T10:00:00Z","origin":"m","seq":0}"#;
    assert_eq!(CopyTask::parse(zero).unwrap_err().field, "attempt");
    let time = br#"{"request":{},"attempt":1,"accepted_at":"yesterday","origin":"m","seq":0}"#;
    assert!(
        CopyTask::parse(time)
            .unwrap_err()
            .to_string()
            .contains("RFC 3339")
    );
}
