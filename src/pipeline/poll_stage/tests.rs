//! The poll stage over the in-memory doubles: one GetOperation per poll task, then the next
//! poll (by the copy's age), a restart, or the end (DESIGN.md §1 "The poll chain", §4).

use std::time::Duration;

use chrono::Utc;
use google_cloud_gax::error::rpc::Code;

use crate::clients::pubsub::Topic;
use crate::clients::tasks::{Queue, poll_task_id, start_task_id};
use crate::clients::vertex::OperationState;
use crate::contract::event::Status;
use crate::contract::task::CopyTask;
use crate::domain::CopiedModel;
use crate::pipeline::doubles::*;
use crate::pipeline::{Dispatch, Pipeline, RetryReason, StepOutcome};
use crate::retry::Failure;

const TASK_NAME: &str = "projects/p/locations/l/queues/copy-polls/tasks/poll-3";

async fn dispatch(p: &Pipeline, task: &CopyTask) -> StepOutcome {
    let body = body(task);
    p.poll_stage(Dispatch {
        task_name: TASK_NAME,
        body: &body,
    })
    .await
}

/// Poll 3 of a copy started `age` ago, planned for exactly that age.
fn poll_at(age: Duration) -> CopyTask {
    let started = now_ms() - chrono::Duration::from_std(age).unwrap();
    poll_task(3, started, age.as_millis() as u64)
}

fn done() -> OperationState {
    OperationState::Succeeded(CopiedModel {
        model: DESTINATION_BY_NUMBER.into(),
        version_id: "1".into(),
    })
}

fn acked(out: &StepOutcome) {
    assert!(matches!(out, StepOutcome::Acked), "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn a_running_copy_gets_its_next_poll_at_the_connectors_delay() {
    let d = doubles();
    d.vertex.on_operation([Ok(OperationState::Running)]);
    let p = d.pipeline();
    let task = poll_at(Duration::from_secs(10));
    acked(&dispatch(&p, &task).await);
    let t = d.queues.only(Queue::Polls);
    assert_eq!(t.id, poll_task_id(OP, 4));
    let next = task_of(&t);
    // 10 s + (1 s + 0.25 × 10 s), planned from the plan, not from when it ran.
    assert_eq!(next.due_ms, Some(13_500));
    assert_eq!(next.seq, 4);
    assert_eq!(next.started_at, task.started_at);
    assert_eq!((next.attempt, next.accepted_at), (1, task.accepted_at));
    let want = task.started_at.unwrap() + chrono::Duration::milliseconds(13_500);
    let at = t.schedule.expect("scheduled");
    assert!(
        at >= want && at <= want + chrono::Duration::seconds(1),
        "{at} vs {want}"
    );
    assert_eq!(d.vertex.calls(), [VertexCall::GetOperation(OP.into())]);
    assert!(d.topics.attempts().is_empty());
    assert!(d.queues.tasks(Queue::Starts).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_poll_that_ran_late_plans_the_next_from_when_it_ran() {
    let d = doubles();
    d.vertex.on_operation([Ok(OperationState::Running)]);
    let p = d.pipeline();
    // Planned for 10 s, run at 20 s (a backlog): 20 s + (1 s + 0.25 × 20 s) = about 26 s.
    let started = now_ms() - chrono::Duration::seconds(20);
    acked(&dispatch(&p, &poll_task(3, started, 10_000)).await);
    let due = task_of(&d.queues.only(Queue::Polls)).due_ms.unwrap();
    assert!((26_000..26_500).contains(&due), "{due}");
}

#[tokio::test(start_paused = true)]
async fn a_finished_copy_publishes_its_event_and_queues_nothing() {
    let d = doubles();
    d.vertex.on_operation([Ok(done())]);
    let p = d.pipeline();
    let task = CopyTask {
        attempt: 2,
        request: crate::contract::task::raw_request(
            request_with(r#","context":{"pipeline":"nightly"}"#).as_bytes(),
        )
        .unwrap(),
        ..poll_at(Duration::from_secs(30))
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
    let d = doubles();
    d.vertex.on_operation([Ok(done())]);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let p = d.pipeline_with(settings(), Some(secret));
    let task = CopyTask {
        request: crate::contract::task::raw_request(
            request_with(&format!(r#","callback_url":"{url}""#)).as_bytes(),
        )
        .unwrap(),
        attributes: [("traceparent".to_owned(), TRACEPARENT.to_owned())].into(),
        ..poll_at(Duration::from_secs(5))
    };
    acked(&dispatch(&p, &task).await);
    let topics: Vec<Topic> = d.topics.attempts().iter().map(|p| p.topic).collect();
    assert_eq!(
        topics,
        [Topic::Completions, Topic::Callbacks],
        "the event first"
    );
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
async fn an_operation_failed_transiently_restarts_through_the_start_queue() {
    let d = doubles();
    d.vertex
        .on_operation([Ok(OperationState::Failed(Failure::new(
            Code::Unavailable,
            "backend restarted",
        )))]);
    let p = d.pipeline();
    let task = poll_at(Duration::from_secs(10));
    acked(&dispatch(&p, &task).await);
    let t = d.queues.only(Queue::Starts);
    assert_eq!(t.id, start_task_id(OP, "r-1", 2, 0));
    assert_eq!(t.schedule, None, "paced by the start queue, not held");
    let restart = task_of(&t);
    assert_eq!(restart.attempt, 2);
    assert_eq!(restart.previous_operation.as_deref(), Some(OP));
    assert_eq!((restart.origin.as_str(), restart.seq), (OP, 0));
    assert_eq!(restart.operation, None);
    assert_eq!(
        restart.accepted_at, task.accepted_at,
        "COPY_MAX_DURATION still counts"
    );
    assert!(d.queues.tasks(Queue::Polls).is_empty());
    assert!(d.topics.attempts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_operation_failing_on_its_last_attempt_ends_failed_with_a_dead_letter() {
    let d = doubles();
    d.vertex
        .on_operation([Ok(OperationState::Failed(Failure::new(
            Code::Unavailable,
            "busy",
        )))]);
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
    let d = doubles();
    d.vertex
        .on_operation([Ok(OperationState::Failed(Failure::new(
            Code::FailedPrecondition,
            "unsupported model",
        )))]);
    let p = d.pipeline();
    acked(&dispatch(&p, &poll_at(Duration::from_secs(10))).await);
    assert!(d.queues.calls().is_empty(), "no restart");
    let event = event_of(&d.topics.only(Topic::Completions));
    assert_eq!(
        (event.attempts, event.error.unwrap().code.as_str()),
        (1, "FAILED_PRECONDITION")
    );
    assert_eq!(
        d.topics.only(Topic::DeadLetter).attributes["failed_stage"],
        "operation"
    );
}

#[tokio::test(start_paused = true)]
async fn a_copy_still_running_past_copy_max_duration_ends_failed() {
    let d = doubles();
    d.vertex.on_operation([Ok(OperationState::Running)]);
    let mut settings = settings();
    settings.max_duration = Duration::from_secs(60);
    let p = d.pipeline_with(settings, None);
    let task = CopyTask {
        accepted_at: now_ms() - chrono::Duration::seconds(61),
        ..poll_at(Duration::from_secs(55))
    };
    acked(&dispatch(&p, &task).await);
    assert!(d.queues.calls().is_empty(), "no next poll");
    let event = event_of(&d.topics.only(Topic::Completions));
    assert_eq!(event.status, Status::Failed);
    assert_eq!(event.operation.as_deref(), Some(OP));
    let error = event.error.expect("error");
    assert_eq!(error.code, "DEADLINE_EXCEEDED");
    assert!(
        error.message.contains("still not done"),
        "{}",
        error.message
    );
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["error_code"], "DEADLINE_EXCEEDED");
    assert_eq!(dl.attributes["failed_stage"], "operation");
}

#[tokio::test(start_paused = true)]
async fn a_copy_done_but_polled_past_copy_max_duration_is_announced_succeeded() {
    let d = doubles();
    d.vertex.on_operation([Ok(done())]);
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
async fn a_get_operation_error_schedules_the_next_poll_at_least_the_quota_backoff_later() {
    for code in [Code::ResourceExhausted, Code::Unavailable] {
        let d = doubles();
        d.vertex.on_operation([Err(code)]);
        let p = d.pipeline();
        let task = poll_at(Duration::from_secs(10));
        let clock = tokio::time::Instant::now();
        let before = Utc::now();
        acked(&dispatch(&p, &task).await);
        assert_eq!(
            clock.elapsed(),
            Duration::ZERO,
            "{code:?}: no in-request retry"
        );
        assert_eq!(d.vertex.operation_calls(), 1, "{code:?}");
        let t = d.queues.only(Queue::Polls);
        assert_eq!(t.id, poll_task_id(OP, 4));
        // Not the connector's 13.5 s: the age now plus QUOTA_BACKOFF (10 s).
        let due = task_of(&t).due_ms.unwrap();
        assert!((20_000..20_500).contains(&due), "{code:?}: {due}");
        let at = t.schedule.expect("scheduled");
        assert!(
            at >= before + chrono::Duration::seconds(10),
            "{code:?}: {at}"
        );
        assert!(d.topics.attempts().is_empty(), "{code:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_operation_vertex_no_longer_knows_ends_failed() {
    let d = doubles();
    d.vertex.on_operation([Err(Code::NotFound)]);
    let p = d.pipeline();
    acked(&dispatch(&p, &poll_at(Duration::from_secs(10))).await);
    assert!(d.queues.calls().is_empty());
    let event = event_of(&d.topics.only(Topic::Completions));
    assert_eq!(event.error.unwrap().code, "NOT_FOUND");
    assert_eq!(
        d.topics.only(Topic::DeadLetter).attributes["failed_stage"],
        "operation"
    );
}

#[tokio::test(start_paused = true)]
async fn a_next_poll_cloud_tasks_did_not_take_answers_retry_and_announces_nothing() {
    let d = doubles();
    d.vertex.on_operation([Ok(OperationState::Running)]);
    d.queues.on_create([Create::Fails(Code::PermissionDenied)]);
    let p = d.pipeline();
    let out = dispatch(&p, &poll_at(Duration::from_secs(10))).await;
    assert!(
        matches!(out, StepOutcome::Retry(RetryReason::Queue(ref f)) if f.code == Code::PermissionDenied),
        "{out:?}"
    );
    assert!(d.topics.attempts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_completion_event_pubsub_did_not_confirm_answers_retry() {
    let d = doubles();
    d.vertex.on_operation([Ok(done())]);
    // The topic not made yet, or Pub/Sub unreachable: neither is confirmed.
    d.topics
        .on(Topic::Completions, [Publish::Fails(Code::NotFound)]);
    let p = d.pipeline();
    let out = dispatch(&p, &poll_at(Duration::from_secs(10))).await;
    assert!(
        matches!(out, StepOutcome::Retry(RetryReason::Publish(_))),
        "{out:?}"
    );
    assert!(d.queues.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_poll_task_without_an_operation_is_rejected() {
    let d = doubles();
    let p = d.pipeline();
    let task = CopyTask {
        operation: None,
        ..poll_at(Duration::from_secs(10))
    };
    acked(&dispatch(&p, &task).await);
    assert!(d.vertex.calls().is_empty());
    let event = event_of(&d.topics.only(Topic::Completions));
    assert_eq!(event.status, Status::Rejected);
    assert!(event.error.unwrap().message.starts_with("operation:"));
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["failed_stage"], "operation");
}

#[tokio::test(start_paused = true)]
async fn a_poll_body_that_is_not_a_task_is_rejected_with_a_dead_letter_keeping_its_bytes() {
    let d = doubles();
    let p = d.pipeline();
    let junk = br#"{"request":{"request_id":"bad-1"},"attempt":"x"}"#;
    let out = p
        .poll_stage(Dispatch {
            task_name: TASK_NAME,
            body: junk,
        })
        .await;
    acked(&out);
    assert_eq!(
        d.topics.only(Topic::Completions).attributes["status"],
        "rejected"
    );
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.data, junk);
    assert_eq!(dl.attributes["error_code"], "INVALID_REQUEST");
    assert_eq!(dl.attributes["failed_stage"], "operation");
    assert!(d.vertex.calls().is_empty() && d.queues.calls().is_empty());
}

/// DESIGN.md §7: a host removed from `CALLBACK_ALLOWED_HOSTS` after the request was accepted
/// does not turn the copy into `rejected`: the event stands and its callback message is handed
/// on; the callback stage refuses it when it is sent (`callback_stage` tests).
#[tokio::test(start_paused = true)]
async fn a_callback_host_removed_while_the_copy_runs_does_not_reject_the_copy() {
    let d = doubles();
    d.vertex.on_operation([Ok(done())]);
    let mut settings = settings();
    settings.defaults.callback_allowed_hosts.clear();
    let p = d.pipeline_with(settings, None);
    let task = CopyTask {
        request: crate::contract::task::raw_request(
            request_with(r#","callback_url":"https://hooks.example.com/done""#).as_bytes(),
        )
        .unwrap(),
        ..poll_at(Duration::from_secs(5))
    };
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
