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

const SITES: [fn() -> StartSite; 5] = [
    || StartSite::Request(Admission::Budget),
    || StartSite::Request(Admission::Admitted),
    || StartSite::Request(Admission::Queue),
    || StartSite::PendingWatch,
    || StartSite::Restart(op()),
];

#[test]
fn a_started_copy_is_watched_from_every_site() {
    for site in SITES.map(|s| s()) {
        assert_eq!(
            after_start(Ok(op()), &site),
            AfterStart::Watch(op()),
            "{site:?}"
        );
    }
}

#[test]
fn already_exists_is_resolved_except_by_a_pending_watch_which_keeps_reading() {
    for site in SITES.map(|s| s()) {
        let want = match site {
            StartSite::PendingWatch => AfterStart::KeepReading,
            _ => AfterStart::Resolve,
        };
        assert_eq!(
            after_start(Err(err(Code::AlreadyExists)), &site),
            want,
            "{site:?}"
        );
    }
}

#[test]
fn a_quota_refusal_defers_a_request_and_is_retried_by_the_queue_and_restarts() {
    let rows = [
        (StartSite::Request(Admission::Budget), OnQuota::Defer),
        (StartSite::Request(Admission::Admitted), OnQuota::Defer),
        (StartSite::Request(Admission::Queue), OnQuota::Retry),
        (StartSite::PendingWatch, OnQuota::ContinueAsNew),
        (StartSite::Restart(op()), OnQuota::Retry),
    ];
    for (site, want) in rows {
        let f = err(Code::ResourceExhausted);
        assert_eq!(
            after_start(Err(f.clone()), &site),
            AfterStart::Quota(want, f),
            "{site:?}"
        );
    }
}

#[test]
fn transient_starts_are_retried_and_permanent_ones_fail_everywhere() {
    for site in SITES.map(|s| s()) {
        for code in [Code::Unavailable, Code::Internal, Code::DeadlineExceeded] {
            let got = after_start(Err(err(code)), &site);
            assert_eq!(got, AfterStart::Retry(err(code)), "{site:?} {code:?}");
        }
        for code in [
            Code::NotFound,
            Code::PermissionDenied,
            Code::InvalidArgument,
        ] {
            let got = after_start(Err(err(code)), &site);
            assert_eq!(got, AfterStart::Fail(err(code)), "{site:?} {code:?}");
        }
    }
}

#[test]
fn a_read_of_the_destination_decides_ours_theirs_or_later() {
    assert_eq!(
        after_read(Ok(Existing::Ours(copied()))),
        AfterRead::Ours(copied())
    );
    assert_eq!(after_read(Ok(Existing::NotYet)), AfterRead::NotYet);
    let theirs = after_read(Ok(Existing::Conflict("someone else's".into())));
    assert_eq!(
        theirs,
        AfterRead::Fail(Failure::new(Code::AlreadyExists, "someone else's"))
    );
    assert_eq!(
        after_read(Err(err(Code::ResourceExhausted))),
        AfterRead::NotYet
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
fn a_poll_keeps_waiting_through_the_read_quota_and_ends_on_the_operations_answer() {
    assert_eq!(after_poll(Ok(OperationState::Running)), AfterPoll::Running);
    assert_eq!(
        after_poll(Err(err(Code::ResourceExhausted))),
        AfterPoll::Running
    );
    let done = after_poll(Ok(OperationState::Succeeded(copied())));
    assert_eq!(done, AfterPoll::Succeeded(copied()));
    let failed = after_poll(Ok(OperationState::Failed(err(Code::Internal))));
    assert_eq!(failed, AfterPoll::OperationFailed(err(Code::Internal)));
    assert_eq!(
        after_poll(Err(err(Code::Unavailable))),
        AfterPoll::Retry(err(Code::Unavailable))
    );
    assert_eq!(
        after_poll(Err(err(Code::PermissionDenied))),
        AfterPoll::Fail(err(Code::PermissionDenied))
    );
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
fn the_queue_refusing_for_good_fails_the_copy_and_anything_else_is_retried() {
    assert_eq!(after_queue(Ok(())), AfterQueue::Queued);
    for code in [
        Code::Unavailable,
        Code::ResourceExhausted,
        Code::DeadlineExceeded,
    ] {
        assert_eq!(
            after_queue(Err(err(code))),
            AfterQueue::Retry(err(code)),
            "{code:?}"
        );
    }
    for code in [
        Code::NotFound,
        Code::PermissionDenied,
        Code::InvalidArgument,
    ] {
        assert_eq!(
            after_queue(Err(err(code))),
            AfterQueue::Fail(err(code)),
            "{code:?}"
        );
    }
}
