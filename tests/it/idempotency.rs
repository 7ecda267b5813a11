//! One copy per request against a Vertex fake that, like the real service, names every
//! resource it returns with the project number (DESIGN.md §1 and §10): redeliveries and repeated
//! publishes never add a copy, never end `failed`, and every event names the destination
//! the same canonical way.

use std::time::Duration;

use copy_worker::pipeline::{Dispatch, StepOutcome};
use testkit::Received;
use testkit::vertex::numbered;

use crate::helpers::{Knobs, SRC, TestApp, request, spawn_app};
use crate::shutdown::start_task;

/// The parent model of the `parent_model` tests (its version 1 is there from the start).
const PARENT: &str = "projects/dst-proj/locations/us-central1/models/55";

fn parent_request(id: &str) -> String {
    format!(
        r#"{{"request_id":"{id}","source_model":"{SRC}","destination":{{"parent_model":"{PARENT}"}}}}"#
    )
}

/// Every event succeeded and names `model` (canonical, number form) in its body and in
/// `ce-subject`, with `version`; `destination_project` keeps the request's spelling.
fn assert_all_succeeded(events: &[Received], model: &str, version: &str) {
    for e in events {
        let data = e.json();
        assert_eq!(data["status"], "succeeded", "{data}");
        assert_eq!(data["destination_model"], model, "{data}");
        assert_eq!(data["destination_model_version"], version, "{data}");
        assert_eq!(e.attribute("ce-subject"), Some(model));
        let ce_id = format!("{}:succeeded", data["request_id"].as_str().unwrap());
        assert_eq!(e.attribute("ce-id"), Some(ce_id.as_str()), "one ce-id");
        assert_eq!(e.attribute("destination_project"), Some("dst-proj"));
    }
}

async fn parent_app(name: &str, copy_takes: Duration) -> TestApp {
    let app = spawn_app(name, Knobs::default()).await;
    app.vertex.add_model(PARENT);
    app.copies_take(copy_takes);
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_id_request_published_three_times_copies_once_and_only_succeeds() {
    let app = spawn_app("iddup", Knobs::default()).await;
    app.copies_take(Duration::from_secs(3));
    for _ in 0..3 {
        app.publish(&request("iddup-1", "target-iddup")).await;
    }
    let events = app.completion_of("iddup-1", 3, 90).await;
    let model = numbered("projects/dst-proj/locations/europe-west4/models/target-iddup");
    assert_all_succeeded(&events, &model, "1");
    assert_eq!(app.vertex.copies_started(), 1, "exactly one copy");

    // Published again once the copy exists: ALREADY_EXISTS is judged ours, not a conflict.
    app.publish(&request("iddup-1", "target-iddup")).await;
    let events = app.completion_of("iddup-1", 4, 60).await;
    assert_all_succeeded(&events, &model, "1");
    assert_eq!(app.vertex.copies_started(), 1);
    assert!(app.dead_letters.snapshot().is_empty(), "no dead letter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_model_request_published_three_times_while_copying_adds_one_version() {
    let app = parent_app("pdup", Duration::from_secs(4)).await;
    for _ in 0..3 {
        app.publish(&parent_request("pdup-1")).await;
    }
    // The second and third starts find this instance's copy running and its chain already
    // there (the first poll's name): one chain, one event.
    let events = app.completion_of("pdup-1", 1, 90).await;
    assert_all_succeeded(&events, &numbered(PARENT), "2");
    assert_eq!(app.vertex.copies_started(), 1, "one new version");

    // And once more after the copy ended: the pre-check finds version 2.
    app.publish(&parent_request("pdup-1")).await;
    let events = app.completion_of("pdup-1", 2, 60).await;
    assert_all_succeeded(&events, &numbered(PARENT), "2");
    assert_eq!(app.vertex.copies_started(), 1);
    assert!(app.dead_letters.snapshot().is_empty(), "no dead letter");
}

/// The window the API leaves (DESIGN.md §1): a running `parent_model` copy is invisible to
/// ListModelVersions and to the operation's metadata, so a start that reaches a *second*
/// instance while the first instance's copy runs starts one more version. Each instance still
/// starts at most one, and once a copy has ended no instance starts another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cross_instance_window_for_parent_model_is_one_version_per_instance_while_copying() {
    let app = parent_app("pwin", Duration::from_secs(4)).await;
    let other = app.second_instance().await;
    let data = parent_request("pwin-1");
    let start_on_other = |origin: &str| {
        let body = start_task(&data, origin);
        let other = &other;
        async move {
            other
                .pipeline
                .start_stage(Dispatch {
                    task_name: "start-by-hand",
                    body: body.as_bytes(),
                })
                .await
        }
    };

    app.publish(&data).await;
    wait_until(|| app.vertex.copies_started() == 1, "the first copy starts").await;

    // A start of the same request reaches the second instance while the first copy runs.
    let first = start_on_other("b-1").await;
    assert!(matches!(first, StepOutcome::Acked), "{first:?}");
    assert_eq!(
        app.vertex.copies_started(),
        2,
        "one more version, from instance 2"
    );
    // Again on the second instance while copying: it polls its own copy.
    let again = start_on_other("b-2").await;
    assert!(matches!(again, StepOutcome::Acked), "{again:?}");
    assert_eq!(app.vertex.copies_started(), 2, "no third version");

    // Both chains end (their polls reach the first instance through the poll queue).
    let events = app.completion_of("pwin-1", 2, 90).await;
    for e in &events {
        assert_eq!(e.json()["status"], "succeeded");
        assert_eq!(e.json()["destination_model"], numbered(PARENT));
    }
    // After the window: neither instance adds a version.
    let after = start_on_other("b-3").await;
    assert!(matches!(after, StepOutcome::Acked), "{after:?}");
    app.publish(&data).await;
    app.completion_of("pwin-1", 4, 60).await;
    assert_eq!(app.vertex.copies_started(), 2);
    assert!(app.dead_letters.snapshot().is_empty(), "no dead letter");
}

async fn wait_until(cond: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
