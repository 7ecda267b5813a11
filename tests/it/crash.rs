//! Crash safety and load: no accepted request is lost and none is copied twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use testkit::vertex::CopyScript;
use testkit::{Inbox, Received, Topology, TopologyOptions, VertexFake};

use crate::child::ChildWorker;
use crate::helpers::{Knobs, POLL_QUEUE, SRC, emulator, request, spawn_app};

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

/// The poll tasks waiting for their first dispatch, counted per operation: a chain that forked
/// would show an operation twice. (A poll whose dispatch was cut off by a kill after it had
/// created the next one waits for its retry beside it; that retry finds the next poll there,
/// creates nothing and ends, so it is not a chain head and is not counted.)
fn pending_polls_per_operation(tasks: &testkit::TasksFake) -> BTreeMap<String, usize> {
    let mut per_op: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks
        .tasks(POLL_QUEUE)
        .into_iter()
        .filter(|t| t.dispatch_count == 0)
    {
        let body: serde_json::Value = serde_json::from_slice(&t.body).expect("a task body");
        let op = body["operation"].as_str().unwrap_or("?").to_owned();
        *per_op.entry(op).or_default() += 1;
    }
    per_op
}

/// The most poll tasks pending at once for one operation.
fn most_pending_polls(tasks: &testkit::TasksFake) -> usize {
    pending_polls_per_operation(tasks)
        .values()
        .copied()
        .max()
        .unwrap_or(0)
}

/// A Vertex AI fake whose copies of [`SRC`] take 6 s.
async fn six_second_copies() -> VertexFake {
    let vertex = VertexFake::start().await.unwrap();
    vertex.add_model(SRC);
    vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_secs(6),
            ..Default::default()
        },
    );
    vertex
}

/// The crash test's topology, pushing to `push_base_url`, with inboxes of every completion and
/// every dead letter.
async fn crash_topology(project: &str, push_base_url: String) -> (Topology, Inbox, Inbox) {
    let opts = TopologyOptions {
        push_base_url,
        request_backoff: (Duration::from_secs(1), Duration::from_secs(3)),
        ..Knobs::default().topology
    };
    let t = Topology::create(&emulator().endpoint(), project, &opts)
        .await
        .unwrap();
    t.create_pull_subscription("dl-all", "copy-dead-letter")
        .await
        .unwrap();
    let completions = Inbox::open(&t, "copy-completions-all").await.unwrap();
    let dead = Inbox::open(&t, "dl-all").await.unwrap();
    (t, completions, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_poll_chains_survive_two_sigkills_without_loss_or_a_forked_chain() {
    let project = format!("crash-{}", std::process::id());
    let vertex = six_second_copies().await;
    // The worker keeps its front port across restarts, so push endpoints and the queues'
    // target stay valid; its Cloud Tasks fake outlives it, as the real queues do.
    let mut w = ChildWorker::start(&project, &vertex.endpoint(), &[]).await;
    let (t, completions, dead) = crash_topology(&project, w.base_url()).await;
    let t0 = Instant::now();

    // Watch the poll queue for the whole run: never two pending polls of one operation.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut worst = 0;
    publish_all(&t, "crash", 30).await;
    // Kill 1: while requests and copy starts are arriving.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started_before_kill1 = vertex.copies_started();
    w.kill().await;
    w.restart().await;
    // Kill 2: in the middle of the poll chains (copies take 6 s).
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        worst = worst.max(most_pending_polls(&w.tasks));
    }
    let polls_before_kill2 = pending_polls_per_operation(&w.tasks).len();
    w.kill().await;
    w.restart().await;
    let watch = async {
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            worst = worst.max(most_pending_polls(&w.tasks));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let wait = async {
        let events = wait_for_outcomes(&completions, 30, Duration::from_secs(150)).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        events
    };
    let (events, ()) = tokio::join!(wait, watch);
    let events = events.unwrap();
    let by_id = outcomes(&events);
    assert_eq!(by_id.len(), 30, "every request has an outcome");
    for (id, ce_ids) in &by_id {
        assert_eq!(ce_ids, &BTreeSet::from([format!("{id}:succeeded")]), "{id}");
    }
    assert_eq!(vertex.copies_started(), 30, "exactly one copy per request");
    assert!(
        worst <= 1,
        "an operation had {worst} pending poll tasks at once"
    );
    assert!(
        polls_before_kill2 > 0,
        "the second kill came while chains ran"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(dead.snapshot().is_empty(), "nothing dead-lettered");
    println!(
        "crash test: 30 requests, kill 1 after {started_before_kill1} copies started, kill 2 with \
         {polls_before_kill2} chains pending; {} events ({} duplicates by ce-id), all succeeded \
         in {:.1} s",
        events.len(),
        events.len() - 30,
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_published_at_once_complete_without_loss_or_duplicate_copies() {
    let app = spawn_app("load", Knobs::default()).await;
    app.copies_take(Duration::from_secs(2));
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
