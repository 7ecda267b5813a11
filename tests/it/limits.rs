//! The request stage's time budget and Pub/Sub's message limits (DESIGN.md §4 and §10, "Limits").

use std::time::{Duration, Instant};

use copy_worker::pipeline::{REQUEST_STAGE_BUDGET, RetryReason, StepOutcome};
use testkit::pubsub::Inbox;
use testkit::{CopyScript, Fault};

use crate::helpers::{Knobs, SRC, push_message, request, spawn_app};

/// The ack deadline of `copy-requests-push` (DESIGN.md §10, terraform/pubsub.tf).
const REQUEST_ACK_DEADLINE: Duration = Duration::from_secs(60);

/// Worst case: every CopyModel call hangs until the 40 s call timeout, and timeouts are
/// transient, so the in-request retries alone would run for minutes (their 15 s limit counts
/// only the waits between calls). The stage still answers at its budget, before the ack
/// deadline, so Pub/Sub never delivers the same request twice at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_stage_delivery_answers_within_its_45_s_budget_when_vertex_hangs() {
    assert_eq!(REQUEST_STAGE_BUDGET, Duration::from_secs(45));
    assert!(REQUEST_STAGE_BUDGET + Duration::from_secs(10) <= REQUEST_ACK_DEADLINE);

    let knobs = Knobs {
        extra_args: vec!["--vertex-call-timeout".into(), "40s".into()],
        ..Knobs::default()
    };
    let app = spawn_app("budget", knobs).await;
    app.vertex.script(
        SRC,
        CopyScript {
            copy_faults: (0..4)
                .map(|_| Fault::Delay(Duration::from_secs(120)))
                .collect(),
            ..Default::default()
        },
    );
    let instance = app.second_instance().await;
    let msg = push_message("m-1", &request("budget-1", "target-budget"), &[]);

    let t0 = Instant::now();
    let outcome = instance.pipeline.request_stage(&msg).await;
    let took = t0.elapsed();

    assert!(
        matches!(outcome, StepOutcome::Retry(RetryReason::OutOfTime { .. })),
        "{outcome:?}"
    );
    assert!(took >= REQUEST_STAGE_BUDGET, "answered early: {took:?}");
    assert!(
        took < REQUEST_STAGE_BUDGET + Duration::from_secs(5),
        "answered late: {took:?}"
    );
}

/// A caller message already at Pub/Sub's 100-attribute limit: the worker's own attributes
/// (operation, attempt, accepted_at; the dead-letter fields) must still fit, so the
/// caller's extras give way, and the copy neither loops on 503 nor loses its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_message_with_100_attributes_is_handed_on_within_pubsubs_limits() {
    let app = spawn_app("attrs", Knobs::default()).await;
    app.copies_take(Duration::from_secs(1));
    app.topology
        .create_pull_subscription("ops-tap", "copy-operations")
        .await
        .unwrap();
    let watches = Inbox::open(&app.topology, "ops-tap").await.unwrap();

    let long = "v".repeat(1024);
    let owned: Vec<(String, String)> = (0..99)
        .map(|i| (format!("caller-{i:02}"), long.clone()))
        .chain([("request_id".to_owned(), "ignored".to_owned())])
        .collect();
    let attrs: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(attrs.len(), 100);

    // A valid request: the watch message carries the worker's attributes and ≤ 100 in all.
    app.topology
        .publish(
            "copy-requests",
            request("attrs-ok", "target-attrs").as_bytes(),
            &attrs,
        )
        .await
        .expect("the emulator accepts 100 attributes");
    let ev = app.completion_of("attrs-ok", 1, 60).await.remove(0).json();
    assert_eq!(ev["status"], "succeeded");
    let w = watches
        .wait_for(1, Duration::from_secs(30), |_| true)
        .await
        .unwrap()
        .remove(0);
    assert!(w.attributes.len() <= 100, "{}", w.attributes.len());
    for key in ["operation", "attempt", "accepted_at"] {
        assert!(w.attribute(key).is_some(), "watch lacks {key}");
    }
    assert_eq!(w.attribute("request_id"), Some("attrs-ok"), "ours wins");
    assert_eq!(
        w.attribute("caller-00"),
        Some(long.as_str()),
        "extras kept first"
    );

    // An invalid request: the dead letter keeps its own fields and ≤ 100 in all.
    app.topology
        .publish(
            "copy-requests",
            br#"{"request_id":"attrs-bad","source_model":"nope"}"#,
            &attrs,
        )
        .await
        .unwrap();
    let dl = app.dead_letter_of("attrs-bad", 60).await;
    assert!(dl.attributes.len() <= 100, "{}", dl.attributes.len());
    for key in [
        "failed_stage",
        "error_code",
        "error_message",
        "dead_lettered_at",
    ] {
        assert!(dl.attribute(key).is_some(), "dead letter lacks {key}");
    }
    assert_eq!(
        String::from_utf8_lossy(&dl.data),
        r#"{"request_id":"attrs-bad","source_model":"nope"}"#
    );
}
