//! The request stage over the in-memory doubles: what it queues, what it publishes, and
//! that it acks only once what it hands on is confirmed (DESIGN.md §1, §4).

use google_cloud_gax::error::rpc::Code;

use crate::clients::pubsub::Topic;
use crate::clients::tasks::{Queue, start_task_id};
use crate::contract::event::Status;
use crate::domain::RequestId;
use crate::pipeline::StepOutcome;
use crate::pipeline::doubles::*;

/// A request whose destination model id breaks the rule.
const BAD_ID: &str = r#"{"request_id":"r-2","source_model":"projects/src-proj/locations/us-central1/models/7","destination":{"project":"dst-proj","model_id":"Bad_ID"}}"#;

/// `data`, delivered as message `id` with no attributes to a pipeline over `d`, and the
/// request stage's answer.
async fn requested(d: &Doubles, id: &str, data: &str) -> StepOutcome {
    d.pipeline().request_stage(&push(id, data, &[])).await
}

#[tokio::test(start_paused = true)]
async fn a_valid_request_queues_one_copy_start_named_from_its_message_and_acks() {
    let d = doubles();
    let p = d.pipeline();
    let before = now_ms();
    let msg = push(
        "m-1",
        &request(),
        &[
            ("traceparent", TRACEPARENT),
            ("team", "ml"),
            ("replay_count", "1"),
        ],
    );
    let out = p.request_stage(&msg).await;
    acked(&out);
    let t = d.queues.only(Queue::Starts);
    assert_eq!(t.id, start_task_id("m-1", "r-1", 1, 0));
    assert_eq!(t.schedule, None, "a first start is dispatched at once");
    let task = task_of(&t);
    assert_eq!(task.request.get(), request(), "the request as received");
    assert_eq!(
        (task.attempt, task.seq, task.origin.as_str()),
        (1, 0, "m-1")
    );
    assert!(task.accepted_at >= before && task.accepted_at <= chrono::Utc::now());
    assert_eq!((task.operation, task.due_ms), (None, None));
    assert_eq!(task.attributes["traceparent"], TRACEPARENT);
    assert_eq!(task.attributes["team"], "ml");
    assert_eq!(task.attributes["replay_count"], "1");
    assert!(d.queues.tasks(Queue::Polls).is_empty());
    assert!(d.topics.attempts().is_empty(), "nothing is published");
    assert!(
        d.vertex.calls().is_empty(),
        "the request stage calls no Vertex AI"
    );
}

#[tokio::test(start_paused = true)]
async fn a_redelivered_request_names_the_same_start_and_queues_nothing_new() {
    let d = doubles();
    let p = d.pipeline();
    let msg = push("m-1", &request(), &[]);
    for _ in 0..3 {
        acked(&p.request_stage(&msg).await);
    }
    let calls = d.queues.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|t| t.id == calls[0].id), "{calls:#?}");
    assert_eq!(d.queues.tasks(Queue::Starts).len(), 1);
    // Another message with the same request is another chain.
    p.request_stage(&push("m-2", &request(), &[])).await;
    assert_eq!(d.queues.tasks(Queue::Starts).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_invalid_request_publishes_a_rejected_event_and_a_dead_letter_then_acks() {
    let d = doubles();
    let p = d.pipeline();
    let msg = push("m-2", BAD_ID, &[("replay_count", "2"), ("waiter", WAITER)]);
    let out = p.request_stage(&msg).await;
    acked(&out);
    let topics: Vec<Topic> = d.topics.attempts().iter().map(|p| p.topic).collect();
    assert_eq!(
        topics,
        [Topic::Completions, Topic::DeadLetter],
        "event first"
    );
    let ev = d.topics.only(Topic::Completions);
    assert_eq!(ev.attributes["status"], "rejected");
    assert_eq!(ev.attributes["ce-id"], "r-2:rejected");
    assert_eq!(
        ev.attributes["waiter"], WAITER,
        "the waiter finds its rejection"
    );
    assert!(!ev.attributes.contains_key("replay_count"));
    let event = event_of(&ev);
    assert_eq!(event.status, Status::Rejected);
    assert_eq!(event.attempts, 0);
    let error = event.error.expect("an error");
    assert_eq!(error.code, "INVALID_REQUEST");
    assert!(
        error.message.starts_with("destination.model_id:"),
        "{}",
        error.message
    );
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.data, BAD_ID.as_bytes(), "the bytes as received");
    assert_eq!(dl.attributes["error_code"], "INVALID_REQUEST");
    assert_eq!(dl.attributes["failed_stage"], "request");
    assert_eq!(dl.attributes["request_id"], "r-2");
    assert_eq!(
        dl.attributes["replay_count"], "2",
        "the replay guard sees it"
    );
    assert!(dl.attributes["error_message"].contains("Bad_ID"));
    assert!(dl.attributes.contains_key("dead_lettered_at"));
    assert!(d.queues.calls().is_empty(), "nothing is queued");
}

#[tokio::test(start_paused = true)]
async fn each_invalid_request_names_its_field_in_the_event_and_the_dead_letter() {
    let cases = [
        ("rej-json", "{not json", "request: is not valid JSON"),
        (
            "rej-field",
            r#"{"request_id":"rej-field","source_model":"1","colour":"red"}"#,
            "colour: is not a known field",
        ),
        (
            "rej-model",
            r#"{"request_id":"rej-model","source_model":"1","destination":{"model_id":"Bad_ID"}}"#,
            "destination.model_id: must match",
        ),
    ];
    // The worker's defaults fill in a bare model id and the destination project.
    let mut with_defaults = settings();
    with_defaults.defaults.source_project = Some("src-proj".into());
    with_defaults.defaults.target_project = Some("dst-proj".into());
    with_defaults.defaults.location = Some("us-central1".into());
    for (id, data, why) in cases {
        let d = doubles();
        let p = d.pipeline_with(with_defaults.clone(), None);
        let out = p
            .request_stage(&push(id, data, &[("request_id", id)]))
            .await;
        assert!(matches!(out, StepOutcome::Acked), "{id}: {out:?}");
        let ev = d.topics.only(Topic::Completions);
        assert_eq!(ev.attributes["ce-id"], format!("{id}:rejected"));
        let (_, dl) = d.ended(Status::Rejected, "INVALID_REQUEST", why);
        assert_eq!(dl.data, data.as_bytes());
        assert!(dl.attributes["error_message"].contains(why), "{id}");
        assert!(
            d.vertex.calls().is_empty(),
            "rejections never reach Vertex AI"
        );
        assert!(d.queues.calls().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn data_that_is_not_json_is_rejected_under_a_hash_of_its_bytes() {
    let d = doubles();
    acked(&requested(&d, "m-3", "not json").await);
    let want = RequestId::for_bytes(b"not json");
    assert!(want.as_str().starts_with("invalid-"));
    let event = event_of(&d.topics.only(Topic::Completions));
    assert_eq!(event.request_id, want.as_str());
    assert_eq!(event.source_model, None);
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["request_id"], want.as_str());
    assert_eq!(dl.data, b"not json");
}

#[tokio::test(start_paused = true)]
async fn a_dead_letter_pubsub_did_not_confirm_answers_retry_not_ack() {
    let d = doubles();
    d.topics.on(Topic::DeadLetter, [Publish::UNAVAILABLE]);
    publish_retry(&requested(&d, "m-2", BAD_ID).await);
    assert_eq!(d.topics.confirmed(Topic::Completions).len(), 1);
    assert!(d.topics.confirmed(Topic::DeadLetter).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_rejected_event_pubsub_did_not_confirm_answers_retry_before_any_dead_letter() {
    let d = doubles();
    d.topics.on(Topic::Completions, [Publish::UNAVAILABLE]);
    publish_retry(&requested(&d, "m-2", BAD_ID).await);
    let order = d.topics.published_to();
    assert_eq!(
        order,
        [Topic::Completions],
        "no dead letter before the event"
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_pubsub_refuses_for_good_dead_letters_the_delivery_with_the_reason() {
    let d = doubles();
    d.topics.on(Topic::Completions, [Publish::REFUSED]);
    acked(&requested(&d, "m-2", BAD_ID).await);
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["error_code"], "INVALID_ARGUMENT");
    assert!(dl.attributes["error_message"].contains("completion event"));
    assert_eq!(dl.data, BAD_ID.as_bytes());
}

#[tokio::test(start_paused = true)]
async fn a_queue_that_is_missing_or_not_ours_answers_retry_and_announces_nothing() {
    for code in [Code::NotFound, Code::PermissionDenied, Code::Unavailable] {
        let d = doubles();
        d.queues.on_create([Create::Fails(code)]);
        let out = requested(&d, "m-1", &request()).await;
        assert_eq!(queue_failure(&out), code);
        assert!(d.topics.attempts().is_empty(), "{code:?}: no failed event");
    }
}

#[tokio::test(start_paused = true)]
async fn a_start_task_cloud_tasks_refuses_for_good_fails_the_copy_with_a_dead_letter() {
    let d = doubles();
    d.queues.on_create([Create::Fails(Code::InvalidArgument)]);
    acked(&requested(&d, "m-1", &request()).await);
    let ev = d.topics.only(Topic::Completions);
    assert_eq!(ev.attributes["status"], "failed");
    let event = event_of(&ev);
    assert_eq!(event.error.expect("error").code, "INVALID_ARGUMENT");
    assert_eq!(event.destination_model.as_deref(), Some(DESTINATION));
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["error_code"], "INVALID_ARGUMENT");
    assert_eq!(dl.attributes["failed_stage"], "request");
    assert_eq!(dl.data, request().as_bytes());
}
