//! The stages' time budget and Pub/Sub's message limits (DESIGN.md §4 and §10, "Limits").

use std::time::{Duration, Instant};

use copy_worker::pipeline::{Dispatch, REQUEST_STAGE_BUDGET, RetryReason, StepOutcome};
use testkit::{CopyScript, Fault};

use crate::helpers::{Knobs, SRC, request, spawn_app};
use crate::shutdown::start_task;

/// The tasks' dispatch deadline and the ack deadline of `copy-requests-push` (DESIGN.md §10).
const REQUEST_ACK_DEADLINE: Duration = Duration::from_secs(60);

/// Worst case: every CopyModel call hangs until the 40 s call timeout, and timeouts are
/// transient, so the in-request retries alone would run for minutes (their 15 s limit counts
/// only the waits between calls). The start stage still answers at its budget, before the
/// tasks' 60 s dispatch deadline, so Cloud Tasks never runs the same start twice at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_answers_within_its_45_s_budget_when_vertex_hangs() {
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
    let body = start_task(&request("budget-1", "target-budget"), "m-1");

    let t0 = Instant::now();
    let outcome = instance
        .pipeline
        .start_stage(Dispatch {
            task_name: "start-budget-1",
            body: body.as_bytes(),
        })
        .await;
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

/// A caller message already at Pub/Sub's 100-attribute limit: the tasks carry what fits,
/// the dead letter's own fields must still fit, so the caller's extras give way, and the copy
/// neither loops on 503 nor loses its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_message_with_100_attributes_is_handed_on_within_the_limits() {
    let app = spawn_app("attrs", Knobs::default()).await;
    app.copies_take(Duration::from_secs(1));

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

    // A valid request: every task fits, and the copy goes through.
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
    assert!(app.tasks.given_up().is_empty());
    assert!(
        app.tasks.dispatches().iter().all(|d| d.status == 204),
        "no task was refused or retried: {:?}",
        app.tasks.dispatches()
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
