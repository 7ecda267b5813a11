//! The core pipeline through the emulator's push delivery (DESIGN.md §1).

use std::time::{Duration, Instant};

use testkit::vertex::{CopyScript, Fault};

use crate::helpers::{Knobs, SRC, request, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_that_takes_seconds_completes_succeeded_with_destination_and_version() {
    let app = spawn_app("ok", Knobs::cloud_run()).await;
    app.vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_secs(3),
            ..Default::default()
        },
    );
    app.publish(&request("ok-1", "target-ok")).await;

    let ev = app.completion_of("ok-1", 1, 60).await.remove(0);
    let data = ev.json();
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["source_model"], SRC);
    assert_eq!(
        data["destination_model"],
        testkit::vertex::numbered("projects/dst-proj/locations/europe-west4/models/target-ok")
    );
    assert_eq!(data["destination_model_version"], "1");
    assert_eq!(data["attempts"], 1);
    assert_eq!(data["context"]["pipeline"], "it");
    assert!(data["operation"].as_str().unwrap().contains("/operations/"));
    assert_eq!(ev.attribute("ce-id"), Some("ok-1:succeeded"));
    assert_eq!(ev.attribute("ce-type"), Some("copy-worker.copy.succeeded"));
    assert_eq!(ev.attribute("ce-specversion"), Some("1.0"));
    assert_eq!(ev.attribute("status"), Some("succeeded"));
    assert_eq!(ev.attribute("destination_project"), Some("dst-proj"));
    assert!(
        ev.attribute("ce-source")
            .unwrap()
            .starts_with("//copy-worker/projects/it-ok-")
    );
    assert!(
        app.vertex
            .model_exists("projects/dst-proj/locations/europe-west4/models/target-ok")
    );
    assert!(app.dead_letters.snapshot().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_source_model_ends_failed_not_found_with_a_dead_letter_and_no_retry_storm() {
    let app = spawn_app("nf", Knobs::cloud_run()).await;
    let body = r#"{"request_id":"nf-1","source_model":"projects/src-proj/locations/us-central1/models/404404","destination":{"model_id":"target-nf"}}"#;
    app.publish(body).await;

    let ev = app.completion_of("nf-1", 1, 30).await.remove(0).json();
    assert_eq!(ev["status"], "failed");
    assert_eq!(ev["error"]["code"], "NOT_FOUND");
    let dl = app.dead_letter_of("nf-1", 30).await;
    assert_eq!(
        dl.data,
        body.as_bytes(),
        "dead letter keeps the bytes as received"
    );
    assert_eq!(dl.attribute("error_code"), Some("NOT_FOUND"));
    assert_eq!(dl.attribute("failed_stage"), Some("request"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        app.vertex_calls("models:copy"),
        1,
        "a permanent error is not retried"
    );
    assert_eq!(app.completion_of("nf-1", 1, 1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_unknown_field_and_bad_model_id_end_rejected_with_dead_letters() {
    let app = spawn_app("rej", Knobs::cloud_run()).await;
    let cases = [
        ("rej-json", "{not json", "request: is not valid JSON"),
        (
            "rej-field",
            r#"{"request_id":"rej-field","source_model":"1","colour":"red"}"#,
            "colour: is not a known field",
        ),
        (
            "rej-model",
            r#"{"request_id":"rej-model","source_model":"1","destination":{"model_id":"Bad_ID"}}"#,
            "destination.model_id: must match",
        ),
    ];
    for (id, data, _) in &cases {
        app.topology
            .publish("copy-requests", data.as_bytes(), &[("request_id", id)])
            .await
            .unwrap();
    }
    for (id, data, why) in cases {
        let ev = app.completion_of(id, 1, 30).await.remove(0);
        let j = ev.json();
        assert_eq!(j["status"], "rejected", "{id}");
        assert_eq!(j["error"]["code"], "INVALID_REQUEST");
        assert!(
            j["error"]["message"].as_str().unwrap().contains(why),
            "{id}: {j}"
        );
        assert_eq!(
            ev.attribute("ce-id"),
            Some(format!("{id}:rejected").as_str())
        );
        let dl = app.dead_letter_of(id, 30).await;
        assert_eq!(dl.data, data.as_bytes());
        assert_eq!(dl.attribute("error_code"), Some("INVALID_REQUEST"));
        assert!(dl.attribute("error_message").unwrap().contains(why));
    }
    assert_eq!(
        app.vertex.calls().len(),
        0,
        "rejections never reach Vertex AI"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_answering_503_twice_then_ok_succeeds_within_the_request() {
    let app = spawn_app("r503", Knobs::cloud_run()).await;
    app.vertex.script(
        SRC,
        CopyScript {
            copy_faults: vec![
                Fault::Http(503, "UNAVAILABLE"),
                Fault::Http(503, "UNAVAILABLE"),
            ],
            ..Default::default()
        },
    );
    app.publish(&request("r503-1", "target-r503")).await;
    let ev = app.completion_of("r503-1", 1, 60).await.remove(0).json();
    assert_eq!(ev["status"], "succeeded");
    assert_eq!(app.vertex_calls("models:copy"), 3);
    assert_eq!(app.vertex.copies_started(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vertex_outage_longer_than_the_in_request_budget_is_redelivered_then_succeeds() {
    let app = spawn_app("outage", Knobs::cloud_run()).await;
    app.vertex
        .set_outage(Instant::now() + Duration::from_secs(22), 503, "UNAVAILABLE");
    let t0 = Instant::now();
    app.publish(&request("outage-1", "target-outage")).await;
    let ev = app.completion_of("outage-1", 1, 120).await.remove(0).json();
    assert_eq!(ev["status"], "succeeded");
    assert!(t0.elapsed() >= Duration::from_secs(22));
    // The start reads the source (CopyModel's limits) and then calls CopyModel; either may
    // be the call that meets the outage and is retried.
    let refused = app
        .vertex
        .calls()
        .into_iter()
        .filter(|c| c.status == 503)
        .count();
    assert!(refused > 2, "retried during the outage: {refused}");
    assert!(refused < 40, "no retry storm: {refused}");
    assert_eq!(app.vertex.copies_started(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_ending_with_a_transient_error_is_restarted_and_succeeds() {
    let app = spawn_app("restart", Knobs::cloud_run()).await;
    app.vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_secs(1),
            operation_errors: vec![(13, "internal hiccup".into())],
            ..Default::default()
        },
    );
    app.publish(&request("restart-1", "target-restart")).await;
    let ev = app.completion_of("restart-1", 1, 60).await.remove(0).json();
    assert_eq!(ev["status"], "succeeded");
    assert_eq!(ev["attempts"], 2);
    assert_eq!(app.vertex.copies_started(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_that_keeps_failing_ends_failed_after_copy_max_attempts() {
    let app = spawn_app("exhaust", Knobs::cloud_run()).await;
    app.vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_millis(500),
            operation_errors: vec![(14, "busy".into()); 5],
            ..Default::default()
        },
    );
    app.publish(&request("exhaust-1", "target-exhaust")).await;
    let ev = app.completion_of("exhaust-1", 1, 90).await.remove(0).json();
    assert_eq!(ev["status"], "failed");
    assert_eq!(ev["error"]["code"], "UNAVAILABLE");
    assert_eq!(ev["attempts"], 3);
    assert_eq!(app.vertex.copies_started(), 3);
    let dl = app.dead_letter_of("exhaust-1", 30).await;
    assert_eq!(dl.attribute("failed_stage"), Some("operation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_running_past_copy_max_duration_fails_with_deadline_exceeded() {
    let knobs = Knobs {
        extra_args: vec!["--copy-max-duration".into(), "4s".into()],
        ..Knobs::cloud_run()
    };
    let app = spawn_app("slow", knobs).await;
    app.vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_secs(600),
            ..Default::default()
        },
    );
    app.publish(&request("slow-1", "target-slow")).await;
    let ev = app.completion_of("slow-1", 1, 60).await.remove(0).json();
    assert_eq!(ev["status"], "failed");
    assert_eq!(ev["error"]["code"], "DEADLINE_EXCEEDED");
    app.dead_letter_of("slow-1", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_completions_topic_leads_to_redelivery_not_loss() {
    let mut knobs = Knobs::cloud_run();
    knobs.topology.create_completions_topic = false;
    let app = spawn_app("nocomp", knobs).await;
    app.publish(&request("nocomp-1", "target-nocomp")).await;
    // Let the copy finish and the completion publish fail a few times.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        app.vertex
            .model_exists("projects/dst-proj/locations/europe-west4/models/target-nocomp")
    );
    app.topology.create_topic("copy-completions").await.unwrap();
    app.topology
        .create_pull_subscription("copy-completions-all", "copy-completions")
        .await
        .unwrap();
    let inbox = testkit::pubsub::Inbox::open(&app.topology, "copy-completions-all")
        .await
        .unwrap();
    let got = inbox
        .wait_for(1, Duration::from_secs(60), |m| {
            m.attribute("request_id") == Some("nocomp-1")
        })
        .await
        .unwrap();
    assert_eq!(got[0].json()["status"], "succeeded");
    assert_eq!(app.vertex.copies_started(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_keeps_the_callers_attributes_so_the_replay_guard_sees_replay_count() {
    let app = spawn_app("dlattrs", Knobs::cloud_run()).await;
    let body = r#"{"request_id":"dla-1","source_model":"projects/src-proj/locations/us-central1/models/404404","destination":{"model_id":"dla"}}"#;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    app.topology
        .publish(
            "copy-requests",
            body.as_bytes(),
            &[
                ("request_id", "dla-1"),
                ("replay_count", "2"),
                ("traceparent", tp),
            ],
        )
        .await
        .unwrap();
    let dl = app.dead_letter_of("dla-1", 30).await;
    assert_eq!(dl.attribute("replay_count"), Some("2"));
    assert_eq!(dl.attribute("traceparent"), Some(tp));
    let ev = app.completion_of("dla-1", 1, 30).await.remove(0);
    assert_eq!(
        ev.attribute("traceparent"),
        Some(tp),
        "traceparent is carried onto the event"
    );
}
