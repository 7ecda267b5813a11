//! One deadline per delivery (docs/DESIGN.md §4): a watch delivery answers before the ack
//! deadline of `copy-operations-push` (`COPY_OPERATIONS_ACK_DEADLINE`), counted from its
//! arrival, however slow Vertex AI's reads are and however long a pending watch waits for a
//! copy slot. Pub/Sub sends a delivery again once its ack deadline passes; for a watch that
//! would double the watch chain (duplicate events and callbacks).
//!
//! Deliveries are handed straight to a second instance of the deployment, so that each one
//! can be timed from its arrival.

use std::time::{Duration, Instant};

use copy_worker::pipeline::StepOutcome;
use testkit::{CopyScript, Fault};

use crate::helpers::{Knobs, SRC, TestApp, push_message, request, spawn_app};

/// The ack deadline these tests configure, and a hold that nearly fills it (allowed: below).
const ACK_DEADLINE: Duration = Duration::from_secs(10);

async fn app(name: &str, extra: &[&str]) -> TestApp {
    let mut args = vec!["--operations-ack-deadline", "10s", "--watch-hold", "9s"];
    args.extend(extra);
    let knobs = Knobs {
        extra_args: args.iter().map(|s| s.to_string()).collect(),
        ..Knobs::default()
    };
    spawn_app(name, knobs).await
}

/// A watch delivery of request `id`, following `operation` ("" for a pending watch).
fn watch(id: &str, operation: &str) -> copy_worker::http::PushMessage {
    let now = chrono::Utc::now().to_rfc3339();
    let mut attrs = vec![("request_id", id), ("attempt", "1"), ("accepted_at", &now)];
    if !operation.is_empty() {
        attrs.push(("operation", operation));
    }
    let data = request(id, &format!("target-{id}"));
    push_message(&format!("w-{id}"), &data, &attrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_watch_with_slow_reads_continues_as_new_before_its_ack_deadline() {
    let app = app("dl-held", &[]).await;
    // Each GetOperation takes 3 s: a hold of 9 s would end its last read near 12 s.
    app.vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_secs(600),
            get_operation_faults: vec![Fault::Delay(Duration::from_secs(3)); 100],
            ..CopyScript::default()
        },
    );
    app.publish(&request("dl-held", "target-dl-held")).await;
    let op = wait_for_operation(&app).await;
    let other = app.second_instance().await;
    for round in 0..2 {
        let arrived = Instant::now();
        let outcome = other.pipeline.watch_stage(&watch("dl-held", &op)).await;
        let took = arrived.elapsed();
        assert!(
            matches!(outcome, StepOutcome::Acked),
            "round {round}: continues as new with a 204, not a 503: {outcome:?}"
        );
        assert!(
            took < ACK_DEADLINE,
            "round {round}: answered after {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_watch_without_a_copy_slot_answers_before_its_ack_deadline() {
    // One copy a minute for the deployment: the second copy has no slot within the hold.
    let app = app("dl-pending", &["--vertex-copy-rate", "1"]).await;
    app.copies_take(Duration::from_secs(600));
    let other = app.second_instance().await;
    let first = other.pipeline.watch_stage(&watch("dl-pend-1", "")).await;
    assert!(matches!(first, StepOutcome::Acked), "{first:?}");
    let arrived = Instant::now();
    let second = other.pipeline.watch_stage(&watch("dl-pend-2", "")).await;
    let took = arrived.elapsed();
    assert!(matches!(second, StepOutcome::Acked), "{second:?}");
    assert!(took < ACK_DEADLINE, "answered after {took:?}");
    assert!(
        took >= Duration::from_secs(3),
        "it waited for a slot before handing the watch on (no spin): {took:?}"
    );
}

/// The operation of the first copy the worker started.
async fn wait_for_operation(app: &TestApp) -> String {
    for _ in 0..300 {
        if let Some(op) = app.vertex.operations().into_iter().next() {
            return op;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no copy started within 30 s");
}

/// A push authenticator that takes its time (a cold JWKS fetch, say), then allows.
struct SlowAuth(Duration);

#[async_trait::async_trait]
impl copy_worker::http::PushAuth for SlowAuth {
    async fn check(&self, _authorization: Option<&str>) -> copy_worker::http::AuthDecision {
        tokio::time::sleep(self.0).await;
        copy_worker::http::AuthDecision::Allowed
    }
}

/// The deadline counts from the delivery's arrival, not from the stage's start: time spent
/// authenticating the push (here 4 s) comes out of the same ack deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_answers_within_its_deadline_counted_from_arrival_even_after_slow_authentication() {
    use base64::Engine as _;
    use tower::ServiceExt as _;
    let app = app("dl-arrival", &["--vertex-copy-rate", "1"]).await;
    app.copies_take(Duration::from_secs(600));
    let mut other = app.second_instance().await;
    // The only copy slot of the minute goes to a first pending watch.
    let first = other.pipeline.watch_stage(&watch("dl-arr-1", "")).await;
    assert!(matches!(first, StepOutcome::Acked), "{first:?}");
    other.push_auth = std::sync::Arc::new(SlowAuth(Duration::from_secs(4)));
    let now = chrono::Utc::now().to_rfc3339();
    let data = request("dl-arr-2", "target-dl-arr-2");
    let body = serde_json::json!({
        "subscription": "projects/p/subscriptions/copy-operations-push",
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "attributes": {"request_id": "dl-arr-2", "attempt": "1", "accepted_at": now},
            "messageId": "w-arr-2", "publishTime": now,
        }
    });
    let req = axum::http::Request::post("/pubsub/copy-operations")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let arrived = Instant::now();
    let resp = copy_worker::http::app(other).oneshot(req).await.unwrap();
    let took = arrived.elapsed();
    assert_eq!(resp.status().as_u16(), 204);
    // The usable share of a 10 s ack deadline is 7.5 s; from the stage's start it would
    // have ended at 4 s + 5.6 s (the soft end) instead.
    assert!(
        took < Duration::from_millis(7500),
        "answered after {took:?}"
    );
}
