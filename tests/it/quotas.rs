//! Behaving inside Vertex AI's quotas and Cloud Tasks' flow control (DESIGN.md §10): the poll
//! queue's rate is the deployment's read budget, whichever instance answers; a poll answers
//! 2xx while its copy runs and when Vertex AI refuses it, so no queue is slowed down for one
//! copy's sake.

use std::time::Duration;

use testkit::vertex::{CopyScript, Quotas};
use testkit::{QueueConfig, Rpc};

use crate::helpers::{Knobs, POLL_QUEUE, fast_queue, request, spawn_app};

/// The poll dispatches the fake recorded: (status, task name).
fn polls(app: &crate::helpers::TestApp) -> Vec<(u16, String)> {
    app.tasks
        .dispatches()
        .into_iter()
        .filter(|d| d.task.contains("/queues/copy-polls/"))
        .map(|d| (d.status, d.task))
        .collect()
}

/// A copy that runs for a while is followed by short polls, each answered 204, one task per
/// poll, scheduled by the copy's age: an 8 s copy takes about six reads, not one a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_copy_is_followed_by_short_polls_each_answered_204() {
    let app = spawn_app("q-chain", Knobs::default()).await;
    app.copies_take(Duration::from_secs(8));
    app.publish(&request("chain-1", "chain-target")).await;
    let ev = app.completion_of("chain-1", 1, 60).await.remove(0).json();
    assert_eq!(ev["status"], "succeeded", "{ev}");
    let polls = polls(&app);
    assert!(polls.iter().all(|(s, _)| *s == 204), "{polls:?}");
    let distinct: std::collections::BTreeSet<_> = polls.iter().map(|(_, t)| t).collect();
    assert_eq!(distinct.len(), polls.len(), "one dispatch per poll task");
    // 1 s, then ×1.25: polls at about 1, 2.25, 3.8, 5.8, 8.2 s.
    let reads = app.vertex.rpc_count(Rpc::GetOperation).calls;
    assert!((4..=8).contains(&reads), "{reads} reads for an 8 s copy");
    assert!(app.tasks.tasks(POLL_QUEUE).is_empty(), "the chain ended");
}

/// Vertex AI's read quota answers 429: the poll is acked all the same (asking for a retry
/// would slow the whole queue down) and schedules its next poll later; the copy still
/// succeeds, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_get_operation_schedules_the_next_poll_later_and_the_copy_succeeds() {
    let app = spawn_app("q-429", Knobs::default()).await;
    app.copies_take(Duration::from_secs(2));
    app.publish(&request("q429-1", "q429-target")).await;
    // Wait for the first poll task, then let Vertex AI refuse reads for a while.
    let t0 = std::time::Instant::now();
    while app.tasks.tasks(POLL_QUEUE).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no first poll");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.vertex.set_quotas(Quotas {
        lro_submissions: 60,
        resource_management: 0,
        window: Duration::from_secs(60),
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(app.vertex.quota_rejections() > 0, "the quota refused reads");
    app.vertex.clear_quotas();
    let ev = app.completion_of("q429-1", 1, 60).await.remove(0).json();
    assert_eq!(ev["status"], "succeeded", "{ev}");
    let polls = polls(&app);
    assert!(polls.iter().all(|(s, _)| *s == 204), "never 503: {polls:?}");
    assert_eq!(app.vertex.copies_started(), 1);
    assert!(app.dead_letters.snapshot().is_empty());
}

/// The poll queue's rate holds the reads of every copy being followed, for the deployment:
/// ten copies polled at once through a queue of 2 dispatches a second make no more reads than
/// the queue allows, and each still ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reads_of_many_copies_stay_inside_the_poll_queues_rate() {
    let poll_queue = QueueConfig {
        max_dispatches_per_second: 2.0,
        ..fast_queue()
    };
    let burst = poll_queue.burst_size() as f64;
    let knobs = Knobs {
        poll_queue,
        ..Knobs::default()
    };
    let app = spawn_app("q-reads", knobs).await;
    app.vertex.script(
        crate::helpers::SRC,
        CopyScript {
            duration: Duration::from_secs(6),
            ..Default::default()
        },
    );
    let n = 10;
    for i in 0..n {
        app.publish(&request(&format!("reads-{i}"), &format!("reads-t-{i}")))
            .await;
    }
    for i in 0..n {
        let ev = app.completion_of(&format!("reads-{i}"), 1, 120).await;
        assert_eq!(ev[0].attribute("status"), Some("succeeded"));
    }
    let reads: Vec<_> = app
        .vertex
        .calls()
        .into_iter()
        .filter(|c| c.path.contains("/operations/"))
        .map(|c| c.at)
        .collect();
    let span = reads.last().unwrap().duration_since(reads[0]).as_secs_f64();
    // A token bucket: at most the burst plus the rate over the span (10 % for scheduling).
    let allowed = burst + 2.0 * span * 1.1 + 1.0;
    assert!(
        (reads.len() as f64) <= allowed,
        "{} GetOperation calls in {span:.1} s; the queue allows {allowed:.0}",
        reads.len()
    );
    assert_eq!(app.vertex.quota_rejections(), 0);
    assert!(app.dead_letters.snapshot().is_empty());
}
