//! Behaving inside Vertex AI's quotas and Pub/Sub's flow control (DESIGN.md §10): the watch
//! stage continues as new (2xx in the steady state), copies beyond the budget wait as pending
//! watches without dead letters, one pacer per instance holds the reads of every held watch
//! to the read budget, and instances share the rates.

use std::time::Duration;

use testkit::vertex::CopyScript;
use testkit::{Inbox, Rpc, VertexFake};

use crate::child::{ChildWorker, envelope};
use crate::helpers::{Knobs, SRC, request, spawn_app};
use crate::shutdown::{post, topics};

fn attrs(m: &testkit::Received) -> Vec<(&str, &str)> {
    m.attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// At the end of a hold the copy still runs: the watch stage publishes the same watch again
/// and answers 204, not 429. A SIGKILL in the middle of the next hold loses nothing: the
/// redelivered watch (Pub/Sub would send it again, unacked) ends with one copy and one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_continues_as_new_with_204_and_survives_a_sigkill_with_one_copy_and_one_event() {
    let project = format!("q-can-{}", std::process::id());
    let (t, watches) = topics(&project).await;
    t.create_pull_subscription("done-all", "copy-completions")
        .await
        .unwrap();
    let done = Inbox::open(&t, "done-all").await.unwrap();
    let vertex = VertexFake::start().await.unwrap();
    vertex.add_model(SRC);
    vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_secs(12),
            ..Default::default()
        },
    );
    let mut w = ChildWorker::start(&project, &vertex.endpoint(), &[("WATCH_HOLD", "2s")]).await;
    let ops = format!("{}/pubsub/copy-operations", w.base_url());
    let body = envelope("1", request("can-1", "can-target").as_bytes(), &[]);
    assert_eq!(
        post(format!("{}/pubsub/copy-requests", w.base_url()), body).await,
        204
    );
    let first = watches
        .wait_for(1, Duration::from_secs(10), |_| true)
        .await
        .unwrap()
        .remove(0);
    // One hold (2 s) while the copy runs: 204, and the same watch handed on.
    assert_eq!(
        post(ops.clone(), envelope("2", &first.data, &attrs(&first))).await,
        204
    );
    let both = watches
        .wait_for(2, Duration::from_secs(10), |_| true)
        .await
        .unwrap();
    let next = both[1].clone();
    for key in ["operation", "attempt", "accepted_at", "request_id"] {
        assert_eq!(
            next.attribute(key),
            first.attribute(key),
            "{key} is carried over unchanged"
        );
    }
    assert_eq!(next.data, first.data);
    // The next delivery is held; the instance dies in the middle of it.
    let held = tokio::spawn({
        let (ops, body) = (ops.clone(), envelope("3", &next.data, &attrs(&next)));
        async move { reqwest::Client::new().post(ops).body(body).send().await }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    w.kill().await;
    let _ = held.await;
    w.restart().await;
    // Pub/Sub redelivers the unacked watch to the new instance; each delivery is held, then
    // handed on as new, until one sees the copy end (and hands nothing on).
    let mut msg = next;
    for round in 0..20 {
        let before = watches.snapshot().len();
        let body = envelope(&format!("r{round}"), &msg.data, &attrs(&msg));
        assert_eq!(post(ops.clone(), body).await, 204);
        match watches
            .wait_for(before + 1, Duration::from_secs(3), |_| true)
            .await
        {
            Ok(all) => msg = all.last().unwrap().clone(),
            Err(_) => break,
        }
    }
    let events = done
        .wait_for(1, Duration::from_secs(20), |_| true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(done.snapshot().len(), 1, "one event: {:?}", done.snapshot());
    assert_eq!(events[0].attribute("status"), Some("succeeded"));
    assert_eq!(vertex.copies_started(), 1, "one copy");
}

/// Copies beyond `VERTEX_COPY_RATE` are acked as pending watches and started when a slot is
/// free: all succeed, nothing is dead-lettered, CopyModel is called once per copy, spaced by
/// the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_beyond_the_copy_rate_wait_as_pending_watches_and_none_is_dead_lettered() {
    // 6 a minute: one CopyModel every 10 s, bursts of one.
    let knobs = Knobs {
        extra_args: vec!["--vertex-copy-rate".into(), "6".into()],
        ..Knobs::default()
    };
    let app = spawn_app("q-admit", knobs).await;
    app.copies_take(Duration::from_secs(1));
    for i in 0..3 {
        app.publish(&request(
            &format!("admit-{i}"),
            &format!("admit-target-{i}"),
        ))
        .await;
    }
    for i in 0..3 {
        let ev = app
            .completion_of(&format!("admit-{i}"), 1, 90)
            .await
            .remove(0)
            .json();
        assert_eq!(ev["status"], "succeeded", "{ev}");
    }
    assert!(app.dead_letters.snapshot().is_empty(), "no dead letter");
    let starts: Vec<_> = app
        .vertex
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("models:copy"))
        .map(|c| c.at)
        .collect();
    assert_eq!(
        starts.len(),
        3,
        "one CopyModel per copy, no 429 and no retry"
    );
    for pair in starts.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(gap >= Duration::from_secs(9), "spaced by the rate: {gap:?}");
    }
}

/// However many watches poll, the instance's reads stay inside `VERTEX_READ_RATE` (after a
/// burst of ten seconds' worth), and every copy is still seen to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reads_of_many_held_watches_stay_inside_the_read_rate() {
    // 60 reads a minute: one a second.
    let knobs = Knobs {
        extra_args: vec!["--vertex-read-rate".into(), "60".into()],
        ..Knobs::default()
    };
    let app = spawn_app("q-reads", knobs).await;
    app.copies_take(Duration::from_secs(15));
    let n = 6;
    for i in 0..n {
        app.publish(&request(
            &format!("reads-{i}"),
            &format!("reads-target-{i}"),
        ))
        .await;
    }
    for i in 0..n {
        let ev = app
            .completion_of(&format!("reads-{i}"), 1, 120)
            .await
            .remove(0)
            .json();
        assert_eq!(ev["status"], "succeeded", "{ev}");
    }
    let reads: Vec<_> = app
        .vertex
        .calls()
        .into_iter()
        .filter(|c| c.method == "GET")
        .map(|c| c.at)
        .collect();
    let first = reads[0];
    let span = reads.last().unwrap().duration_since(first).as_secs_f64();
    // Burst (10) + one a second, with 10% for scheduling.
    let allowed = 10.0 + span * 1.1 + 1.0;
    assert!(
        (reads.len() as f64) <= allowed,
        "{} reads in {span:.1} s; the budget allows {allowed:.0}",
        reads.len()
    );
    // Unpaced, six watches polling from 1 s up would read well over one a second.
    assert_eq!(app.vertex.quota_rejections(), 0);
    assert!(app.dead_letters.snapshot().is_empty());
    assert_eq!(app.vertex.rpc_count(Rpc::CopyModel).calls, n);
}

/// Two instances with `WORKER_INSTANCES=2` take half of `VERTEX_COPY_RATE` each: three
/// requests delivered to each at once start one copy per instance; the other four are acked
/// as pending watches (no operation), to be started later. Nothing asks for redelivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_copy_rate() {
    let project = format!("q-share-{}", std::process::id());
    let (_t, watches) = topics(&project).await;
    let vertex = VertexFake::start().await.unwrap();
    vertex.add_model(SRC);
    // 12 a minute for the deployment: 6 per instance, one CopyModel every 10 s each.
    let env = [
        ("VERTEX_COPY_RATE", "12"),
        ("WORKER_INSTANCES", "2"),
        ("WATCH_HOLD", "1s"),
    ];
    let a = ChildWorker::start(&project, &vertex.endpoint(), &env).await;
    let b = ChildWorker::start(&project, &vertex.endpoint(), &env).await;
    let deliveries = (0..6).map(|i| {
        let w = if i % 2 == 0 { &a } else { &b };
        let body = envelope(
            &format!("m{i}"),
            request(&format!("share-{i}"), &format!("share-target-{i}")).as_bytes(),
            &[],
        );
        post(format!("{}/pubsub/copy-requests", w.base_url()), body)
    });
    let answers = futures::future::join_all(deliveries).await;
    assert_eq!(answers, [204; 6], "all acked, none asks for redelivery");
    assert_eq!(vertex.copies_started(), 2, "one copy per instance");
    let handed_on = watches
        .wait_for(6, Duration::from_secs(10), |_| true)
        .await
        .unwrap();
    let pending: Vec<_> = handed_on
        .iter()
        .filter(|w| w.attribute("operation").is_none())
        .collect();
    assert_eq!(pending.len(), 4, "four wait as pending watches");
    // A pending watch delivered while the instance has no slot is held for the hold (it must
    // not spin: a watch handed on at once is delivered again at once), then handed on again
    // (204), once, still without starting a copy.
    let p = pending[0];
    let t0 = std::time::Instant::now();
    assert_eq!(
        post(
            format!("{}/pubsub/copy-operations", a.base_url()),
            envelope("p0", &p.data, &attrs(p))
        )
        .await,
        204
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    watches
        .wait_for(7, Duration::from_secs(10), |_| true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(watches.snapshot().len(), 7, "handed on once");
    assert_eq!(vertex.copies_started(), 2);
}
