//! Pub/Sub's message limits (DESIGN.md §10, "Limits"). The stages' 45 s budget is a
//! paused-time unit test of the start stage (`pipeline::start_stage::tests`).

use std::time::Duration;

use crate::helpers::{Knobs, request, spawn_app};

/// A caller message already at Pub/Sub's 100-attribute limit: the tasks carry what fits,
/// the dead letter's own fields must still fit, so the caller's extras give way, and the copy
/// neither loops on retries nor loses its data.
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
