//! The start stage over the in-memory doubles: one CopyModel per dispatch, then the first
//! poll, a retry, or the end (DESIGN.md §1, §4). Paused time: the in-request retries and the
//! stage's budget run in milliseconds.
//!
//! Here: a start, quota and in-request retries, the budget, ALREADY_EXISTS, the failures that
//! end a copy, restarts, and a first poll Cloud Tasks did not take. The request's options (a
//! source CopyModel cannot copy, keys, a parent model, a callback host) are in `options_tests`.

use std::time::Duration;

use chrono::{SubsecRound as _, Utc};
use google_cloud_gax::error::rpc::Code;

use crate::clients::pubsub::Topic;
use crate::clients::tasks::{Queue, poll_task_id, start_task_id};
use crate::contract::event::Status;
use crate::contract::task::CopyTask;
use crate::domain::ModelInfo;
use crate::pipeline::doubles::*;
use crate::pipeline::{Pipeline, RetryReason, StepOutcome};

pub(super) async fn dispatch(p: &Pipeline, task: &CopyTask) -> StepOutcome {
    dispatched(p, Queue::Starts, &body(task)).await
}

/// A first start of [`request`], dispatched to the start stage of a pipeline over `d`.
pub(super) async fn started(d: &Doubles) -> StepOutcome {
    dispatch(&d.pipeline(), &start_task(now_ms())).await
}

/// CopyModel failing with `code` on every call: the start answers retry for it; how long it
/// took to answer.
async fn start_failing(d: &Doubles, code: Code) -> Duration {
    d.vertex.on_start([Err(code)]);
    let clock = tokio::time::Instant::now();
    assert_eq!(vertex_failure(&started(d).await), code);
    clock.elapsed()
}

/// The stage's answer once CopyModel found the destination taken and `found` holds it.
async fn already_exists(d: &Doubles, found: Vec<ModelInfo>, start: &CopyTask) -> StepOutcome {
    d.vertex.on_start([Err(Code::AlreadyExists)]);
    d.vertex.on_find_copies([Ok(found)]);
    dispatch(&d.pipeline(), start).await
}

#[tokio::test(start_paused = true)]
async fn a_started_copy_schedules_its_first_poll_one_second_ahead() {
    let d = doubles();
    d.vertex.on_start([Ok(OP)]);
    let p = d.pipeline();
    let start = start_task(now_ms());
    let before = Utc::now();
    let out = dispatch(&p, &start).await;
    let after = Utc::now();
    acked(&out);
    let t = d.queues.only(Queue::Polls);
    assert_eq!(t.id, poll_task_id(OP, 1));
    let at = t.schedule.expect("the first poll is scheduled");
    let second = chrono::Duration::seconds(1);
    assert!(
        at >= before + second && at <= after + second,
        "{at} vs {before}"
    );
    let poll = task_of(&t);
    assert_eq!(poll.operation.as_deref(), Some(OP));
    assert_eq!((poll.seq, poll.attempt, poll.due_ms), (1, 1, Some(1000)));
    assert_eq!(
        poll.origin, OP,
        "the poll chain is named from the operation"
    );
    assert_eq!(poll.accepted_at, start.accepted_at);
    let started = poll.started_at.expect("started_at");
    assert!(started >= before.trunc_subsecs(3) && started <= after);
    assert_eq!(poll.attributes["waiter"], WAITER, "carried on");
    assert!(d.queues.tasks(Queue::Starts).is_empty());
    assert!(d.topics.attempts().is_empty());
    assert_eq!(
        d.vertex.calls(),
        [
            VertexCall::GetModel(SOURCE.into()),
            VertexCall::StartCopy {
                request_id: "r-1".into(),
                key: None
            }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn vertex_quota_answers_retry_at_once_without_a_task_or_a_second_call() {
    let d = doubles();
    let waited = start_failing(&d, Code::ResourceExhausted).await;
    assert_eq!(d.vertex.copy_calls(), 1, "not retried in-request");
    assert_eq!(waited, Duration::ZERO, "no in-request backoff");
    assert!(d.queues.calls().is_empty());
    assert!(d.topics.attempts().is_empty(), "no dead letter");
}

#[tokio::test(start_paused = true)]
async fn a_transient_copy_model_is_retried_in_request_and_then_succeeds() {
    let d = doubles();
    d.vertex
        .on_start([Err(Code::Unavailable), Err(Code::Unavailable), Ok(OP)]);
    acked(&started(&d).await);
    assert_eq!(d.vertex.copy_calls(), 3);
    assert_eq!(d.queues.only(Queue::Polls).id, poll_task_id(OP, 1));
}

#[tokio::test(start_paused = true)]
async fn a_vertex_outage_past_the_in_request_retries_answers_retry() {
    let d = doubles();
    let waited = start_failing(&d, Code::Unavailable).await;
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_secs(20),
        "{waited:?}"
    );
    assert!(d.vertex.copy_calls() > 2, "{}", d.vertex.copy_calls());
    assert!(d.queues.calls().is_empty());
    assert!(d.topics.attempts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_start_answers_at_its_45_s_budget_when_every_call_times_out() {
    // Inside the tasks' 60 s dispatch deadline, with room to answer.
    let budget = crate::pipeline::REQUEST_STAGE_BUDGET;
    assert_eq!(budget, Duration::from_secs(45));
    assert!(budget + Duration::from_secs(10) <= crate::topology::DISPATCH_DEADLINE);
    let d = doubles();
    // Each attempt runs into VERTEX_CALL_TIMEOUT (30 s), as the client answers it.
    d.vertex.answering_after(Duration::from_secs(30));
    d.vertex.on_start([Err(Code::DeadlineExceeded)]);
    let clock = tokio::time::Instant::now();
    let out = started(&d).await;
    assert!(
        matches!(
            out,
            StepOutcome::Retry(RetryReason::OutOfTime { stage: "start", .. })
        ),
        "{out:?}"
    );
    assert_eq!(
        clock.elapsed(),
        Duration::from_secs(45),
        "before the 60 s deadline"
    );
    assert!(d.queues.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn already_exists_with_our_source_is_announced_succeeded() {
    let d = doubles();
    let ours = copy_of(&format!("{SOURCE_BY_NUMBER}@3"));
    acked(&already_exists(&d, vec![ours], &start_task(now_ms())).await);
    let ev = d.topics.only(Topic::Completions);
    assert_eq!(ev.attributes["status"], "succeeded");
    assert_eq!(ev.attributes["ce-subject"], DESTINATION_BY_NUMBER);
    assert_eq!(ev.attributes["destination_project"], "dst-proj");
    let event = event_of(&ev);
    assert_eq!(
        event.destination_model.as_deref(),
        Some(DESTINATION_BY_NUMBER)
    );
    assert_eq!(event.destination_model_version.as_deref(), Some("1"));
    assert_eq!((event.attempts, event.error), (1, None));
    assert!(d.topics.confirmed(Topic::DeadLetter).is_empty());
    assert!(d.queues.calls().is_empty());
    assert!(
        d.vertex
            .calls()
            .contains(&VertexCall::FindCopies(DESTINATION.into()))
    );
}

#[tokio::test(start_paused = true)]
async fn already_exists_with_someone_elses_model_fails_with_a_dead_letter() {
    let d = doubles();
    // The same model, another version: the request pins @3.
    let theirs = copy_of(&format!("{SOURCE_BY_NUMBER}@2"));
    acked(&already_exists(&d, vec![theirs], &start_task(now_ms())).await);
    let (_, dl) = d.ended(Status::Failed, "ALREADY_EXISTS", "@2");
    assert_eq!(dl.attributes["failed_stage"], "request");
}

#[tokio::test(start_paused = true)]
async fn already_exists_while_the_destination_is_not_readable_asks_again_later() {
    let d = doubles();
    let start = start_task(now_ms());
    let before = Utc::now();
    acked(&already_exists(&d, vec![], &start).await);
    let t = d.queues.only(Queue::Starts);
    assert_eq!(
        t.id,
        start_task_id("m-1", "r-1", 1, 1),
        "the next of its chain"
    );
    let at = t.schedule.expect("held back");
    assert!(
        at >= before + chrono::Duration::seconds(10),
        "{at} vs {before}"
    );
    assert!(at <= Utc::now() + chrono::Duration::seconds(11));
    let next = task_of(&t);
    assert_eq!((next.attempt, next.seq), (1, 1));
    assert_eq!(next.accepted_at, start.accepted_at);
    assert!(d.topics.attempts().is_empty(), "nothing announced");
    assert!(d.queues.tasks(Queue::Polls).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_permanent_copy_model_error_fails_with_a_dead_letter_and_no_retry() {
    for code in [
        Code::NotFound,
        Code::PermissionDenied,
        Code::InvalidArgument,
    ] {
        // No source to read: CopyModel answers for it.
        let d = Doubles::default();
        d.vertex.on_start([Err(code)]);
        let out = started(&d).await;
        assert!(matches!(out, StepOutcome::Acked), "{code:?}: {out:?}");
        assert_eq!(d.vertex.copy_calls(), 1, "{code:?}");
        let ev = d.topics.only(Topic::Completions);
        assert_eq!(ev.attributes["status"], "failed");
        let event = event_of(&ev);
        assert_eq!(event.error.expect("error").code, code.name());
        assert_eq!(event.attempts, 1);
        assert_eq!(event.operation, None);
        assert_eq!(event.source_model.as_deref(), Some(SOURCE));
        let dl = d.topics.only(Topic::DeadLetter);
        assert_eq!(dl.attributes["error_code"], code.name());
        assert_eq!(dl.attributes["failed_stage"], "request");
        assert_eq!(dl.attributes["request_id"], "r-1");
        assert_eq!(dl.attributes["waiter"], WAITER);
        assert_eq!(
            dl.attributes["replay_count"], "2",
            "the replay guard sees it"
        );
        assert_eq!(dl.attributes["traceparent"], TRACEPARENT);
        assert_eq!(ev.attributes["traceparent"], TRACEPARENT, "onto the event");
        assert!(!ev.attributes.contains_key("replay_count"));
        assert_eq!(dl.data, request().as_bytes(), "the request as received");
        assert!(d.queues.calls().is_empty());
        assert_eq!(
            d.vertex.calls().len(),
            2,
            "{code:?}: GetModel, CopyModel once"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_restart_that_fails_for_good_is_an_operation_failure_of_its_attempt() {
    let d = doubles();
    d.vertex.on_start([Err(Code::PermissionDenied)]);
    let p = d.pipeline();
    let restart = CopyTask {
        attempt: 2,
        previous_operation: Some(OP.into()),
        origin: OP.into(),
        ..start_task(now_ms())
    };
    let out = dispatch(&p, &restart).await;
    acked(&out);
    let event = event_of(&d.topics.only(Topic::Completions));
    assert_eq!(event.attempts, 2);
    assert_eq!(
        event.operation.as_deref(),
        Some(OP),
        "the operation that failed before"
    );
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["failed_stage"], "operation");
}

#[tokio::test(start_paused = true)]
async fn a_restart_carries_its_attempt_into_its_first_poll() {
    let d = doubles();
    d.vertex.on_start([Ok(OP)]);
    let p = d.pipeline();
    let restart = CopyTask {
        attempt: 2,
        previous_operation: Some(
            "projects/234567890123/locations/europe-west4/operations/7".into(),
        ),
        origin: "projects/234567890123/locations/europe-west4/operations/7".into(),
        ..start_task(now_ms())
    };
    let out = dispatch(&p, &restart).await;
    acked(&out);
    let poll = task_of(&d.queues.only(Queue::Polls));
    assert_eq!((poll.attempt, poll.seq), (2, 1));
    assert_eq!(poll.operation.as_deref(), Some(OP), "the new operation");
    assert_eq!(poll.accepted_at, restart.accepted_at);
}

#[tokio::test(start_paused = true)]
async fn a_start_older_than_copy_max_duration_fails_without_calling_copy_model() {
    let d = doubles();
    let p = d.pipeline();
    let old = now_ms() - chrono::Duration::hours(25);
    let out = dispatch(&p, &start_task(old)).await;
    acked(&out);
    assert!(d.vertex.calls().is_empty());
    d.ended(Status::Failed, "DEADLINE_EXCEEDED", "COPY_MAX_DURATION");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_is_not_a_task_is_rejected_with_a_dead_letter_keeping_its_bytes() {
    let d = doubles();
    let p = d.pipeline();
    let junk = br#"{"attempt":"one"}"#;
    acked(&dispatched(&p, Queue::Starts, junk).await);
    let ev = d.topics.only(Topic::Completions);
    assert_eq!(ev.attributes["status"], "rejected");
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.data, junk);
    assert_eq!(dl.attributes["error_code"], "INVALID_REQUEST");
    assert_eq!(dl.attributes["failed_stage"], "request");
    assert!(d.vertex.calls().is_empty() && d.queues.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_first_poll_cloud_tasks_did_not_take_answers_retry() {
    let d = doubles();
    d.vertex.on_start([Ok(OP)]);
    d.queues.on_create([Create::Fails(Code::Unavailable)]);
    assert_eq!(queue_failure(&started(&d).await), Code::Unavailable);
    assert!(d.topics.attempts().is_empty());
}
