//! Copy starts paced by the copy-start queue (`COPY_START_QUEUE`, docs/DESIGN.md §10): the
//! request stage queues a task in testkit's Cloud Tasks fake, which posts it back through the
//! Cloud Run front at the queue's rate. The rate holds for the deployment, whichever instance
//! queued the start, and redeliveries, quota refusals and restarts go through the queue.

use std::time::Duration;

use copy_worker::pipeline::StepOutcome;
use testkit::{CopyScript, Fault, QueueConfig};

use crate::helpers::{Knobs, SRC, TestApp, push_message, request, spawn_app};

/// Two starts a second, retried quickly: the fake's documented burst is then 2.
fn queue() -> QueueConfig {
    QueueConfig {
        max_dispatches_per_second: 2.0,
        min_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        max_attempts: -1,
        ..QueueConfig::default()
    }
}

async fn app(name: &str) -> TestApp {
    let knobs = Knobs {
        start_queue: queue(),
        ..Knobs::cloud_run()
    };
    spawn_app(name, knobs).await
}

/// When each CopyModel call reached the Vertex fake, in order.
fn copy_starts(app: &TestApp) -> Vec<std::time::Instant> {
    let mut at: Vec<_> = app
        .vertex
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("models:copy"))
        .map(|c| c.at)
        .collect();
    at.sort();
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_two_instances_starts_at_the_queues_rate() {
    let app = app("sq-burst").await;
    app.copies_take(Duration::from_secs(1));
    let other = app.second_instance().await;
    let n = 8;
    for i in 0..n {
        let data = request(&format!("sq-burst-{i}"), &format!("sq-target-{i}"));
        if i % 2 == 0 {
            app.publish(&data).await;
        } else {
            let msg = push_message(&format!("sq-m{i}"), &data, &[]);
            let outcome = other.pipeline.request_stage(&msg).await;
            assert!(matches!(outcome, StepOutcome::Acked), "{outcome:?}");
        }
    }
    for i in 0..n {
        let ev = app.completion_of(&format!("sq-burst-{i}"), 1, 90).await;
        assert_eq!(ev[0].attribute("status"), Some("succeeded"));
    }
    assert!(app.dead_letters.snapshot().is_empty());
    let starts = copy_starts(&app);
    assert_eq!(starts.len(), n, "one CopyModel per copy");
    // A token bucket of 2 a second with a burst of 2: at most 2 + 2·T starts in any T seconds,
    // so 8 starts take at least 3 s (the instances' own budgets would allow all at once).
    let burst = queue().burst_size() as usize;
    let makespan = starts[n - 1].duration_since(starts[0]);
    assert!(makespan >= Duration::from_millis(2500), "{makespan:?}");
    for (i, t) in starts.iter().enumerate() {
        let within_1s = starts[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
            .count();
        assert!(within_1s <= burst + 2, "{within_1s} starts within 1 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_refusal_is_retried_by_the_queue_and_the_copy_succeeds() {
    let app = app("sq-429").await;
    app.vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_secs(1),
            copy_faults: vec![Fault::Http(429, "RESOURCE_EXHAUSTED")],
            ..CopyScript::default()
        },
    );
    app.publish(&request("sq-429", "sq-429-t")).await;
    let ev = app.completion_of("sq-429", 1, 60).await;
    assert_eq!(ev[0].attribute("status"), Some("succeeded"));
    let statuses: Vec<u16> = app
        .tasks
        .dispatches()
        .iter()
        .filter(|d| d.task.contains("/queues/copy-starts/"))
        .map(|d| d.status)
        .collect();
    assert_eq!(
        statuses.first(),
        Some(&503),
        "refused, for the queue to retry: {statuses:?}"
    );
    assert!(statuses.contains(&204), "{statuses:?}");
    assert!(app.dead_letters.snapshot().is_empty());
}

/// A queue that does not exist (NOT_FOUND) is a deployment fault, not the copy's: the
/// request asks for a retry and is kept by Pub/Sub, whose dead-letter policy is the backstop; no
/// `failed` event is announced for a copy that never had a chance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_asks_for_a_retry_and_is_left_to_the_dead_letter_policy() {
    let mut knobs = Knobs {
        start_queue: queue(),
        // A later flag wins: a queue the fake does not have.
        extra_args: vec![
            "--copy-start-queue".into(),
            "projects/it-project/locations/us-central1/queues/deleted".into(),
        ],
        ..Knobs::cloud_run()
    };
    knobs.topology.max_delivery_attempts = 5;
    let app = spawn_app("sq-gone", knobs).await;
    app.publish(&request("sq-gone", "sq-gone-t")).await;
    let dl = app
        .dead_letters
        .wait_for(1, Duration::from_secs(90), |m| {
            m.attribute("CloudPubSubDeadLetterSourceSubscription") == Some("copy-requests-push")
        })
        .await
        .unwrap()
        .remove(0);
    assert!(
        dl.attribute("CloudPubSubDeadLetterSourceDeliveryCount")
            .is_some(),
        "dead-lettered by Pub/Sub's policy, not by the worker: {:?}",
        dl.attributes
    );
    assert!(
        app.completions().snapshot().is_empty(),
        "no event for a deployment fault"
    );
    assert_eq!(app.vertex.copies_started(), 0);
}
