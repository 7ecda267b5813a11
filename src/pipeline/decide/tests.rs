//! The decision tables, row by row: each case is one answer of Vertex AI at one site.

use google_cloud_gax::error::rpc::Code;

use super::*;

fn op() -> OperationName {
    OperationName::parse("projects/1/locations/europe-west4/operations/42").unwrap()
}

fn err(code: Code) -> Failure {
    Failure::new(code, "x")
}

fn copied() -> CopiedModel {
    CopiedModel {
        model: "projects/2/locations/europe-west4/models/m".into(),
        version_id: "1".into(),
    }
}

#[test]
fn a_started_copy_is_polled_and_already_exists_is_resolved() {
    assert_eq!(after_start(Ok(op())), AfterStart::Poll(op()));
    assert_eq!(
        after_start(Err(err(Code::AlreadyExists))),
        AfterStart::Resolve
    );
}

#[test]
fn a_quota_refusal_of_a_start_slows_the_copy_start_queue() {
    let f = err(Code::ResourceExhausted);
    assert_eq!(after_start(Err(f.clone())), AfterStart::Quota(f));
}

#[test]
fn transient_starts_are_retried_and_permanent_ones_fail() {
    for code in [Code::Unavailable, Code::Internal, Code::DeadlineExceeded] {
        assert_eq!(after_start(Err(err(code))), AfterStart::Retry(err(code)));
    }
    for code in [
        Code::NotFound,
        Code::PermissionDenied,
        Code::InvalidArgument,
    ] {
        assert_eq!(after_start(Err(err(code))), AfterStart::Fail(err(code)));
    }
}

#[test]
fn a_read_of_the_destination_decides_ours_theirs_or_later() {
    assert_eq!(
        after_read(Ok(Existing::Ours(copied()))),
        AfterRead::Ours(copied())
    );
    assert_eq!(after_read(Ok(Existing::NotYet)), AfterRead::StartLater);
    let theirs = after_read(Ok(Existing::Conflict("someone else's".into())));
    assert_eq!(
        theirs,
        AfterRead::Fail(Failure::new(Code::AlreadyExists, "someone else's"))
    );
    assert_eq!(
        after_read(Err(err(Code::ResourceExhausted))),
        AfterRead::StartLater
    );
    assert_eq!(
        after_read(Err(err(Code::Unavailable))),
        AfterRead::Retry(err(Code::Unavailable))
    );
    assert_eq!(
        after_read(Err(err(Code::NotFound))),
        AfterRead::Fail(err(Code::NotFound))
    );
}

#[test]
fn a_poll_answers_every_vertex_error_with_a_later_poll_and_ends_on_the_operations_answer() {
    assert_eq!(
        after_poll(Ok(OperationState::Running), None),
        AfterPoll::Next
    );
    for code in [Code::ResourceExhausted, Code::Unavailable, Code::Internal] {
        assert_eq!(
            after_poll(Err(err(code)), None),
            AfterPoll::Backoff(err(code)),
            "{code:?}"
        );
    }
    let done = after_poll(Ok(OperationState::Succeeded(copied())), None);
    assert_eq!(done, AfterPoll::Succeeded(copied()));
    let failed = after_poll(Ok(OperationState::Failed(err(Code::Internal))), None);
    assert_eq!(failed, AfterPoll::OperationFailed(err(Code::Internal)));
    assert_eq!(
        after_poll(Err(err(Code::PermissionDenied)), None),
        AfterPoll::Fail(err(Code::PermissionDenied))
    );
}

#[test]
fn copy_max_duration_is_weighed_after_the_poll_so_a_late_success_stands() {
    let late = err(Code::DeadlineExceeded);
    let done = after_poll(Ok(OperationState::Succeeded(copied())), Some(late.clone()));
    assert_eq!(done, AfterPoll::Succeeded(copied()));
    let failed = after_poll(
        Ok(OperationState::Failed(err(Code::Internal))),
        Some(late.clone()),
    );
    assert_eq!(failed, AfterPoll::OperationFailed(err(Code::Internal)));
    for polled in [Ok(OperationState::Running), Err(err(Code::Unavailable))] {
        assert_eq!(
            after_poll(polled, Some(late.clone())),
            AfterPoll::Fail(late.clone())
        );
    }
}

#[test]
fn a_failed_operation_restarts_while_attempts_last() {
    let rows = [
        (Code::AlreadyExists, 1, AfterFailure::Resolve),
        (Code::AlreadyExists, 3, AfterFailure::Resolve),
        (Code::Internal, 1, AfterFailure::Restart),
        (Code::Internal, 2, AfterFailure::Restart),
        (Code::Internal, 3, AfterFailure::Fail),
        (Code::ResourceExhausted, 1, AfterFailure::Restart),
        (Code::InvalidArgument, 1, AfterFailure::Fail),
        (Code::FailedPrecondition, 2, AfterFailure::Fail),
    ];
    for (code, attempt, want) in rows {
        assert_eq!(
            after_failed_operation(&err(code), attempt, 3),
            want,
            "{code:?} attempt {attempt}"
        );
    }
}

#[test]
fn a_refused_task_fails_the_copy_and_a_deployment_fault_is_retried() {
    assert_eq!(after_queue(Ok(())), AfterQueue::Queued);
    assert_eq!(
        after_queue(Err(err(Code::AlreadyExists))),
        AfterQueue::Queued
    );
    for code in [
        Code::Unavailable,
        Code::ResourceExhausted,
        Code::DeadlineExceeded,
        // The queue is missing or the worker may not use it: a deployment fault, not the
        // copy's. Ask for a retry and let the dead-letter policy or the queue keep the work.
        Code::NotFound,
        Code::PermissionDenied,
        Code::FailedPrecondition,
    ] {
        assert_eq!(
            after_queue(Err(err(code))),
            AfterQueue::Retry(err(code)),
            "{code:?}"
        );
    }
    assert_eq!(
        after_queue(Err(err(Code::InvalidArgument))),
        AfterQueue::Fail(err(Code::InvalidArgument))
    );
}
