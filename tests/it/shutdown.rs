//! SIGTERM (DESIGN.md §4): held watches answer 429 at once, in-flight requests finish,
//! publishers are flushed, and the process exits 0 within 8 s.

use std::time::Duration;

use testkit::vertex::{CopyScript, Fault};
use testkit::{Inbox, Topology, VertexFake};

use crate::child::{ChildWorker, envelope};
use crate::helpers::{SRC, emulator, request};

/// Topics only (no push subscriptions): these tests post envelopes themselves.
pub(crate) async fn topics(project: &str) -> (Topology, Inbox) {
    let t = Topology::connect(&emulator().endpoint(), project)
        .await
        .unwrap();
    for topic in [
        "copy-requests",
        "copy-operations",
        "copy-completions",
        "copy-dead-letter",
    ] {
        t.create_topic(topic).await.unwrap();
    }
    t.create_pull_subscription("watch-all", "copy-operations")
        .await
        .unwrap();
    let watches = Inbox::open(&t, "watch-all").await.unwrap();
    (t, watches)
}

pub(crate) async fn post(url: String, body: String) -> u16 {
    reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_exits_0_promptly_on_sigterm() {
    let project = format!("sd-idle-{}", std::process::id());
    let _t = topics(&project).await;
    let vertex = VertexFake::start().await.unwrap();
    let mut w = ChildWorker::start(&project, &vertex.endpoint(), &[]).await;
    w.signal("TERM");
    let (code, took) = w.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "log:\n{}", w.log_text());
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        w.log_text().contains("PUSH_AUTH=none"),
        "the risk is logged at start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_request_stage_finishes_and_hands_on_its_watch_before_exit() {
    let project = format!("sd-busy-{}", std::process::id());
    let (_t, watches) = topics(&project).await;
    let vertex = VertexFake::start().await.unwrap();
    vertex.add_model(SRC);
    vertex.script(
        SRC,
        CopyScript {
            copy_faults: vec![Fault::Delay(Duration::from_secs(3))],
            duration: Duration::from_secs(30),
            ..Default::default()
        },
    );
    let mut w = ChildWorker::start(&project, &vertex.endpoint(), &[]).await;
    let body = envelope("1", request("busy-1", "busy-target").as_bytes(), &[]);
    let pending = tokio::spawn(post(format!("{}/pubsub/copy-requests", w.base_url()), body));
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.signal("TERM");
    assert_eq!(
        pending.await.unwrap(),
        204,
        "the in-flight delivery completes"
    );
    let (code, took) = w.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let got = watches
        .wait_for(1, Duration::from_secs(10), |m| {
            m.attribute("request_id") == Some("busy-1")
        })
        .await
        .unwrap();
    assert_eq!(got[0].attribute("attempt"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_watch_answers_429_at_once_on_sigterm() {
    let project = format!("sd-hold-{}", std::process::id());
    let (_t, watches) = topics(&project).await;
    let vertex = VertexFake::start().await.unwrap();
    vertex.add_model(SRC);
    vertex.script(
        SRC,
        CopyScript {
            duration: Duration::from_secs(600),
            ..Default::default()
        },
    );
    let mut w = ChildWorker::start(&project, &vertex.endpoint(), &[("WATCH_HOLD", "60s")]).await;
    let body = envelope("1", request("hold-1", "hold-target").as_bytes(), &[]);
    assert_eq!(
        post(format!("{}/pubsub/copy-requests", w.base_url()), body).await,
        204
    );
    let watch = watches
        .wait_for(1, Duration::from_secs(10), |_| true)
        .await
        .unwrap()
        .remove(0);
    let attrs: Vec<(&str, &str)> = watch
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let held = tokio::spawn(post(
        format!("{}/pubsub/copy-operations", w.base_url()),
        envelope("2", &watch.data, &attrs),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!held.is_finished(), "the watch is held while the copy runs");
    let t0 = std::time::Instant::now();
    w.signal("TERM");
    assert_eq!(held.await.unwrap(), 429);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "answered in {:?}",
        t0.elapsed()
    );
    let (code, took) = w.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(8));
}
