//! The start stage over the in-memory doubles, for what a request asks beyond a plain copy:
//! a source CopyModel cannot copy (its limits), a CMEK source and the region's default key, a
//! new version of a parent model, and a callback host removed since the request was accepted.
//! The helpers and the plain start are in `tests`.

use google_cloud_gax::error::rpc::Code;

use super::tests::{dispatch, started};
use crate::clients::pubsub::Topic;
use crate::clients::tasks::{Queue, poll_task_id};
use crate::contract::event::Status;
use crate::contract::task::{CopyTask, raw_request};
use crate::domain::{KmsKeyName, Location};
use crate::pipeline::Settings;
use crate::pipeline::doubles::*;

#[tokio::test(start_paused = true)]
async fn copy_model_limits_reject_before_copy_model_naming_the_field() {
    let third_party = crate::domain::ModelInfo {
        container_image_uri: Some("europe-docker.pkg.dev/my-proj/serving/model:v1".into()),
        ..source_model()
    };
    let cmek = crate::domain::ModelInfo {
        container_image_uri: None,
        kms_key_name: Some(
            "projects/src-proj/locations/us-central1/keyRings/r/cryptoKeys/k".into(),
        ),
        ..source_model()
    };
    let cases = [
        (
            third_party,
            Some("source_model:"),
            vec!["third-party container image"],
        ),
        (
            cmek,
            Some("kms_key_name:"),
            vec![
                "You're required to specify the encryption key",
                "europe-west4",
                "COPY_DEFAULT_KMS_KEYS",
            ],
        ),
        (source_model(), None, vec![]),
    ];
    for (model, field, says) in cases {
        let d = Doubles::default();
        d.vertex.with_model(SOURCE, model);
        d.vertex.on_start([Ok(OP)]);
        acked(&started(&d).await);
        let Some(field) = field else {
            assert_eq!(d.vertex.copy_calls(), 1, "a prebuilt image is copied");
            assert!(d.topics.attempts().is_empty());
            continue;
        };
        assert_eq!(d.vertex.copy_calls(), 0, "{field}");
        let (event, _) = d.ended(Status::Rejected, "INVALID_REQUEST", field);
        let message = event.error.expect("error").message;
        assert!(message.starts_with(field), "{message}");
        for s in says {
            assert!(message.contains(s), "{field} {s}: {message}");
        }
        assert!(d.queues.calls().is_empty());
    }
}

/// The test settings with `key` as europe-west4's default key (`COPY_DEFAULT_KMS_KEYS`).
fn default_key(key: &str) -> Settings {
    let mut s = settings();
    s.default_kms_keys.insert(
        Location::parse("l", "europe-west4").unwrap(),
        KmsKeyName::parse("k", key, "europe-west4").unwrap(),
    );
    s
}

#[tokio::test(start_paused = true)]
async fn a_cmek_source_without_a_key_is_copied_under_the_regions_default_key() {
    let key = "projects/dst-proj/locations/europe-west4/keyRings/r/cryptoKeys/k";
    let d = doubles();
    let mut cmek = source_model();
    cmek.kms_key_name =
        Some("projects/src-proj/locations/us-central1/keyRings/r/cryptoKeys/s".into());
    d.vertex.with_model(SOURCE, cmek.clone());
    d.vertex.on_start([Ok(OP)]);
    let p = d.pipeline_with(default_key(key), None);
    acked(&dispatch(&p, &start_task(now_ms())).await);
    assert!(d.vertex.calls().contains(&VertexCall::StartCopy {
        request_id: "r-1".into(),
        key: Some(key.into())
    }));
    // A request's own key wins over the default.
    let own = "projects/dst-proj/locations/europe-west4/keyRings/r/cryptoKeys/own";
    let d = doubles();
    d.vertex.with_model(SOURCE, cmek);
    d.vertex.on_start([Ok(OP)]);
    let p = d.pipeline_with(default_key(key), None);
    let task = asking(&format!(r#","kms_key_name":"{own}""#), start_task(now_ms()));
    acked(&dispatch(&p, &task).await);
    assert!(d.vertex.calls().contains(&VertexCall::StartCopy {
        request_id: "r-1".into(),
        key: Some(own.into())
    }));
}

/// A start of a copy into a new version of `parent`.
fn parent_task() -> CopyTask {
    let parent = r#"{"request_id":"r-1","source_model":"SRC","destination":{"project":"dst-proj","location":"europe-west4","parent_model":"projects/dst-proj/locations/europe-west4/models/parent"}}"#
        .replace("SRC", SOURCE);
    CopyTask {
        request: raw_request(parent.as_bytes()).unwrap(),
        ..start_task(now_ms())
    }
}

/// A version of the parent, copied from `original`.
fn version_of(original: &str, version: &str) -> crate::domain::ModelInfo {
    crate::domain::ModelInfo {
        name: "projects/234567890123/locations/europe-west4/models/parent".into(),
        version_id: version.into(),
        ..copy_of(original)
    }
}

#[tokio::test(start_paused = true)]
async fn a_parent_that_already_holds_our_copy_succeeds_without_copy_model() {
    let d = doubles();
    let ours = format!("{SOURCE_BY_NUMBER}@3");
    d.vertex.on_find_copies([Ok(vec![
        version_of("projects/9/locations/us-central1/models/1@1", "1"),
        version_of(&ours, "2"),
    ])]);
    acked(&dispatch(&d.pipeline(), &parent_task()).await);
    assert_eq!(d.vertex.copy_calls(), 0);
    let event = event_of(&d.topics.only(Topic::Completions));
    assert_eq!(event.status, Status::Succeeded);
    assert_eq!(
        event.destination_model.as_deref(),
        Some("projects/234567890123/locations/europe-west4/models/parent")
    );
    assert_eq!(event.destination_model_version.as_deref(), Some("2"));
    assert!(d.queues.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_parent_copy_running_in_this_instance_is_polled_not_started_again() {
    let d = doubles();
    // The parent's own version: a parent always lists at least one.
    d.vertex.on_find_copies([Ok(vec![version_of(
        "projects/9/locations/us-central1/models/1@1",
        "1",
    )])]);
    d.vertex.on_start([Ok(OP)]);
    d.vertex
        .on_operation([Ok(crate::clients::vertex::OperationState::Running)]);
    let p = d.pipeline();
    let task = parent_task();
    for _ in 0..2 {
        acked(&dispatch(&p, &task).await);
    }
    assert_eq!(d.vertex.copy_calls(), 1, "one version added");
    assert_eq!(d.vertex.operation_calls(), 1, "the second dispatch looked");
    let calls = d.queues.calls();
    assert_eq!(calls.len(), 2);
    assert!(
        calls.iter().all(|t| t.id == poll_task_id(OP, 1)),
        "{calls:#?}"
    );
    assert_eq!(
        d.queues.tasks(Queue::Polls).len(),
        1,
        "the chain is not forked"
    );
}

#[tokio::test(start_paused = true)]
async fn an_ambiguous_copy_into_a_parent_is_not_repeated_in_request() {
    for code in [Code::Unavailable, Code::Internal, Code::DeadlineExceeded] {
        let d = doubles();
        d.vertex.on_find_copies([Ok(vec![])]);
        d.vertex.on_start([Err(code)]);
        let out = dispatch(&d.pipeline(), &parent_task()).await;
        assert_eq!(vertex_failure(&out), code);
        assert_eq!(d.vertex.copy_calls(), 1, "{code:?}: called once");
        assert!(d.queues.calls().is_empty() && d.topics.attempts().is_empty());
    }
}

/// DESIGN.md §7: the host of a `callback_url` accepted by the request stage counts as allowed
/// in the tasks that follow, so a host removed since does not reject a running copy.
#[tokio::test(start_paused = true)]
async fn a_callback_host_removed_after_acceptance_does_not_reject_the_start() {
    let d = doubles();
    d.vertex.on_start([Ok(OP)]);
    let p = d.pipeline_with(no_callback_hosts(), None);
    let task = asking(
        r#","callback_url":"https://hooks.example.com/done""#,
        start_task(now_ms()),
    );
    acked(&dispatch(&p, &task).await);
    assert!(d.topics.attempts().is_empty(), "not rejected");
    assert_eq!(d.queues.only(Queue::Polls).id, poll_task_id(OP, 1));
}
