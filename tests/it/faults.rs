//! Faults from Vertex AI and Pub/Sub, and panics: each ends as DESIGN.md §4 says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use copy_worker::app::build_state;
use copy_worker::clients::{GoogleVertex, OperationState, Vertex, VertexOptions};
use copy_worker::domain::ModelInfo;
use copy_worker::domain::OperationName;
use copy_worker::domain::{CopyRequest, Destination, KmsKeyName};
use copy_worker::http::app;
use copy_worker::retry::Failure;
use testkit::vertex::{CopyScript, Fault};
use testkit::{Inbox, Topology, VertexFake};
use tower::ServiceExt as _;

use crate::child::envelope;
use crate::helpers::{Knobs, SRC, emulator, request, spawn_app, start_tasks, test_config};
use crate::shutdown::start_task;

async fn ends_succeeded_after(fault: Fault, extra_args: &[&str], name: &str) -> VertexFake {
    let knobs = Knobs {
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        ..Knobs::default()
    };
    let app = spawn_app(name, knobs).await;
    app.vertex.script(
        SRC,
        CopyScript {
            copy_faults: vec![fault],
            ..Default::default()
        },
    );
    let id = format!("{name}-1");
    app.publish(&request(&id, name)).await;
    let ev = app.completion_of(&id, 1, 90).await.remove(0).json();
    assert_eq!(ev["status"], "succeeded", "{ev}");
    assert_eq!(app.vertex.copies_started(), 1, "one copy only");
    assert!(app.dead_letters.snapshot().is_empty());
    app.vertex
}

/// A 429 on CopyModel is Vertex AI's shared quota: not retried in-request (that spends more
/// of it), but asks for a retry, so that the copy-start queue holds the start
/// back before the next CopyModel (DESIGN.md §10). No dead letter, one copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_answering_429_slows_the_start_queue_and_the_copy_succeeds() {
    let v = ends_succeeded_after(Fault::Http(429, "RESOURCE_EXHAUSTED"), &[], "f429").await;
    let copies: Vec<_> = v
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("models:copy"))
        .collect();
    assert_eq!(copies.len(), 2, "the 429, then the copy");
    let gap = copies[1].at.duration_since(copies[0].at);
    // The worker's Retry-After (10 s); the fake's queue honours it as Cloud Tasks does.
    assert!(
        gap >= Duration::from_secs(9),
        "held back after the 429: {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_on_copy_is_retried_and_succeeds() {
    let v = ends_succeeded_after(Fault::ResetConnection, &[], "freset").await;
    assert!(v.calls().iter().any(|c| c.status == 0), "the fault fired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_call_slower_than_the_call_timeout_is_retried_and_succeeds() {
    let t0 = std::time::Instant::now();
    ends_succeeded_after(
        Fault::Delay(Duration::from_secs(6)),
        &["--vertex-call-timeout", "1s"],
        "fslow",
    )
    .await;
    assert!(t0.elapsed() < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_completions_topic_deleted_mid_run_delays_but_does_not_lose_the_event() {
    let app = spawn_app("fdel", Knobs::default()).await;
    app.copies_take(Duration::from_secs(3));
    app.publish(&request("fdel-1", "fdel")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.topology.delete_topic("copy-completions").await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(app.completions().snapshot().is_empty());
    app.topology.create_topic("copy-completions").await.unwrap();
    app.topology
        .create_pull_subscription("after", "copy-completions")
        .await
        .unwrap();
    let inbox = Inbox::open(&app.topology, "after").await.unwrap();
    let got = inbox
        .of_request("fdel-1", 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(got[0].json()["status"], "succeeded");
    assert_eq!(app.vertex.copies_started(), 1);
}

/// Panics on the first copy, then behaves like the real client.
struct PanicOnce {
    armed: AtomicBool,
    inner: GoogleVertex,
}

#[async_trait]
impl Vertex for PanicOnce {
    async fn start_copy(
        &self,
        req: &CopyRequest,
        key: Option<&KmsKeyName>,
    ) -> Result<OperationName, Failure> {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("injected panic");
        }
        self.inner.start_copy(req, key).await
    }
    async fn get_operation(&self, op: &OperationName) -> Result<OperationState, Failure> {
        self.inner.get_operation(op).await
    }
    async fn get_model(&self, name: &str, location: &str) -> Result<Option<ModelInfo>, Failure> {
        self.inner.get_model(name, location).await
    }
    async fn find_copies(&self, dest: &Destination) -> Result<Vec<ModelInfo>, Failure> {
        self.inner.find_copies(dest).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_stage_answers_500_and_the_next_delivery_succeeds() {
    let project = format!("fpanic-{}", std::process::id());
    let t = Topology::connect(&emulator().endpoint(), &project)
        .await
        .unwrap();
    for topic in ["copy-completions", "copy-dead-letter", "copy-requests"] {
        t.create_topic(topic).await.unwrap();
    }
    let fake = VertexFake::start().await.unwrap();
    fake.add_model(SRC);
    // Nothing listens where the tasks would go: the first poll waits in the fake's queue.
    let (_tasks, args) = start_tasks("http://127.0.0.1:9", None, &Knobs::default()).await;
    let cfg = test_config(&project, &fake.endpoint(), args);
    let (mut state, _) = build_state(&cfg).await.unwrap();
    state.pipeline.vertex = Arc::new(PanicOnce {
        armed: AtomicBool::new(true),
        inner: GoogleVertex::new(VertexOptions {
            endpoint: Some(fake.endpoint()),
            ..Default::default()
        }),
    });
    let router = app(state);
    // The start stage is the one that calls Vertex AI.
    let body = start_task(&request("panic-1", "panic-target"), "m-panic-1");
    let post = || {
        Request::post("/tasks/copy-starts")
            .body(Body::from(body.clone()))
            .unwrap()
    };
    let first = router.clone().oneshot(post()).await.unwrap();
    assert_eq!(first.status(), 500);
    let second = router.oneshot(post()).await.unwrap();
    assert_eq!(
        second.status(),
        204,
        "the process still serves and the redelivery succeeds"
    );
    assert_eq!(fake.copies_started(), 1);
}

/// An invalid request: the stage's hand-off is its `rejected` event and dead letter, both on
/// Pub/Sub (a valid one would hand on a Cloud Tasks task instead).
fn invalid_request(id: &str, n: &str) -> Request<Body> {
    let data = format!(r#"{{"request_id":"{id}","source_model":""}}"#);
    let body = envelope(n, data.as_bytes(), &[]);
    Request::post("/pubsub/copy-requests")
        .body(Body::from(body))
        .unwrap()
}

/// The topics the request stage publishes to, created in `project` on the emulator at
/// `endpoint`.
async fn request_stage_topics(endpoint: &str, project: &str) -> Topology {
    let t = Topology::connect(endpoint, project).await.unwrap();
    for topic in ["copy-completions", "copy-dead-letter", "copy-requests"] {
        t.create_topic(topic).await.unwrap();
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emulator_restart_mid_run_gets_retries_not_acks_and_the_worker_recovers() {
    let mut emu = testkit::Emulator::start().await.unwrap();
    let project = format!("frestart-{}", std::process::id());
    let fake = VertexFake::start().await.unwrap();
    fake.add_model(SRC);
    let override_host = vec!["--pubsub-emulator-host".to_owned(), emu.host()];
    let cfg = test_config(&project, &fake.endpoint(), override_host);
    let (state, _) = build_state(&cfg).await.unwrap();
    let router = app(state);
    request_stage_topics(&emu.endpoint(), &project).await;
    let post = invalid_request;
    assert_eq!(
        router
            .clone()
            .oneshot(post("rs-1", "1"))
            .await
            .unwrap()
            .status(),
        204
    );

    // The emulator goes away: the event cannot be handed on, so the delivery is not acked.
    emu = tokio::task::spawn_blocking(move || {
        emu.stop();
        emu
    })
    .await
    .unwrap();
    let during = router
        .clone()
        .oneshot(post("rs-2", "2"))
        .await
        .unwrap()
        .status();
    assert_eq!(
        during, 503,
        "a delivery whose hand-off failed is never acked"
    );

    // It comes back empty on the same port; once the topics exist again, work resumes.
    emu = tokio::task::spawn_blocking(move || {
        emu.restart().expect("emulator restart");
        emu
    })
    .await
    .unwrap();
    let t = request_stage_topics(&emu.endpoint(), &project).await;
    t.create_pull_subscription("events", "copy-completions")
        .await
        .unwrap();
    let events = Inbox::open(&t, "events").await.unwrap();
    assert_eq!(
        router.oneshot(post("rs-2", "2")).await.unwrap().status(),
        204,
        "the redelivery succeeds"
    );
    let got = events
        .of_request("rs-2", 1, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(got[0].attribute("ce-id"), Some("rs-2:rejected"));
    emu.stop();
}
