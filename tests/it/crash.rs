//! Crash safety and load: no accepted request is lost and none is copied twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use testkit::vertex::CopyScript;
use testkit::{Inbox, Received, Topology, TopologyOptions, VertexFake};

use crate::child::ChildWorker;
use crate::helpers::{Knobs, SRC, emulator, request, spawn_app};

/// Events per request id, de-duplicated by `ce-id`.
fn outcomes(events: &[Received]) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in events {
        m.entry(e.attribute("request_id").unwrap_or("?").to_owned())
            .or_default()
            .insert(e.attribute("ce-id").unwrap_or("?").to_owned());
    }
    m
}

/// Waits until `n` distinct requests have an event (duplicates by `ce-id` are expected after
/// a crash, so a count of messages is not enough); returns the events seen, or an error
/// saying how many requests had one at the deadline.
async fn wait_for_outcomes(
    inbox: &Inbox,
    n: usize,
    timeout: Duration,
) -> Result<Vec<Received>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let events = inbox.snapshot();
        let have = outcomes(&events).len();
        if have >= n {
            return Ok(events);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "only {have} of {n} requests had an event after {timeout:?} ({} events)",
                events.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn publish_all(t: &Topology, prefix: &str, n: usize) {
    let bodies: Vec<String> = (0..n)
        .map(|i| request(&format!("{prefix}-{i}"), &format!("{prefix}-{i}")))
        .collect();
    let results = join_all(
        bodies
            .iter()
            .map(|b| t.publish("copy-requests", b.as_bytes(), &[])),
    )
    .await;
    assert!(results.iter().all(Result::is_ok), "every publish confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_requests_survive_two_sigkills_with_exactly_one_copy_each() {
    let project = format!("crash-{}", std::process::id());
    let vertex = VertexFake::start().await.unwrap();
    vertex.add_model(SRC);
    vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_secs(4),
            ..Default::default()
        },
    );
    // The worker keeps its port across restarts, so the push endpoints stay valid.
    let mut w = ChildWorker::start(&project, &vertex.endpoint(), &[("WATCH_HOLD", "20s")]).await;
    let opts = TopologyOptions {
        push_base_url: w.base_url(),
        request_backoff: (Duration::from_secs(1), Duration::from_secs(3)),
        operations_backoff: (Duration::from_secs(1), Duration::from_secs(2)),
        ..Knobs::default().topology
    };
    let t = Topology::create(&emulator().endpoint(), &project, &opts)
        .await
        .unwrap();
    t.create_pull_subscription("dl-all", "copy-dead-letter")
        .await
        .unwrap();
    let completions = Inbox::open(&t, "copy-completions-all").await.unwrap();
    let dead = Inbox::open(&t, "dl-all").await.unwrap();
    let t0 = Instant::now();

    publish_all(&t, "crash", 50).await;
    // Kill 1: while request-stage deliveries are arriving.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started_before_kill1 = vertex.copies_started();
    // Pushes that arrive while no instance runs get 503 from the front, as on Cloud Run.
    w.kill().await;
    w.restart().await;
    // Kill 2: during watch holds (copies take 4 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.kill().await;
    w.restart().await;

    let events = wait_for_outcomes(&completions, 50, Duration::from_secs(150))
        .await
        .unwrap();
    let by_id = outcomes(&events);
    assert_eq!(by_id.len(), 50, "every request has an outcome");
    for (id, ce_ids) in &by_id {
        assert_eq!(ce_ids, &BTreeSet::from([format!("{id}:succeeded")]), "{id}");
    }
    assert_eq!(vertex.copies_started(), 50, "exactly one copy per request");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(dead.snapshot().is_empty(), "nothing dead-lettered");
    println!(
        "crash test: 50 requests, kills after {started_before_kill1} copies started and during holds; \
         {} events ({} duplicates by ce-id), all succeeded in {:.1} s",
        events.len(),
        events.len() - 50,
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_published_at_once_complete_without_loss_or_duplicate_copies() {
    let app = spawn_app("load", Knobs::default()).await;
    app.vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_secs(2),
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    publish_all(&app.topology, "load", 1000).await;
    let published = t0.elapsed();
    let events = wait_for_outcomes(app.completions(), 1000, Duration::from_secs(300))
        .await
        .unwrap();
    let by_id = outcomes(&events);
    assert_eq!(by_id.len(), 1000);
    assert!(
        by_id
            .iter()
            .all(|(id, ce)| ce == &BTreeSet::from([format!("{id}:succeeded")]))
    );
    assert_eq!(app.vertex.copies_started(), 1000);
    println!(
        "load test: 1000 requests published in {:.1} s, all succeeded after {:.1} s ({} events)",
        published.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        events.len()
    );
}
