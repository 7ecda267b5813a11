//! SIGTERM (DESIGN.md §4): in-flight requests finish (none is held while a copy runs),
//! publishers are flushed, and the process exits 0 within 8 s.

use std::time::Duration;

use testkit::vertex::{CopyScript, Fault};
use testkit::{Inbox, Topology, VertexFake};

use crate::child::ChildWorker;
use crate::helpers::{SRC, emulator, request};

/// Topics only (no push subscriptions): these tests post envelopes and tasks themselves.
/// Returns an inbox of every completion event.
pub(crate) async fn topics(project: &str) -> (Topology, Inbox) {
    let t = Topology::connect(&emulator().endpoint(), project)
        .await
        .unwrap();
    for topic in [
        "copy-requests",
        "copy-completions",
        "copy-dead-letter",
        "copy-callbacks",
    ] {
        t.create_topic(topic).await.unwrap();
    }
    t.create_pull_subscription("events-all", "copy-completions")
        .await
        .unwrap();
    let events = Inbox::open(&t, "events-all").await.unwrap();
    (t, events)
}

/// The body of a copy-start task for `request` (docs/DESIGN.md §3, "Copy tasks"), as the
/// request stage queues it.
pub(crate) fn start_task(request: &str, origin: &str) -> String {
    serde_json::json!({
        "request": serde_json::from_str::<serde_json::Value>(request).unwrap(),
        "attempt": 1,
        "accepted_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "origin": origin,
        "seq": 0,
    })
    .to_string()
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
async fn an_in_flight_copy_start_finishes_and_schedules_its_first_poll_before_exit() {
    let project = format!("sd-busy-{}", std::process::id());
    let _t = topics(&project).await;
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
    let body = start_task(&request("busy-1", "busy-target"), "m-busy-1");
    let pending = tokio::spawn(post(format!("{}/tasks/copy-starts", w.base_url()), body));
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.signal("TERM");
    assert_eq!(pending.await.unwrap(), 204, "the in-flight start completes");
    let (code, took) = w.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let polls: Vec<String> = w
        .tasks
        .created()
        .into_iter()
        .filter(|n| n.contains("/queues/copy-polls/tasks/poll-"))
        .collect();
    assert_eq!(polls.len(), 1, "the first poll was scheduled: {polls:?}");
    assert_eq!(vertex.copies_started(), 1);
}
