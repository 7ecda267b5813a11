//! The core pipeline through the emulator's push delivery (DESIGN.md §1).

use std::time::{Duration, Instant};

use crate::helpers::{Knobs, SRC, request, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_that_takes_seconds_completes_succeeded_with_destination_and_version() {
    let app = spawn_app("ok", Knobs::cloud_run()).await;
    app.copies_take(Duration::from_secs(3));
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
        .of_request("nocomp-1", 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(got[0].json()["status"], "succeeded");
    assert_eq!(app.vertex.copies_started(), 1);
}
