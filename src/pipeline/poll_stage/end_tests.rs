//! The poll stage over the in-memory doubles, where the copy ends: a finished copy's event
//! and callback message, a failure that ends it (its last attempt, for good, past
//! COPY_MAX_DURATION, an operation Vertex AI no longer knows) with its dead letter, an event
//! Pub/Sub did not confirm, and a callback host removed while the copy ran. The helpers and the
//! chain that goes on are in `tests`.

use std::time::Duration;

use google_cloud_gax::error::rpc::Code;

use super::tests::{dispatch, done, failed, poll_at, polled, polling};
use crate::clients::pubsub::Topic;
use crate::clients::vertex::OperationState;
use crate::contract::event::Status;
use crate::contract::task::CopyTask;
use crate::pipeline::doubles::*;

#[tokio::test(start_paused = true)]
async fn a_finished_copy_publishes_its_event_and_queues_nothing() {
    let d = polling(done());
    let p = d.pipeline();
    let task = CopyTask {
        attempt: 2,
        ..asking(
            r#","context":{"pipeline":"nightly"}"#,
            poll_at(Duration::from_secs(30)),
        )
    };
    acked(&dispatch(&p, &task).await);
    assert!(d.queues.calls().is_empty());
    let ev = d.topics.only(Topic::Completions);
    assert_eq!(ev.attributes["status"], "succeeded");
    assert_eq!(ev.attributes["ce-id"], "r-1:succeeded");
    assert_eq!(ev.attributes["ce-specversion"], "1.0");
    assert_eq!(ev.attributes["ce-type"], "copy-worker.copy.succeeded");
    assert_eq!(
        ev.attributes["ce-source"],
        "//copy-worker/projects/worker-proj"
    );
    assert_eq!(ev.attributes["ce-subject"], DESTINATION_BY_NUMBER);
    assert_eq!(ev.attributes["destination_project"], "dst-proj");
    assert_eq!(ev.attributes["waiter"], WAITER);
    let event = event_of(&ev);
    assert_eq!(event.status, Status::Succeeded);
    assert_eq!(
        event.destination_model.as_deref(),
        Some(DESTINATION_BY_NUMBER)
    );
    assert_eq!(event.destination_model_version.as_deref(), Some("1"));
    assert_eq!(event.operation.as_deref(), Some(OP));
    assert_eq!((event.attempts, event.error), (2, None));
    assert_eq!(event.source_model.as_deref(), Some(SOURCE));
    assert_eq!(event.context["pipeline"], "nightly", "echoed unchanged");
    assert!(d.topics.confirmed(Topic::DeadLetter).is_empty());
    assert!(
        d.topics.confirmed(Topic::Callbacks).is_empty(),
        "no callback_url"
    );
}

#[tokio::test(start_paused = true)]
async fn a_finished_copy_with_a_callback_url_hands_on_a_sealed_callback_message() {
    let url = "https://hooks.example.com/done";
    let d = polling(done());
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let p = d.pipeline_with(settings(), Some(secret));
    let task = CopyTask {
        attributes: [("traceparent".to_owned(), TRACEPARENT.to_owned())].into(),
        ..asking(
            &format!(r#","callback_url":"{url}""#),
            poll_at(Duration::from_secs(5)),
        )
    };
    acked(&dispatch(&p, &task).await);
    let order = [Topic::Completions, Topic::Callbacks];
    assert_eq!(d.topics.published_to(), order, "the event first");
    let ev = d.topics.only(Topic::Completions);
    let cb = d.topics.only(Topic::Callbacks);
    assert_eq!(cb.data, ev.data, "the event exactly as published");
    assert_eq!(cb.attributes["callback_url"], url);
    assert_eq!(cb.attributes["webhook_id"], "r-1:succeeded");
    assert_eq!(cb.attributes["request_id"], "r-1");
    assert_eq!(cb.attributes["traceparent"], TRACEPARENT);
    let seal = cb.attributes.get("callback_seal").map(String::as_str);
    assert!(
        p.callbacks
            .sealed_here(seal, (url, "r-1", "r-1:succeeded"), &cb.data)
    );
}

#[tokio::test(start_paused = true)]
async fn an_operation_failing_on_its_last_attempt_ends_failed_with_a_dead_letter() {
    let d = polling(failed(Code::Unavailable, "busy"));
    let p = d.pipeline();
    let task = CopyTask {
        attempt: 3,
        ..poll_at(Duration::from_secs(10))
    };
    acked(&dispatch(&p, &task).await);
    assert!(d.queues.calls().is_empty(), "COPY_MAX_ATTEMPTS is 3");
    let event = event_of(&d.topics.only(Topic::Completions));
    assert_eq!(event.status, Status::Failed);
    assert_eq!(event.attempts, 3);
    assert_eq!(event.operation.as_deref(), Some(OP));
    let error = event.error.expect("error");
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("UNAVAILABLE", "busy")
    );
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["error_code"], "UNAVAILABLE");
    assert_eq!(dl.attributes["failed_stage"], "operation");
    assert_eq!(dl.attributes["request_id"], "r-1");
    assert_eq!(dl.data, request().as_bytes());
}

#[tokio::test(start_paused = true)]
async fn an_operation_failed_for_good_ends_failed_on_its_first_attempt() {
    let d = polling(failed(Code::FailedPrecondition, "unsupported model"));
    acked(&polled(&d).await);
    assert!(d.queues.calls().is_empty(), "no restart");
    let (event, dl) = d.ended(Status::Failed, "FAILED_PRECONDITION", "unsupported model");
    assert_eq!(event.attempts, 1);
    assert_eq!(dl.attributes["failed_stage"], "operation");
}

#[tokio::test(start_paused = true)]
async fn a_copy_still_running_past_copy_max_duration_ends_failed() {
    let d = polling(OperationState::Running);
    let mut settings = settings();
    settings.max_duration = Duration::from_secs(60);
    let p = d.pipeline_with(settings, None);
    let task = CopyTask {
        accepted_at: now_ms() - chrono::Duration::seconds(61),
        ..poll_at(Duration::from_secs(55))
    };
    acked(&dispatch(&p, &task).await);
    assert!(d.queues.calls().is_empty(), "no next poll");
    let (event, dl) = d.ended(Status::Failed, "DEADLINE_EXCEEDED", "still not done");
    assert_eq!(event.operation.as_deref(), Some(OP));
    assert_eq!(dl.attributes["failed_stage"], "operation");
}

#[tokio::test(start_paused = true)]
async fn a_copy_done_but_polled_past_copy_max_duration_is_announced_succeeded() {
    let d = polling(done());
    let p = d.pipeline();
    let task = CopyTask {
        accepted_at: now_ms() - chrono::Duration::hours(25),
        ..poll_at(Duration::from_secs(60))
    };
    acked(&dispatch(&p, &task).await);
    let event = event_of(&d.topics.only(Topic::Completions));
    assert_eq!(event.status, Status::Succeeded);
    assert!(d.topics.confirmed(Topic::DeadLetter).is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_operation_vertex_no_longer_knows_ends_failed() {
    let d = doubles();
    d.vertex.on_operation([Err(Code::NotFound)]);
    acked(&polled(&d).await);
    assert!(d.queues.calls().is_empty());
    let (_, dl) = d.ended(Status::Failed, "NOT_FOUND", "");
    assert_eq!(dl.attributes["failed_stage"], "operation");
}

#[tokio::test(start_paused = true)]
async fn a_completion_event_pubsub_did_not_confirm_answers_retry() {
    let d = polling(done());
    // The topic not made yet, or Pub/Sub unreachable: neither is confirmed.
    d.topics
        .on(Topic::Completions, [Publish::Fails(Code::NotFound)]);
    publish_retry(&polled(&d).await);
    assert!(d.queues.calls().is_empty());
}

/// DESIGN.md §7: a host removed from `CALLBACK_ALLOWED_HOSTS` after the request was accepted
/// does not turn the copy into `rejected`: the event stands and its callback message is handed
/// on; the callback stage refuses it when it is sent (`callback_stage` tests).
#[tokio::test(start_paused = true)]
async fn a_callback_host_removed_while_the_copy_runs_does_not_reject_the_copy() {
    let d = polling(done());
    let p = d.pipeline_with(no_callback_hosts(), None);
    let task = asking(
        r#","callback_url":"https://hooks.example.com/done""#,
        poll_at(Duration::from_secs(5)),
    );
    acked(&dispatch(&p, &task).await);
    let ev = d.topics.only(Topic::Completions);
    assert_eq!(ev.attributes["status"], "succeeded", "the event stands");
    let cb = d.topics.only(Topic::Callbacks);
    assert_eq!(
        cb.attributes["callback_url"],
        "https://hooks.example.com/done"
    );
    assert!(d.topics.confirmed(Topic::DeadLetter).is_empty());
}
