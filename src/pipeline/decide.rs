//! The stages' decisions as tables (docs/DESIGN.md §1, §4): what a stage does next after
//! each Vertex AI answer. Every row matches a [`FailureClass`] exhaustively, and the
//! functions are pure, so each table is a unit test that needs no emulator; the stages
//! (`request_stage`, `watch_stage`, `existing`, `start_stage`) only carry the rows out.

use crate::clients::vertex::OperationState;
use crate::domain::{CopiedModel, Existing, OperationName};
use crate::retry::{Failure, FailureClass};

/// How a copy start was allowed to call CopyModel, and so what a quota refusal means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Ask this instance's budget for a slot first; none soon → a pending watch.
    Budget,
    /// The caller holds a budget slot already (a pending watch that waited for one).
    Admitted,
    /// The copy-start queue paced it (`COPY_START_QUEUE`): a quota refusal is answered
    /// non-2xx and the queue tries again after its backoff, still at its rate.
    Queue,
}

/// Where CopyModel is called from; the same answer means different things at each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartSite {
    /// The first start of a request (request stage, start stage, or a parent-model copy).
    Request(Admission),
    /// A pending watch whose turn came: it holds a slot, and keeps reading the destination
    /// while an earlier copy still runs.
    PendingWatch,
    /// A watch restarting a copy whose operation (this one) failed transiently.
    Restart(OperationName),
}

/// What to do about a quota refusal (RESOURCE_EXHAUSTED), by site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnQuota {
    /// Hand the copy on as a pending watch and ack: waiting spends no delivery attempts.
    Defer,
    /// Hand the same pending watch on as a new message, after the hold.
    ContinueAsNew,
    /// Answer non-2xx: the sender (the copy-start queue, or Pub/Sub for a restart) tries
    /// again after its backoff.
    Retry,
}

/// The quota row of every start table.
pub(crate) fn on_quota(site: &StartSite) -> OnQuota {
    match site {
        StartSite::Request(Admission::Queue) | StartSite::Restart(_) => OnQuota::Retry,
        StartSite::Request(Admission::Budget | Admission::Admitted) => OnQuota::Defer,
        StartSite::PendingWatch => OnQuota::ContinueAsNew,
    }
}

/// What follows a CopyModel call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterStart {
    /// Started: publish the watch of this operation, then ack.
    Watch(OperationName),
    /// ALREADY_EXISTS: read the destination now to decide whose copy it is.
    Resolve,
    /// ALREADY_EXISTS for a pending watch: the earlier copy still runs; keep reading.
    KeepReading,
    /// RESOURCE_EXHAUSTED: see [`OnQuota`].
    Quota(OnQuota, Failure),
    /// Transient after the in-request retries: 503, redelivered.
    Retry(Failure),
    /// Permanent: the copy ends `failed` with a dead letter.
    Fail(Failure),
}

/// The start table.
pub(crate) fn after_start(started: Result<OperationName, Failure>, site: &StartSite) -> AfterStart {
    let f = match started {
        Ok(op) => return AfterStart::Watch(op),
        Err(f) => f,
    };
    match (f.class(), site) {
        (FailureClass::AlreadyExists, StartSite::PendingWatch) => AfterStart::KeepReading,
        (FailureClass::AlreadyExists, _) => AfterStart::Resolve,
        (FailureClass::QuotaExhausted, site) => AfterStart::Quota(on_quota(site), f),
        (FailureClass::Transient, _) => AfterStart::Retry(f),
        (FailureClass::Permanent, _) => AfterStart::Fail(f),
    }
}

/// What follows a read of the destination (after ALREADY_EXISTS, or for a pending watch).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterRead {
    /// It holds our copy: `succeeded`.
    Ours(CopiedModel),
    /// Not readable yet (or the read quota is spent): decide later, without spending
    /// the delivery's attempts.
    NotYet,
    /// Transient: 503, redelivered.
    Retry(Failure),
    /// Someone else's model (ALREADY_EXISTS with the reason) or a permanent failure.
    Fail(Failure),
}

/// The read table.
pub(crate) fn after_read(read: Result<Existing, Failure>) -> AfterRead {
    let f = match read {
        Ok(Existing::Ours(m)) => return AfterRead::Ours(m),
        Ok(Existing::NotYet) => return AfterRead::NotYet,
        Ok(Existing::Conflict(why)) => {
            return AfterRead::Fail(Failure::new(
                google_cloud_gax::error::rpc::Code::AlreadyExists,
                why,
            ));
        }
        Err(f) => f,
    };
    match f.class() {
        FailureClass::QuotaExhausted => AfterRead::NotYet,
        FailureClass::Transient => AfterRead::Retry(f),
        FailureClass::AlreadyExists | FailureClass::Permanent => AfterRead::Fail(f),
    }
}

/// What follows one poll of an operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterPoll {
    /// Still running (or the read quota is spent): poll again later.
    Running,
    /// Done: `succeeded`.
    Succeeded(CopiedModel),
    /// The operation ended with an error: see [`after_failed_operation`].
    OperationFailed(Failure),
    /// The read failed transiently: 503, redelivered.
    Retry(Failure),
    /// The read failed for good: the copy ends `failed`.
    Fail(Failure),
}

/// The poll table.
pub(crate) fn after_poll(polled: Result<OperationState, Failure>) -> AfterPoll {
    let f = match polled {
        Ok(OperationState::Running) => return AfterPoll::Running,
        Ok(OperationState::Succeeded(m)) => return AfterPoll::Succeeded(m),
        Ok(OperationState::Failed(f)) => return AfterPoll::OperationFailed(f),
        Err(f) => f,
    };
    match f.class() {
        FailureClass::QuotaExhausted => AfterPoll::Running,
        FailureClass::Transient => AfterPoll::Retry(f),
        FailureClass::AlreadyExists | FailureClass::Permanent => AfterPoll::Fail(f),
    }
}

/// What follows an operation that ended with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// ALREADY_EXISTS: read the destination to decide whose copy it is.
    Resolve,
    /// Transient with attempts left (`COPY_MAX_ATTEMPTS`): start the copy again.
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

/// What follows handing a copy start to the copy-start queue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterQueue {
    /// The queue has it (or had it already): ack.
    Queued,
    /// Transient, or the queue's own quota: 503, redelivered.
    Retry(Failure),
    /// The queue refuses for good (it is gone, the worker may not enqueue, the task is too
    /// large): the copy fails with a reason and a dead letter, replayable once the cause is
    /// fixed, instead of a delivery that loops.
    Fail(Failure),
}

/// The queue table.
pub(crate) fn after_queue(queued: Result<(), Failure>) -> AfterQueue {
    let f = match queued {
        Ok(()) => return AfterQueue::Queued,
        Err(f) => f,
    };
    match f.class() {
        FailureClass::Transient | FailureClass::QuotaExhausted => AfterQueue::Retry(f),
        FailureClass::AlreadyExists | FailureClass::Permanent => AfterQueue::Fail(f),
    }
}

#[cfg(test)]
mod tests;
