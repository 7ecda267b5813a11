//! The poll stage over the in-memory doubles: one GetOperation per poll task, then the next
//! poll (by the copy's age), a restart, or the end (DESIGN.md §1 "The poll chain", §4).
//!
//! Here: the chain going on (the next poll, a restart, a GetOperation error, a next poll Cloud
//! Tasks did not take) and a task that is not a poll. The copy's end (its event, callback and
//! dead letter) is in `end_tests`.

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
use crate::pipeline::{Pipeline, StepOutcome};
use crate::retry::Failure;

pub(super) async fn dispatch(p: &Pipeline, task: &CopyTask) -> StepOutcome {
    dispatched(p, Queue::Polls, &body(task)).await
}

/// Doubles whose Vertex AI answers every GetOperation with `answer`.
pub(super) fn polling(answer: OperationState) -> Doubles {
    let d = doubles();
    d.vertex.on_operation([Ok(answer)]);
    d
}

/// Poll 3 of a copy started 10 s ago, dispatched to the poll stage of a pipeline over `d`.
pub(super) async fn polled(d: &Doubles) -> StepOutcome {
    dispatch(&d.pipeline(), &poll_at(Duration::from_secs(10))).await
}

/// Poll 3 of a copy started `age` ago, planned for exactly that age.
pub(super) fn poll_at(age: Duration) -> CopyTask {
    let started = now_ms() - chrono::Duration::from_std(age).unwrap();
    poll_task(3, started, age.as_millis() as u64)
}

pub(super) fn done() -> OperationState {
    OperationState::Succeeded(CopiedModel {
        model: DESTINATION_BY_NUMBER.into(),
        version_id: "1".into(),
    })
}

/// The operation's answer when it failed with `code`.
pub(super) fn failed(code: Code, message: &str) -> OperationState {
    OperationState::Failed(Failure::new(code, message))
}

#[tokio::test(start_paused = true)]
async fn a_running_copy_gets_its_next_poll_at_the_connectors_delay() {
    let d = polling(OperationState::Running);
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
    let d = polling(OperationState::Running);
    let p = d.pipeline();
    // Planned for 10 s, run at 20 s (a backlog): 20 s + (1 s + 0.25 × 20 s) = about 26 s.
    let started = now_ms() - chrono::Duration::seconds(20);
    acked(&dispatch(&p, &poll_task(3, started, 10_000)).await);
    let due = task_of(&d.queues.only(Queue::Polls)).due_ms.unwrap();
    assert!((26_000..26_500).contains(&due), "{due}");
}

#[tokio::test(start_paused = true)]
async fn an_operation_failed_transiently_restarts_through_the_start_queue() {
    let d = polling(failed(Code::Unavailable, "backend restarted"));
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
async fn a_next_poll_cloud_tasks_did_not_take_answers_retry_and_announces_nothing() {
    let d = polling(OperationState::Running);
    d.queues.on_create([Create::Fails(Code::PermissionDenied)]);
    assert_eq!(queue_failure(&polled(&d).await), Code::PermissionDenied);
    assert!(d.topics.attempts().is_empty());
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
    acked(&dispatched(&p, Queue::Polls, junk).await);
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
