//! One copy per request against a Vertex fake that, like the real service, names every
//! resource it returns with the project number (DESIGN.md §1 and §10): redeliveries and repeated
//! publishes never add a copy, never end `failed`, and every event names the destination
//! the same canonical way.

use std::time::Duration;

use copy_worker::pipeline::{Dispatch, StepOutcome};
use testkit::Received;
use testkit::vertex::numbered;

use crate::helpers::{Knobs, SRC, TestApp, push_message, request, spawn_app};
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

/// CopyModel into a parent has no idempotency key, and a call that timed out may still add the
/// version (the fake's `SlowAnswer` applies the call, then answers after the client gave up).
/// The worker does not repeat that call in-request: it answers 503, and the redelivery looks
/// for the version first and finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_model_copy_whose_call_timed_out_is_not_repeated_and_adds_one_version() {
    let knobs = Knobs {
        extra_args: vec!["--vertex-call-timeout".into(), "1s".into()],
        ..Knobs::default()
    };
    let app = spawn_app("pamb", knobs).await;
    app.vertex.add_model(PARENT);
    app.vertex.script(
        SRC,
        testkit::CopyScript {
            duration: Duration::ZERO,
            copy_faults: vec![testkit::Fault::SlowAnswer(Duration::from_secs(3))],
            ..Default::default()
        },
    );
    app.publish(&parent_request("pamb-1")).await;
    let events = app.completion_of("pamb-1", 1, 60).await;
    assert_all_succeeded(&events, &numbered(PARENT), "2");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.vertex.copies_started(),
        1,
        "one version: the timed-out call was not repeated"
    );
    assert!(app.dead_letters.snapshot().is_empty());
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

/// The crash window of DESIGN.md §1: CopyModel started, then the process died before the
/// first poll was created. The retried start gets ALREADY_EXISTS while the copy still runs;
/// instead of answering 503 until the copy is readable, it queues its next start for later
/// (2xx), which reads the destination again until it is ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_during_the_first_copy_asks_again_later_and_succeeds() {
    let app = spawn_app("pending", Knobs::default()).await;
    app.copies_take(Duration::from_secs(4));
    let data = request("pending-1", "target-pending");
    let instance = app.second_instance().await;
    // "Instance 1" started the copy and died: start it here, directly on the fake.
    let first = instance
        .pipeline
        .vertex
        .start_copy(
            &copy_worker::domain::CopyRequest::parse(data.as_bytes(), &defaults()).unwrap(),
            None,
        )
        .await
        .expect("the first copy starts");
    assert!(first.as_str().contains("/operations/"));

    let t0 = std::time::Instant::now();
    let outcome = instance
        .pipeline
        .request_stage(&push_message("p-1", &data, &[]))
        .await;
    assert!(
        matches!(outcome, StepOutcome::Acked),
        "acked, not 503: {outcome:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "answered at once");

    // The start reaches the first instance through the copy-start queue, finds the copy
    // running (ALREADY_EXISTS, not readable), and asks again after at least 10 s.
    let events = app.completion_of("pending-1", 1, 60).await;
    assert_all_succeeded(
        &events,
        &numbered("projects/dst-proj/locations/europe-west4/models/target-pending"),
        "1",
    );
    assert_eq!(app.vertex.copies_started(), 1, "no second copy");
    assert!(app.dead_letters.snapshot().is_empty());
}

fn defaults() -> copy_worker::domain::Defaults {
    copy_worker::domain::Defaults {
        target_project: Some("dst-proj".into()),
        ..Default::default()
    }
}
