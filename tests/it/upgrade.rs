//! The upgrade from the watch-message release (docs/DESIGN.md, "Upgrading"): watches the old
//! release left on `copy-operations`, of running and of pending copies, are drained into tasks
//! by `POST /pubsub/copy-operations` (`COPY_OPERATIONS_DRAIN=true`) and no copy is lost.

use std::time::Duration;

use copy_worker::clients::{GoogleVertex, Vertex as _, VertexOptions};
use copy_worker::domain::{CopyRequest, Defaults};
use testkit::TopologyOptions;

use crate::helpers::{Knobs, TestApp, request, spawn_app};

/// A watch message of the previous release for the copy `id` (`{id}-t`), with its operation
/// when the old release had started the copy.
async fn publish_watch(app: &TestApp, id: &str, op: Option<&str>, accepted: &str) {
    let mut attrs = vec![
        ("request_id", id),
        ("attempt", "1"),
        ("accepted_at", accepted),
    ];
    if let Some(op) = op {
        attrs.push(("operation", op));
    }
    let data = request(id, &format!("{id}-t"));
    app.topology
        .publish("copy-operations", data.as_bytes(), &attrs)
        .await
        .unwrap();
}

/// A copy-start task the old release had queued: a push envelope, posted by the queue.
async fn post_old_start_task(app: &TestApp, accepted: &str) {
    let old_start = crate::child::envelope(
        "777",
        request("up-oldstart", "up-oldstart-t").as_bytes(),
        &[
            ("attempt", "1"),
            ("accepted_at", accepted),
            ("request_id", "up-oldstart"),
        ],
    );
    let status = reqwest::Client::new()
        .post(format!("{}/tasks/copy-starts", app.base_url))
        .body(old_start)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status.as_u16(),
        204,
        "the old task is handed on in the new form"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_left_by_the_previous_release_all_end_succeeded() {
    let knobs = Knobs {
        extra_args: vec!["--copy-operations-drain".into(), "true".into()],
        topology: TopologyOptions {
            legacy_operations: true,
            ..Knobs::default().topology
        },
        ..Knobs::default()
    };
    let app = spawn_app("upgrade", knobs).await;
    app.copies_take(Duration::from_secs(2));
    // A copy the old release had started: its operation runs in Vertex AI.
    let vertex = GoogleVertex::new(VertexOptions {
        endpoint: Some(app.vertex.endpoint()),
        ..Default::default()
    });
    let req = CopyRequest::parse(
        request("up-running", "up-running-t").as_bytes(),
        &Defaults::default(),
    )
    .unwrap();
    let running = vertex.start_copy(&req, None).await.unwrap().to_string();
    let accepted = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let accepted = accepted.as_str();
    publish_watch(&app, "up-running", Some(&running), accepted).await;
    // A pending watch: the old release had not started the copy yet.
    publish_watch(&app, "up-pending", None, accepted).await;
    post_old_start_task(&app, accepted).await;
    for id in ["up-running", "up-pending", "up-oldstart"] {
        let ev = app.completion_of(id, 1, 60).await;
        assert_eq!(ev[0].attribute("status"), Some("succeeded"), "{id}");
    }
    assert_eq!(
        app.vertex.copies_started(),
        3,
        "the running copy is followed, not started again"
    );
    assert!(app.dead_letters.snapshot().is_empty());
}
