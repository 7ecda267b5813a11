//! The poll chain against testkit's Cloud Tasks fake (docs/DESIGN.md §1, §10): duplicated
//! dispatches, a paused queue, and the largest request the contract accepts.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::helpers::{Knobs, POLL_QUEUE, SRC, request, spawn_app};

/// Cloud Tasks delivers at least once: with every task dispatched twice, each copy still
/// starts once, its chain does not fork, and its event has one `ce-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_dispatch_yields_one_copy_and_one_event_id() {
    let app = spawn_app("chain-dup", Knobs::default()).await;
    app.copies_take(Duration::from_secs(3));
    app.tasks.set_duplicate_rate(1.0);
    for i in 0..3 {
        app.publish(&request(&format!("dup-{i}"), &format!("dup-t-{i}")))
            .await;
    }
    for i in 0..3 {
        let id = format!("dup-{i}");
        app.completion_of(&id, 1, 60).await;
    }
    // Late duplicates of the last poll may still announce: wait for them, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ce_ids: BTreeSet<String> = app
        .completions()
        .snapshot()
        .iter()
        .map(|m| m.attribute("ce-id").unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        ce_ids,
        (0..3).map(|i| format!("dup-{i}:succeeded")).collect(),
        "one event id per request"
    );
    assert_eq!(app.vertex.copies_started(), 3, "one copy per request");
    let duplicated = app
        .tasks
        .dispatches()
        .iter()
        .filter(|d| d.duplicate)
        .count();
    assert!(duplicated > 0, "the fake did dispatch duplicates");
    assert!(app.dead_letters.snapshot().is_empty());
}

/// `gcloud tasks queues pause copy-polls`: the polls wait in the queue, nothing is lost, and
/// every copy is announced once the queue resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_poll_queue_resumes_with_nothing_lost() {
    let app = spawn_app("chain-pause", Knobs::default()).await;
    app.copies_take(Duration::from_millis(500));
    app.tasks.pause(POLL_QUEUE);
    for i in 0..3 {
        app.publish(&request(&format!("pause-{i}"), &format!("pause-t-{i}")))
            .await;
    }
    let t0 = std::time::Instant::now();
    while app.tasks.tasks(POLL_QUEUE).len() < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "three first polls queued: {:?}",
            app.tasks.tasks(POLL_QUEUE)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        app.completions().snapshot().is_empty(),
        "no poll ran while the queue was paused"
    );
    app.tasks.resume(POLL_QUEUE);
    for i in 0..3 {
        let ev = app.completion_of(&format!("pause-{i}"), 1, 30).await;
        assert_eq!(ev[0].attribute("status"), Some("succeeded"));
    }
    assert_eq!(app.vertex.copies_started(), 3);
}

/// A request of 64 KiB (the contract's limit) with 100 caller attributes of Pub/Sub's largest
/// sizes goes through both queues (each task under Cloud Tasks' 100 KB) and ends `succeeded`;
/// the waiter's tag still reaches the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_valid_request_goes_through_the_queues() {
    let app = spawn_app("chain-big", Knobs::default()).await;
    app.copies_take(Duration::from_secs(1));
    let mut req: serde_json::Value = serde_json::from_str(&request("big-1", "big-t")).unwrap();
    let mut context = serde_json::Map::new();
    for i in 0..16 {
        context.insert(format!("k{i:02}"), "v".repeat(4000).into());
    }
    req["context"] = context.into();
    let mut data = serde_json::to_string(&req).unwrap();
    // Fill up to the limit with the last value.
    let room = 64 * 1024 - data.len();
    req["context"]["k15"] = "v".repeat(4000 + room).into();
    data = serde_json::to_string(&req).unwrap();
    assert_eq!(data.len(), 64 * 1024);
    let keys: Vec<String> = (0..98).map(|i| format!("{i:0>256}")).collect();
    let value = "x".repeat(1024);
    let mut attrs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), value.as_str())).collect();
    attrs.push(("waiter", "3f2a9c1e0b7d4a58"));
    attrs.push(("request_id", "big-1"));
    assert_eq!(attrs.len(), 100);
    app.topology
        .publish("copy-requests", data.as_bytes(), &attrs)
        .await
        .unwrap();
    let ev = app.completion_of("big-1", 1, 60).await;
    assert_eq!(
        ev[0].attribute("status"),
        Some("succeeded"),
        "{:?}",
        ev[0].json()
    );
    assert_eq!(ev[0].attribute("waiter"), Some("3f2a9c1e0b7d4a58"));
    assert_eq!(ev[0].json()["context"]["k00"], "v".repeat(4000));
    assert!(app.dead_letters.snapshot().is_empty());
    assert!(app.tasks.given_up().is_empty());
    let _ = SRC;
}

/// A task body the worker cannot read is answered 2xx with a `rejected` event and a dead
/// letter that keeps the bytes: a 4xx or 5xx would have the queue retry it for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_body_that_is_not_a_task_is_rejected_with_a_dead_letter_and_answered_204() {
    let app = spawn_app("chain-bad", Knobs::default()).await;
    let c = reqwest::Client::new();
    for (route, body) in [
        (
            "/tasks/copy-polls",
            r#"{"request":{"request_id":"bad-1"},"attempt":"x"}"#,
        ),
        ("/tasks/copy-starts", "not json at all"),
    ] {
        let r = c
            .post(format!("{}{route}", app.base_url))
            .header("x-cloudtasks-taskname", "poll-by-hand")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204, "{route}");
    }
    let events = app
        .completions()
        .wait_for(2, Duration::from_secs(30), |m| {
            m.attribute("status") == Some("rejected")
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    let dead = app
        .dead_letters
        .wait_for(2, Duration::from_secs(30), |m| {
            m.attribute("error_code") == Some("INVALID_REQUEST")
        })
        .await
        .unwrap();
    assert!(
        dead.iter().any(|d| d.data == b"not json at all"),
        "the dead letter keeps the bytes"
    );
    assert_eq!(app.vertex.copies_started(), 0);
}

/// A CMEK source copied without `kms_key_name` into a region that has a default key
/// (`COPY_DEFAULT_KMS_KEYS`, DESIGN.md §5) is copied under that key: the CopyModel request
/// carries it as `encryptionSpec`, and the copy Vertex AI made is encrypted with it. A
/// request's own key wins over the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cmek_source_without_a_key_is_copied_under_the_regions_default_key() {
    const DEFAULT: &str =
        "projects/keys-proj/locations/europe-west4/keyRings/copies/cryptoKeys/default";
    const OTHER_REGION: &str =
        "projects/keys-proj/locations/us-central1/keyRings/copies/cryptoKeys/default";
    const OWN: &str = "projects/dst-proj/locations/europe-west4/keyRings/r/cryptoKeys/own";
    let knobs = Knobs {
        extra_args: vec![
            "--copy-default-kms-keys".into(),
            format!("us-central1={OTHER_REGION},europe-west4={DEFAULT}"),
        ],
        ..Knobs::default()
    };
    let app = spawn_app("chain-default-key", knobs).await;
    app.copies_take(Duration::from_secs(1));
    app.vertex.set_specs(
        SRC,
        testkit::ModelSpecs {
            container_image_uri: None,
            kms_key_name: Some(
                "projects/src-proj/locations/us-central1/keyRings/r/cryptoKeys/k".into(),
            ),
        },
    );
    app.publish(&request("key-default", "key-default-t")).await;
    let ev = app
        .completion_of("key-default", 1, 60)
        .await
        .remove(0)
        .json();
    assert_eq!(ev["status"], "succeeded", "{ev}");
    let own = request("key-own", "key-own-t").replace(
        r#","context""#,
        &format!(r#","kms_key_name":"{OWN}","context""#),
    );
    app.publish(&own).await;
    let own_ev = app.completion_of("key-own", 1, 60).await.remove(0).json();
    assert_eq!(own_ev["status"], "succeeded", "{own_ev}");
    assert_eq!(
        app.vertex.copy_encryption_specs(),
        vec![
            Some(serde_json::json!({ "kmsKeyName": DEFAULT })),
            Some(serde_json::json!({ "kmsKeyName": OWN })),
        ],
        "what CopyModel was asked"
    );
    let copy = app
        .vertex
        .model(ev["destination_model"].as_str().unwrap())
        .expect("the copy exists");
    assert_eq!(copy["encryptionSpec"]["kmsKeyName"], DEFAULT, "{copy}");
}
