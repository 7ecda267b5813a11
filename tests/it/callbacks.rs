//! Webhook callbacks as a push stage of their own (DESIGN.md §7): the POST
//! runs inside the `copy-callbacks` push delivery, so nothing runs after an ack, and Pub/Sub's
//! retry and dead-letter policies decide what happens to a receiver that is down or refuses.

use std::time::Duration;

use testkit::pubsub::{Inbox, Topology, TopologyOptions};
use testkit::vertex::VertexFake;

use crate::child::{ChildWorker, free_port};
use crate::enqueue::callback_knobs;
use crate::helpers::{Knobs, SRC, emulator, spawn_app};
use crate::receiver::{HANG, Hit, Receiver, SECRET};
use crate::replay::bench::replay;

fn with_callback(id: &str, url: &str) -> String {
    format!(
        r#"{{"request_id":"{id}","source_model":"{SRC}","destination":{{"model_id":"t-{id}"}},"callback_url":"{url}"}}"#
    )
}

/// The reference Standard Webhooks library accepts the callback's signature.
fn assert_signed(hit: &Hit) {
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&hit.1, &hit.0)
        .expect("the signature verifies with the reference library");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_the_signed_callback_once_it_is_up() {
    let app = spawn_app("cb-down", callback_knobs()).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    app.publish(&with_callback("cbd-1", &url)).await;
    let event = app.completion_of("cbd-1", 1, 60).await.remove(0);
    assert_eq!(
        event.json()["status"],
        "succeeded",
        "the event does not wait"
    );
    // Down: each delivery finds the port closed, asks for a retry, and Pub/Sub tries again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (receiver, _) = Receiver::start_at(port, vec![]).await;
    let got = receiver.wait_for(1, 60).await;
    assert_eq!(got.len(), 1, "delivered once the receiver is up");
    assert_eq!(got[0].1, event.data, "the callback carries the event JSON");
    assert_eq!(got[0].0["webhook-id"], "cbd-1:succeeded");
    assert_signed(&got[0]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "acked after the 2xx: no more posts"
    );
    assert!(app.dead_letters.snapshot().is_empty());
}

/// A refusal is final for this callback: one attempt, then a dead letter that names the
/// receiver's answer. Once the receiver is fixed, `replay --callbacks` moves it back (and a
/// plain `replay`, which moves requests, leaves it alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_410_or_400_is_tried_once_dead_lettered_and_replayed_once_fixed() {
    let app = spawn_app("cb-gone", callback_knobs()).await;
    let mut receivers = vec![];
    for (id, status) in [("cbg-410", 410), ("cbg-400", 400)] {
        let (receiver, url) = Receiver::start(vec![(status, None)]).await;
        app.publish(&with_callback(id, &url)).await;
        let dl = app.dead_letter_of(id, 60).await;
        assert_eq!(dl.attribute("failed_stage"), Some("callback"));
        assert_eq!(dl.attribute("error_code"), Some("CALLBACK_REJECTED"));
        let why = dl.attribute("error_message").unwrap();
        assert!(why.contains(&status.to_string()), "{why}");
        assert_eq!(dl.attribute("callback_url"), Some(url.as_str()));
        let event = app.completion_of(id, 1, 5).await.remove(0);
        assert_eq!(
            event.json()["status"],
            "succeeded",
            "the event is unaffected"
        );
        assert_eq!(dl.data, event.data, "the dead letter holds the event JSON");
        receivers.push((receiver, status));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (receiver, status) in &receivers {
        assert_eq!(receiver.received().len(), 1, "{status} is not retried");
    }

    // The receivers now answer 200 (their script is used up).
    let project = app.topology.project.clone();
    let requests_only = replay(&project, &["--idle-timeout", "3s"]).await;
    assert_eq!(
        requests_only.summary["replayed"], 0,
        "{}",
        requests_only.summary
    );
    // The plain replay just read (and handed back) both, and the emulator keeps its closed
    // stream, which may take them again: end that stream first (docs/reliability.md).
    app.topology
        .release_closed_streams(testkit::pubsub::COPY_DEAD_LETTER_REPLAY)
        .await
        .unwrap();
    let moved = replay(&project, &["--callbacks", "--idle-timeout", "10s"]).await;
    assert_eq!(moved.code, 0, "{}", moved.stderr);
    assert_eq!(moved.summary["replayed"], 2, "{}", moved.summary);
    for (receiver, status) in &receivers {
        let got = receiver.wait_for(2, 60).await;
        assert_eq!(got.len(), 2, "{status}: delivered after the replay");
        assert_signed(&got[1]);
    }
}

/// SIGKILL while the worker is inside the receiver's POST: the callback delivery was never
/// answered, so Pub/Sub delivers it again to the restarted worker (run alone, after the rest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_mid_callback_the_callback_is_delivered_after_the_restart() {
    let project = format!("cbkill-{}", std::process::id());
    let vertex = VertexFake::start().await.unwrap();
    vertex.add_model(SRC);
    let env = [
        ("TARGET_PROJECT", "dst-proj"),
        ("CALLBACK_ALLOW_HTTP_LOOPBACK", "true"),
        ("CALLBACK_ALLOWED_HOSTS", "hooks.example.com"),
        ("CALLBACK_SIGNING_SECRET", SECRET),
    ];
    let mut w = ChildWorker::start(&project, &vertex.endpoint(), &env).await;
    let opts = TopologyOptions {
        push_base_url: w.base_url(),
        ..Knobs::default().topology
    };
    let t = Topology::create(&emulator().endpoint(), &project, &opts)
        .await
        .unwrap();
    let completions = Inbox::open(&t, "copy-completions-all").await.unwrap();
    let (receiver, url) = Receiver::start(vec![(HANG, None)]).await;
    t.publish(
        "copy-requests",
        with_callback("cbk-1", &url).as_bytes(),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        receiver.wait_for(1, 60).await.len(),
        1,
        "the worker is mid-callback"
    );
    w.kill().await;
    w.restart().await;
    let got = receiver.wait_for(2, 120).await;
    assert_eq!(
        got.len(),
        2,
        "delivered after the restart; log:\n{}",
        w.log_text()
    );
    assert_eq!(got[1].0["webhook-id"], got[0].0["webhook-id"]);
    assert_signed(&got[1]);
    let events = completions
        .of_request("cbk-1", 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(events[0].json()["status"], "succeeded");
}

/// Cloud Run throttles CPU once a response is sent and drops instances on scale-in
/// (DESIGN.md §10), so no code a delivery runs may start a task that outlives it. The
/// worker's only spawns are the server itself (`app`) and the `replay` command's
/// own pump; this fails as soon as a stage, a route or a client spawns anything.
#[test]
fn no_stage_route_or_client_spawns_work_that_could_outlive_its_delivery() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = vec![];
    // Modules may be folders of files (`clients/temp_subscription/`): walk them all.
    let mut dirs: Vec<_> = ["pipeline", "http", "clients", "domain", "contract"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    let mut files = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for needle in ["tokio::spawn", "spawn_blocking", "thread::spawn", "JoinSet"] {
                if text.contains(needle) {
                    offenders.push(format!("{}: {needle}", path.display()));
                }
            }
        }
    }
    assert!(files > 20, "read {files} files");
    assert!(offenders.is_empty(), "background work in: {offenders:?}");
}

/// Issue 28's probe: "A forged callback message had arbitrary content signed and posted to an
/// allowed host." A message published to `copy-callbacks` by anyone but the worker carries no
/// seal of the worker's secret: it is dead-lettered, and nothing is signed or posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_message_the_worker_did_not_seal_is_never_posted() {
    let app = spawn_app("cb-forged", callback_knobs()).await;
    let port = free_port();
    let (receiver, _) = Receiver::start_at(port, vec![]).await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let forged_seal = "v1,bm90IGEgc2VhbA==";
    for (id, seal) in [("forged-1", None), ("forged-2", Some(forged_seal))] {
        let mut attrs = vec![
            ("request_id", id),
            ("callback_url", url.as_str()),
            ("webhook_id", "forged:succeeded"),
        ];
        if let Some(s) = seal {
            attrs.push(("callback_seal", s));
        }
        app.topology
            .publish(
                "copy-callbacks",
                br#"{"status":"succeeded","forged":true}"#,
                &attrs,
            )
            .await
            .unwrap();
        let dl = app.dead_letter_of(id, 60).await;
        assert_eq!(
            dl.attribute("error_code"),
            Some("CALLBACK_REJECTED"),
            "{id}"
        );
        assert!(
            dl.attribute("error_message")
                .unwrap_or_default()
                .contains("not sealed by this worker"),
            "{id}: {:?}",
            dl.attributes
        );
    }
    assert!(receiver.received().is_empty(), "nothing was posted");
}
