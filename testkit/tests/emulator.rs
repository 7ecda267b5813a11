//! Proves the Pub/Sub helpers against the official emulator: topology, push delivery, the
//! emulator's retry and dead-letter behaviour, and the Inbox. Fails (never skips) when the
//! emulator is not installed.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine as _;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::pubsub::{COPY_COMPLETIONS, COPY_COMPLETIONS_ALL, COPY_DEAD_LETTER_REPLAY};
use testkit::{Emulator, Inbox, Topology, TopologyOptions};

/// One push request as the receiver saw it.
#[derive(Clone, Debug)]
struct Push {
    path: String,
    authorization: Option<String>,
    body: serde_json::Value,
}

/// A stand-in for the worker: records pushes and answers with a status the test can change.
struct Receiver {
    base_url: String,
    pushes: Arc<Mutex<Vec<Push>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start(status: u16) -> Receiver {
        let pushes = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let (sink, answer) = (pushes.clone(), status.clone());
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let (sink, answer) = (sink.clone(), answer.clone());
            async move {
                let authorization = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap_or_default().to_string());
                let body = serde_json::from_slice(&body).unwrap_or_default();
                let path = uri.path().to_string();
                sink.lock().unwrap().push(Push {
                    path,
                    authorization,
                    body,
                });
                StatusCode::from_u16(answer.load(Ordering::SeqCst)).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            base_url,
            pushes,
            status,
        }
    }

    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Push> {
        let deadline = Instant::now() + timeout;
        loop {
            let pushes = self.pushes.lock().unwrap().clone();
            if pushes.len() >= n || Instant::now() > deadline {
                return pushes;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn emulator() -> &'static Emulator {
    Emulator::shared().expect("the Pub/Sub emulator is required for these tests")
}

#[tokio::test]
async fn push_subscriptions_deliver_envelopes_to_the_worker_paths() {
    let receiver = Receiver::start(204).await;
    // With the previous release's watch topic too (an upgrade in progress), whose push
    // subscription posts to the upgrade route.
    let opts = TopologyOptions {
        push_base_url: receiver.base_url.clone(),
        legacy_operations: true,
        ..Default::default()
    };
    let topology = Topology::create(&emulator().endpoint(), "tk-push", &opts)
        .await
        .unwrap();
    let data = br#"{"request_id":"r1"}"#;
    let id = topology
        .publish("copy-requests", data, &[("request_id", "r1")])
        .await
        .unwrap();
    topology
        .publish("copy-operations", b"watch", &[])
        .await
        .unwrap();

    let pushes = receiver.wait_for(2, Duration::from_secs(20)).await;
    let request = pushes
        .iter()
        .find(|p| p.path == "/pubsub/copy-requests")
        .expect("request push");
    let watch = pushes
        .iter()
        .find(|p| p.path == "/pubsub/copy-operations")
        .expect("watch push");
    println!("push envelope: {}", request.body);
    assert_eq!(
        request.body["subscription"],
        topology.subscription("copy-requests-push")
    );
    let message = &request.body["message"];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(message["data"].as_str().expect("data"))
        .unwrap();
    assert_eq!(decoded, data);
    assert_eq!(message["attributes"]["request_id"], "r1");
    assert_eq!(message["messageId"], id.as_str());
    assert_eq!(message["message_id"], id.as_str());
    assert!(message["publishTime"].is_string());
    assert!(
        message.get("deliveryAttempt").is_none() && request.body.get("deliveryAttempt").is_none()
    );
    assert_eq!(
        request.authorization, None,
        "the emulator sends no OIDC token"
    );
    assert_eq!(
        watch.body["subscription"],
        topology.subscription("copy-operations-push")
    );
    println!("watch envelope without attributes: {}", watch.body);
}

#[tokio::test]
async fn push_subscription_retries_and_then_dead_letters() {
    let receiver = Receiver::start(500).await;
    let opts = TopologyOptions {
        push_base_url: receiver.base_url.clone(),
        request_backoff: (Duration::from_secs(1), Duration::from_secs(2)),
        max_delivery_attempts: 5,
        ..Default::default()
    };
    let topology = Topology::create(&emulator().endpoint(), "tk-dlq", &opts)
        .await
        .unwrap();
    let dead_letters = Inbox::open(&topology, COPY_DEAD_LETTER_REPLAY)
        .await
        .unwrap();
    topology
        .publish("copy-requests", b"doomed", &[("request_id", "r9")])
        .await
        .unwrap();

    let dead = dead_letters
        .wait_for(1, Duration::from_secs(60), |_| true)
        .await
        .unwrap();
    let pushes = receiver.pushes.lock().unwrap().clone();
    assert_eq!(pushes.len(), 5, "one delivery per attempt");
    let dead = &dead[0];
    assert_eq!(dead.data, b"doomed");
    assert_eq!(dead.attribute("request_id"), Some("r9"));
    assert_eq!(
        dead.attribute("CloudPubSubDeadLetterSourceDeliveryCount"),
        Some("5")
    );
    assert_eq!(
        dead.attribute("CloudPubSubDeadLetterSourceSubscription"),
        Some("copy-requests-push")
    );
    receiver.status.store(204, Ordering::SeqCst);
}

#[tokio::test]
async fn inbox_collects_every_completion_and_explains_timeouts() {
    let topology = Topology::create(
        &emulator().endpoint(),
        "tk-inbox",
        &TopologyOptions::default(),
    )
    .await
    .unwrap();
    let inbox = Inbox::open(&topology, COPY_COMPLETIONS_ALL).await.unwrap();
    for status in ["succeeded", "failed", "succeeded"] {
        let data = serde_json::json!({ "status": status }).to_string();
        topology
            .publish(COPY_COMPLETIONS, data.as_bytes(), &[("status", status)])
            .await
            .unwrap();
    }
    let succeeded = inbox
        .wait_for(2, Duration::from_secs(20), |m| {
            m.json()["status"] == "succeeded"
        })
        .await
        .unwrap();
    assert!(
        succeeded
            .iter()
            .all(|m| m.attribute("status") == Some("succeeded"))
    );
    inbox
        .wait_for(3, Duration::from_secs(20), |_| true)
        .await
        .unwrap();
    let err = inbox
        .wait_for(4, Duration::from_millis(200), |_| true)
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("received 3") && text.contains("\"failed\""),
        "{text}"
    );
}

#[tokio::test]
async fn topology_helpers_are_idempotent_and_can_leave_out_completions() {
    let opts = TopologyOptions {
        create_completions_topic: false,
        ..Default::default()
    };
    let endpoint = emulator().endpoint();
    Topology::create(&endpoint, "tk-idem", &opts).await.unwrap();
    let topology = Topology::create(&endpoint, "tk-idem", &opts)
        .await
        .expect("second create");
    let missing = topology.publish(COPY_COMPLETIONS, b"x", &[]).await;
    assert!(missing.is_err(), "copy-completions must not exist yet");

    topology.create_topic(COPY_COMPLETIONS).await.unwrap();
    topology
        .create_pull_subscription(COPY_COMPLETIONS_ALL, COPY_COMPLETIONS)
        .await
        .unwrap();
    let inbox = Inbox::open(&topology, COPY_COMPLETIONS_ALL).await.unwrap();
    topology
        .publish(COPY_COMPLETIONS, b"late", &[])
        .await
        .unwrap();
    inbox
        .wait_for(1, Duration::from_secs(20), |m| m.data == b"late")
        .await
        .unwrap();

    topology.delete_topic(COPY_COMPLETIONS).await.unwrap();
    topology
        .delete_topic(COPY_COMPLETIONS)
        .await
        .expect("deleting twice is fine");
    assert!(
        topology
            .publish(COPY_COMPLETIONS, b"gone", &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn stopping_an_emulator_kills_its_process_group() {
    let mut own = Emulator::start().await.unwrap();
    let pid = own.pid().expect("running");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    own.stop();
    own.stop();
    assert_eq!(own.pid(), None);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "JVM {pid} survived stop"
    );
}

#[tokio::test]
async fn a_missing_emulator_fails_with_an_install_hint() {
    let err = Emulator::start_at("/nonexistent/cloud-pubsub-emulator")
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("apt-get install google-cloud-cli-pubsub-emulator"),
        "{text}"
    );
    assert!(
        text.contains("gcloud components install pubsub-emulator"),
        "{text}"
    );
}

/// The emulator keeps a streaming pull whose client went away (see
/// `Topology::release_closed_streams`): it goes on taking the subscription's messages, so a
/// new reader waits a whole lease (here 60 s) or more for them. Measured without the release:
/// the next reader got neither message within 90 s (twice). After `release_closed_streams`,
/// it gets the held message and a later one within seconds (1.2 s measured), as it would from
/// the real service once the dead reader's lease ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_readers_stream_holds_messages_until_released() {
    use google_cloud_pubsub::client::Subscriber;
    let topology = Topology::create(&emulator().endpoint(), "tk-zombie", &Default::default())
        .await
        .unwrap();
    topology
        .create_pull_subscription(COPY_COMPLETIONS_ALL, COPY_COMPLETIONS)
        .await
        .unwrap();
    let subscriber = Subscriber::builder()
        .with_endpoint(&topology.endpoint)
        .with_credentials(testkit::pubsub::anonymous())
        .build()
        .await
        .unwrap();
    // Reader A takes the first message and holds it unacked (its client extends the 60 s
    // lease); then the message is A's alone.
    let mut first = subscriber
        .subscribe(topology.subscription(COPY_COMPLETIONS_ALL))
        .build();
    topology
        .publish(COPY_COMPLETIONS, b"held", &[])
        .await
        .unwrap();
    let (held, handler) = tokio::time::timeout(Duration::from_secs(20), first.next())
        .await
        .expect("reader A gets the message")
        .unwrap()
        .unwrap();
    assert_eq!(&held.data[..], b"held");
    let early = Inbox::open(&topology, COPY_COMPLETIONS_ALL).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(early.snapshot().is_empty(), "{:?}", early.snapshot());
    // A goes away without acking (a dropped stream, like a process exit): on this emulator
    // its stream may live on and take what comes next; either way "held" stays leased.
    drop((handler, first, early));
    tokio::time::sleep(Duration::from_millis(500)).await;
    topology
        .publish(COPY_COMPLETIONS, b"after", &[])
        .await
        .unwrap();

    let started = Instant::now();
    topology
        .release_closed_streams(COPY_COMPLETIONS_ALL)
        .await
        .unwrap();
    let reader = Inbox::open(&topology, COPY_COMPLETIONS_ALL).await.unwrap();
    let got = reader
        .wait_for(2, Duration::from_secs(10), |m| {
            m.data == b"held" || m.data == b"after"
        })
        .await
        .expect("both messages reach the next reader once released");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "released in {:?}",
        started.elapsed()
    );
}
