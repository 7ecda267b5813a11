//! The stages' decisions as tables (docs/DESIGN.md §1, §4): what a stage does next after
//! each answer of Vertex AI or Cloud Tasks. Every row matches a [`FailureClass`]
//! exhaustively, and the functions are pure, so each table is a unit test that needs no
//! emulator; the stages (`start`, `start_stage`, `poll_stage`, `existing`) only carry the rows
//! out.

use google_cloud_gax::error::rpc::Code;

use crate::clients::vertex::OperationState;
use crate::domain::{CopiedModel, Existing, OperationName};
use crate::retry::{Failure, FailureClass};

/// What follows a CopyModel call (the start stage, paced by the copy-start queue).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterStart {
    /// Started: create the first poll task of this operation, then answer 2xx.
    Poll(OperationName),
    /// ALREADY_EXISTS: read the destination now to decide whose copy it is.
    Resolve,
    /// RESOURCE_EXHAUSTED: ask for a retry (with `Retry-After`), so that the copy-start queue backs
    /// off; its rate is Vertex AI's copy quota, so slowing the whole queue is what is wanted.
    Quota(Failure),
    /// Transient after the in-request retries: a retry is asked for, after the queue's backoff.
    Retry(Failure),
    /// Permanent: the copy ends `failed` with a dead letter.
    Fail(Failure),
}

/// The start table.
pub(crate) fn after_start(started: Result<OperationName, Failure>) -> AfterStart {
    let f = match started {
        Ok(op) => return AfterStart::Poll(op),
        Err(f) => f,
    };
    match f.class() {
        FailureClass::AlreadyExists => AfterStart::Resolve,
        FailureClass::QuotaExhausted => AfterStart::Quota(f),
        FailureClass::Transient => AfterStart::Retry(f),
        FailureClass::Permanent => AfterStart::Fail(f),
    }
}

/// What follows a read of the destination (after ALREADY_EXISTS).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterRead {
    /// It holds our copy: `succeeded`.
    Ours(CopiedModel),
    /// Not readable yet (the first copy probably still runs), or the read quota is spent:
    /// a new start task, scheduled later, asks CopyModel and reads again. It goes through the
    /// copy-start queue, so it is paced like every start and spends no delivery attempts.
    StartLater,
    /// Transient: a retry is asked for (redelivered).
    Retry(Failure),
    /// Someone else's model (ALREADY_EXISTS with the reason) or a permanent failure.
    Fail(Failure),
}

/// The read table.
pub(crate) fn after_read(read: Result<Existing, Failure>) -> AfterRead {
    let f = match read {
        Ok(Existing::Ours(m)) => return AfterRead::Ours(m),
        Ok(Existing::NotYet) => return AfterRead::StartLater,
        Ok(Existing::Conflict(why)) => {
            return AfterRead::Fail(Failure::new(Code::AlreadyExists, why));
        }
        Err(f) => f,
    };
    match f.class() {
        FailureClass::QuotaExhausted => AfterRead::StartLater,
        FailureClass::Transient => AfterRead::Retry(f),
        FailureClass::AlreadyExists | FailureClass::Permanent => AfterRead::Fail(f),
    }
}

/// What follows one poll of an operation. A poll is acked for everything it handled,
/// Vertex AI's errors included: Cloud Tasks slows the whole queue down after every answer
/// that asks for a retry (429 and 503: HttpRequest,
/// cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks#HttpRequest).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterPoll {
    /// Still running: the next poll, scheduled by the copy's age.
    Next,
    /// The read failed transiently or hit Vertex AI's read quota: the next poll, later.
    Backoff(Failure),
    /// Done: `succeeded`.
    Succeeded(CopiedModel),
    /// The operation ended with an error: see [`after_failed_operation`].
    OperationFailed(Failure),
    /// The read failed for good, or the copy is still not done past `COPY_MAX_DURATION`:
    /// the copy ends `failed`.
    Fail(Failure),
}

/// The poll table. `too_old` is the DEADLINE_EXCEEDED failure of a copy past
/// `COPY_MAX_DURATION`; it is weighed after the poll, so a copy that succeeded but was polled
/// late is announced `succeeded`, not `failed`.
pub(crate) fn after_poll(
    polled: Result<OperationState, Failure>,
    too_old: Option<Failure>,
) -> AfterPoll {
    let row = match polled {
        Ok(OperationState::Running) => AfterPoll::Next,
        Ok(OperationState::Succeeded(m)) => return AfterPoll::Succeeded(m),
        Ok(OperationState::Failed(f)) => return AfterPoll::OperationFailed(f),
        Err(f) => match f.class() {
            FailureClass::QuotaExhausted | FailureClass::Transient => AfterPoll::Backoff(f),
            FailureClass::AlreadyExists | FailureClass::Permanent => return AfterPoll::Fail(f),
        },
    };
    match too_old {
        Some(f) => AfterPoll::Fail(f),
        None => row,
    }
}

/// What follows an operation that ended with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// ALREADY_EXISTS: read the destination to decide whose copy it is.
    Resolve,
    /// Transient with attempts left (`COPY_MAX_ATTEMPTS`): start the copy again, through the
    /// copy-start queue.
    Restart,
    /// Permanent, or the last attempt: the copy ends `failed`.
    Fail,
}

/// The failed-operation table.
pub(crate) fn after_failed_operation(f: &Failure, attempt: u32, max_attempts: u32) -> AfterFailure {
    match f.class() {
        FailureClass::AlreadyExists => AfterFailure::Resolve,
        FailureClass::Permanent => AfterFailure::Fail,
        FailureClass::Transient | FailureClass::QuotaExhausted if attempt >= max_attempts => {
            AfterFailure::Fail
        }
        FailureClass::Transient | FailureClass::QuotaExhausted => AfterFailure::Restart,
    }
}

/// What follows creating a task (a copy start, or the next poll).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterQueue {
    /// The queue has it (or had it already): answer 2xx.
    Queued,
    /// Transient, the queue's own quota, or a deployment fault (the queue does not exist,
    /// the worker may not create tasks): a retry is asked for, and the sender tries again. A deployment fault
    /// is not the copy's: once it is fixed, the copy goes on; until then Pub/Sub's dead-letter
    /// policy (requests) or the queue's retries (tasks) keep the work.
    Retry(Failure),
    /// The task itself is refused (INVALID_ARGUMENT and the like: it will never be
    /// accepted): the copy fails with a reason and a dead letter, replayable once the cause
    /// is fixed, instead of a delivery that loops.
    Fail(Failure),
}

/// The queue table.
pub(crate) fn after_queue(queued: Result<(), Failure>) -> AfterQueue {
    let f = match queued {
        Ok(()) => return AfterQueue::Queued,
        Err(f) => f,
    };
    let deployment_fault = matches!(
        f.code,
        Code::NotFound | Code::PermissionDenied | Code::Unauthenticated | Code::FailedPrecondition
    );
    match f.class() {
        FailureClass::Transient | FailureClass::QuotaExhausted => AfterQueue::Retry(f),
        FailureClass::Permanent if deployment_fault => AfterQueue::Retry(f),
        FailureClass::AlreadyExists => AfterQueue::Queued,
        FailureClass::Permanent => AfterQueue::Fail(f),
    }
}

#[cfg(test)]
mod tests;
