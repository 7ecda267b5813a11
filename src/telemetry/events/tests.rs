//! The counted events against what they wrote before they were types, and against the
//! log-based metrics of terraform/monitoring.tf that count them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::telemetry::{CloudLogging, Sink, SinkWriter};
use crate::topology::tf_files as tf;

/// Fields every line gets from the delivery's span, not from the event.
const SPAN_FIELDS: [&str; 4] = ["request_id", "message_id", "stage", "operation"];

#[derive(Debug)]
enum Kind {
    Copy,
}

/// Emits one of each event inside a delivery span; the lines as `LOG_FORMAT=json` or `text`
/// writes them.
fn lines(json: bool) -> Vec<String> {
    let buf: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let sink: Sink = buf.clone();
    let emit = || {
        let span = tracing::info_span!("delivery", stage = "request");
        let _g = span.enter();
        CopyStarted {
            poll_task: "poll-17",
            attempt: 2,
        }
        .emit();
        CompletionPublished {
            status: "failed",
            ce_id: &String::from("ce-1"),
        }
        .emit();
        VertexQuotaExhausted {
            project: "123",
            region: "us-central1",
            kind: &Kind::Copy,
            hold: Duration::from_secs(30),
            error: &"RESOURCE_EXHAUSTED: quota",
        }
        .emit();
        CloudRunTrustRefused {
            service: "projects/p/locations/us-central1/services/w",
            reason: "invoker_check_off",
            cause: "disabled",
        }
        .emit();
    };
    if json {
        let sub = tracing_subscriber::registry().with(CloudLogging::new("wp", sink));
        tracing::subscriber::with_default(sub, emit);
    } else {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || SinkWriter(sink.clone()))
            .with_ansi(false);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
    }
    let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    text.lines().map(String::from).collect()
}

#[test]
fn each_event_writes_the_json_line_it_wrote_before() {
    let lines: Vec<Value> = lines(true)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let announce = "copy_worker::pipeline::announce";
    let want = [
        json!({"severity": "INFO", "message": CopyStarted::MESSAGE, "target": announce,
               "stage": "request", "poll_task": "poll-17", "attempt": 2}),
        json!({"severity": "INFO", "message": CompletionPublished::MESSAGE, "target": announce,
               "stage": "request", "status": "failed", "ce_id": "ce-1"}),
        json!({"severity": "WARNING", "message": VertexQuotaExhausted::MESSAGE,
               "target": "copy_worker::pipeline::quota", "stage": "request",
               "project": "123", "region": "us-central1", "kind": "Copy", "hold_s": 30,
               "error.message": "RESOURCE_EXHAUSTED: quota"}),
        json!({"severity": "ERROR", "message": CloudRunTrustRefused::MESSAGE,
               "target": "copy_worker::app", "stage": "request",
               "service": "projects/p/locations/us-central1/services/w",
               "reason": "invoker_check_off", "error.message": "disabled"}),
    ];
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
    for (mut got, want) in lines.into_iter().zip(want) {
        got.as_object_mut().unwrap().remove("time");
        assert_eq!(got, want);
    }
}

#[test]
fn each_event_writes_the_text_line_it_wrote_before() {
    let lines = lines(false);
    let tails = [
        "copy_worker::pipeline::announce: copy started; first poll scheduled poll_task=poll-17 attempt=2",
        "copy_worker::pipeline::announce: completion published status=\"failed\" ce_id=ce-1",
        "copy_worker::pipeline::quota: Vertex AI quota exhausted; slowing down project=\"123\" region=\"us-central1\" kind=Copy hold_s=30 error.message=RESOURCE_EXHAUSTED: quota",
        "copy_worker::app: Cloud Run invoker check not confirmed; signature-removed tokens refused service=\"projects/p/locations/us-central1/services/w\" reason=\"invoker_check_off\" error.message=disabled",
    ];
    assert_eq!(lines.len(), tails.len(), "{lines:#?}");
    for (line, tail) in lines.iter().zip(tails) {
        assert!(line.ends_with(tail), "{line:?} does not end with {tail:?}");
    }
}

/// monitoring.tf's `log_metrics`: (key, message its filter matches, field it extracts).
fn log_metrics() -> Vec<(String, String, String)> {
    let monitoring = tf::file("monitoring.tf");
    let metrics: Vec<_> = tf::blocks(&monitoring, "locals", &[])
        .filter_map(|b| tf::attr(b, "log_metrics"))
        .collect();
    let [metrics] = metrics[..] else {
        panic!("expected one local.log_metrics in monitoring.tf")
    };
    let mut out = Vec::new();
    for (key, m) in tf::entries(metrics) {
        let filter = tf::string(tf::entry(m, "filter").expect("filter"));
        let message = filter
            .strip_prefix(r#"jsonPayload.message=""#)
            .and_then(|f| f.strip_suffix('"'))
            .unwrap_or_else(|| {
                panic!("{key}: a filter other than jsonPayload.message=\"…\": {filter}")
            });
        let extractor = tf::string(tf::entry(m, "extractor").expect("extractor"));
        let field = extractor
            .strip_prefix("EXTRACT(jsonPayload.")
            .and_then(|f| f.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{key}: an extractor other than EXTRACT(jsonPayload.…)"));
        out.push((key, message.to_owned(), field.to_owned()));
    }
    out
}

#[test]
fn monitoring_counts_each_event_by_its_message_and_fields() {
    let metrics = log_metrics();
    let counted: Vec<(String, String)> = metrics
        .iter()
        .map(|(k, m, _)| (k.clone(), m.clone()))
        .collect();
    let events: Vec<(String, String)> = COUNTED
        .iter()
        .map(|(k, m)| (k.to_string(), m.to_string()))
        .collect();
    assert_eq!(
        counted, events,
        "monitoring.tf's (metric, message) against the events'"
    );
    let lines: Vec<Value> = lines(true)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (key, message, field) in metrics {
        let line = lines
            .iter()
            .find(|l| l["message"] == message.as_str())
            .unwrap_or_else(|| panic!("{key} counts {message:?}, which no event writes"));
        assert!(
            SPAN_FIELDS.contains(&field.as_str()) || line.get(&field).is_some(),
            "{key} extracts jsonPayload.{field}, which {message:?} does not carry"
        );
    }
}

#[test]
fn no_other_filter_of_the_module_names_a_message_no_event_writes() {
    let needle = "jsonPayload.message";
    let mut found = 0;
    for string in tf::strings(&tf::module()) {
        for (at, _) in string.match_indices(needle) {
            let rest = &string[at + needle.len()..];
            let message = rest
                .strip_prefix(r#"=""#)
                .and_then(|r| r.split_once('"'))
                .map(|(m, _)| m)
                .unwrap_or_else(|| {
                    panic!("a jsonPayload.message filter this test cannot read: {rest:.60}")
                });
            assert!(
                COUNTED.iter().any(|(_, m)| *m == message),
                "terraform/ filters on jsonPayload.message={message:?}, which no event writes"
            );
            found += 1;
        }
    }
    assert!(
        found >= COUNTED.len(),
        "only {found} message filters in terraform/"
    );
}

#[test]
fn the_alert_on_failed_copies_counts_completion_events() {
    let alert = format!(
        r#"log_metric_types["{}"], "")}}" AND metric.labels.status="failed""#,
        CompletionPublished::METRIC
    );
    let strings = tf::strings(&tf::file("monitoring.tf"));
    assert!(
        strings.iter().any(|s| s.contains(&alert)),
        "no alert on {alert}"
    );
}
