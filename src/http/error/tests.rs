//! The status tables of docs/DESIGN.md, read from the document: §4 (push and task routes) and
//! §7 (`POST /v1/models/copy`). Every row must be matched here to the code path that answers
//! it, and the code must answer the row's status: a row added, removed or changed in the
//! document without the code (or the other way round) fails.

use std::time::Duration;

use google_cloud_gax::error::rpc::Code;

use super::*;
use crate::pipeline::RetryReason;
use crate::retry::Failure;

const DESIGN: &str = include_str!("../../../docs/DESIGN.md");

/// The rows (cells, trimmed) of the first table after the line `heading`.
fn design_table(heading: &str) -> Vec<Vec<String>> {
    let rest = DESIGN
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("DESIGN.md has no line {heading:?}"))
        .1;
    rest.lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its |---| line
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The status codes a cell names: `204`, `503 + Retry-After`, `401 / 403`, `202 {...}`.
fn codes(cell: &str) -> Vec<u16> {
    cell.split(|c: char| !c.is_ascii_digit())
        .filter(|w| w.len() == 3)
        .filter_map(|w| w.parse().ok())
        .filter(|c| (200..600).contains(c))
        .collect()
}

fn retry(reason: RetryReason) -> Response {
    StepOutcome::Retry(reason).into_response()
}

fn failure(code: Code) -> RetryReason {
    Failure::new(code, "x").into()
}

/// The code paths that answer the rows of §4.
#[derive(Debug, Clone, Copy)]
enum Path {
    Acked,
    Quota,
    Transient,
    OutOfTime,
    NotHandedOn,
    Panic,
    BadToken,
    KeysUnreachable,
    BadEnvelope,
    TooLarge,
    SlowBody,
}

/// Each §4 row, by the start of its situation, and the path that answers it.
const ROWS: [(&str, Path); 19] = [
    ("request valid, copy-start task created", Path::Acked),
    ("copy started, first poll task created", Path::Acked),
    ("operation still running", Path::Acked),
    ("operation done, completion event published", Path::Acked),
    (
        "`ALREADY_EXISTS` and the destination is not readable yet",
        Path::Acked,
    ),
    ("operation failed transiently, attempts left", Path::Acked),
    ("invalid request", Path::Acked),
    ("CopyModel's documented limits refuse the copy", Path::Acked),
    ("permanent failure", Path::Acked),
    ("CopyModel answered RESOURCE_EXHAUSTED", Path::Quota),
    ("transient failure of a start", Path::Transient),
    ("a stage used its", Path::OutOfTime),
    (
        "a publish or a task the step hands on is not confirmed",
        Path::NotHandedOn,
    ),
    ("a handler panics", Path::Panic),
    ("no token or a bad one", Path::BadToken),
    ("the token cannot be checked", Path::KeysUnreachable),
    (
        "a body that is not a wrapped push envelope",
        Path::BadEnvelope,
    ),
    ("a push body over 14 MiB", Path::TooLarge),
    ("a body that pauses more than 30 s", Path::SlowBody),
];

/// What the code answers on `path`.
fn answer(path: Path) -> Vec<Response> {
    let one = |r: Response| vec![r];
    match path {
        Path::Acked => one(StepOutcome::Acked.into_response()),
        Path::Quota => one(retry(failure(Code::ResourceExhausted))),
        Path::Transient => one(retry(failure(Code::Unavailable))),
        Path::OutOfTime => one(retry(RetryReason::OutOfTime {
            stage: "poll",
            budget: Duration::from_secs(45),
        })),
        Path::NotHandedOn => one(retry(RetryReason::Queue(Failure::new(
            Code::NotFound,
            "queue",
        )))),
        Path::Panic => one(on_panic(Box::new("boom"))),
        Path::BadToken => vec![
            HttpError::Unauthenticated("x".into()).into_response(),
            HttpError::Forbidden("x".into()).into_response(),
        ],
        Path::KeysUnreachable => one(HttpError::AuthUnavailable("x".into()).into_response()),
        Path::BadEnvelope => one(HttpError::BadEnvelope(
            crate::http::envelope::EnvelopeError::NoMessageId,
        )
        .into_response()),
        Path::TooLarge => one(HttpError::TooLarge {
            what: "body",
            limit: 1,
        }
        .into_response()),
        Path::SlowBody => one(HttpError::BadBody("x".into()).into_response()),
    }
}

/// What answers a §4 row, found by the start of its situation.
fn answer_of_push_row(situation: &str) -> Vec<Response> {
    let (_, path) = ROWS
        .iter()
        .find(|(start, _)| situation.starts_with(start))
        .unwrap_or_else(|| panic!("DESIGN.md §4 row not matched to the code: {situation:?}"));
    answer(*path)
}

#[test]
fn every_push_and_task_answer_has_the_status_of_design_section_4() {
    let rows = design_table("## 4. Outcomes and status codes");
    // Every row of the code's list is in the document, once.
    assert_eq!(rows.len(), ROWS.len(), "{rows:?}");
    for row in &rows {
        let (situation, http) = (&row[0], &row[row.len() - 1]);
        let want = codes(http);
        let got: Vec<u16> = answer_of_push_row(situation)
            .iter()
            .map(|r| r.status().as_u16())
            .collect();
        assert_eq!(got, want, "§4 row {situation:?}");
    }
}

/// Every 503, whichever path answers it, says when to try again (DESIGN §4: Cloud Tasks
/// honours `Retry-After`).
#[test]
fn every_503_carries_retry_after_and_nothing_else_does() {
    let responses = [
        StepOutcome::Acked.into_response(),
        retry(failure(Code::Unavailable)),
        HttpError::AuthUnavailable("x".into()).into_response(),
        HttpError::Unavailable("x".into()).into_json_response(),
        HttpError::Unauthenticated("x".into()).into_response(),
        HttpError::Invalid(Rejection::new("f", "rule")).into_json_response(),
    ];
    for r in responses {
        let is_503 = r.status() == StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(
            r.headers().contains_key("retry-after"),
            is_503,
            "{}",
            r.status()
        );
    }
}

/// §7's answers of `POST /v1/models/copy` (the 202 is the handler's own, tested in
/// `tests/it/enqueue.rs`): each refusal row is answered by the variant that names it.
#[test]
fn every_direct_caller_refusal_has_the_status_of_design_section_7() {
    let rows = design_table("- **Answers** (refusals are JSON):");
    let mut seen = vec![];
    for row in &rows {
        let (answer, meaning) = (&row[0], &row[1]);
        let want = codes(answer);
        seen.extend(want.iter().copied());
        let got: Vec<u16> = match want.as_slice() {
            [202] => continue,
            [400] => vec![HttpError::Invalid(Rejection::new("f", "rule"))],
            [401, 403] => vec![
                HttpError::Unauthenticated("x".into()),
                HttpError::Forbidden("x".into()),
            ],
            [413] => vec![HttpError::TooLarge {
                what: "body",
                limit: 65_536,
            }],
            [503] => vec![
                HttpError::Unavailable("x".into()),
                HttpError::AuthUnavailable("x".into()),
            ],
            other => panic!("DESIGN.md §7 answer {other:?} not matched to the code: {meaning}"),
        }
        .into_iter()
        .map(|e| e.into_json_response().status().as_u16())
        .collect();
        assert!(got.iter().all(|g| want.contains(g)), "§7 {answer}: {got:?}");
    }
    seen.sort_unstable();
    assert_eq!(seen, [202, 400, 401, 403, 413, 503]);
}
