//! What the stage tests share: one request, its names, the models Vertex AI reads for it, the
//! deliveries and task bodies that carry it, and how a stage's answer is read.

use chrono::{DateTime, SubsecRound as _, Utc};
use google_cloud_gax::error::rpc::Code;

use super::Doubles;
use crate::clients::pubsub::{OutMessage, Topic};
use crate::clients::tasks::{NewTask, Queue};
use crate::contract::attr;
use crate::contract::event::{CompletionEvent, Status};
use crate::contract::push::PushMessage;
use crate::contract::task::{CopyTask, raw_request};
use crate::domain::ModelInfo;
use crate::pipeline::{Dispatch, Pipeline, RetryReason, StepOutcome};

/// The source, by project id (the stages learn its number from GetModel), pinned to version 3.
pub(crate) const SOURCE: &str =
    "projects/src-proj/locations/us-central1/models/7704127342733426688@3";
/// The source as Vertex AI names it: the project by number, no version.
pub(crate) const SOURCE_BY_NUMBER: &str =
    "projects/123456789012/locations/us-central1/models/7704127342733426688";
/// The destination model in the request's spelling.
pub(crate) const DESTINATION: &str = "projects/dst-proj/locations/europe-west4/models/target-model";
/// The destination model as Vertex AI names it.
pub(crate) const DESTINATION_BY_NUMBER: &str =
    "projects/234567890123/locations/europe-west4/models/target-model";
/// The operation CopyModel answers with.
pub(crate) const OP: &str = "projects/234567890123/locations/europe-west4/operations/42";
/// A well-formed W3C trace context.
pub(crate) const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// A `publish --wait` tag.
pub(crate) const WAITER: &str = "3f2a9c1e0b7d4a58";

/// The request every stage test copies: `r-1`, into `target-model` in `dst-proj`.
pub(crate) fn request() -> String {
    request_with("")
}

/// [`request`] with more fields (`,"callback_url":"…"`) before its closing brace.
pub(crate) fn request_with(extra: &str) -> String {
    format!(
        r#"{{"request_id":"r-1","source_model":"{SOURCE}","destination":{{"project":"dst-proj","location":"europe-west4","model_id":"target-model"}}{extra}}}"#
    )
}

/// `task` carrying [`request_with`]`(extra)` instead of its request.
pub(crate) fn asking(extra: &str, task: CopyTask) -> CopyTask {
    CopyTask {
        request: raw_request(request_with(extra).as_bytes()).expect("JSON"),
        ..task
    }
}

/// The source model as GetModel reads it: a prebuilt image, Google-managed encryption.
pub(crate) fn source_model() -> ModelInfo {
    ModelInfo {
        name: SOURCE_BY_NUMBER.into(),
        version_id: "3".into(),
        original_model: None,
        container_image_uri: Some(
            "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest".into(),
        ),
        kms_key_name: None,
    }
}

/// The destination model once it holds a copy of `original` (`…/models/ID@V`).
pub(crate) fn copy_of(original: &str) -> ModelInfo {
    ModelInfo {
        name: DESTINATION_BY_NUMBER.into(),
        version_id: "1".into(),
        original_model: Some(original.into()),
        container_image_uri: None,
        kms_key_name: None,
    }
}

/// Doubles whose Vertex AI holds the source model.
pub(crate) fn doubles() -> Doubles {
    let d = Doubles::default();
    d.vertex.with_model(SOURCE, source_model());
    d
}

impl Doubles {
    /// The end the stage announced: the one completion event, `status` with an error of `code`
    /// whose message holds `says`, and the one dead letter, of `code`. Fails the test otherwise.
    pub fn ended(&self, status: Status, code: &str, says: &str) -> (CompletionEvent, OutMessage) {
        let event = event_of(&self.topics.only(Topic::Completions));
        assert_eq!(event.status, status);
        let error = event.error.as_ref().expect("error");
        assert_eq!(error.code, code);
        assert!(error.message.contains(says), "{}", error.message);
        let dl = self.topics.only(Topic::DeadLetter);
        assert_eq!(dl.attributes["error_code"], code);
        (event, dl)
    }
}

/// A push delivery of `data` with the caller's `attributes`.
pub(crate) fn push(message_id: &str, data: &str, attributes: &[(&str, &str)]) -> PushMessage {
    PushMessage {
        message_id: message_id.into(),
        data: data.as_bytes().to_vec(),
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        publish_time: None,
        ordering_key: None,
        subscription: None,
        delivery_attempt: None,
    }
}

/// Now, to the millisecond a task body keeps.
pub(crate) fn now_ms() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// A copy-start task of [`request`]: attempt 1, first of its chain from message `m-1`.
pub(crate) fn start_task(accepted_at: DateTime<Utc>) -> CopyTask {
    CopyTask {
        request: raw_request(request().as_bytes()).expect("JSON"),
        attempt: 1,
        accepted_at,
        operation: None,
        started_at: None,
        due_ms: None,
        previous_operation: None,
        origin: "m-1".into(),
        seq: 0,
        attributes: [
            (attr::WAITER, WAITER),
            (attr::TRACEPARENT, TRACEPARENT),
            (attr::REPLAY_COUNT, "2"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
    }
}

/// Poll `seq` of [`OP`], planned for the copy's age `due_ms`, the copy started at `started_at`.
pub(crate) fn poll_task(seq: u32, started_at: DateTime<Utc>, due_ms: u64) -> CopyTask {
    CopyTask {
        operation: Some(OP.into()),
        started_at: Some(started_at),
        due_ms: Some(due_ms),
        origin: OP.into(),
        seq,
        ..start_task(started_at)
    }
}

/// The body Cloud Tasks would dispatch.
pub(crate) fn body(task: &CopyTask) -> Vec<u8> {
    task.to_body().0
}

/// A task's body, read back.
pub(crate) fn task_of(t: &NewTask) -> CopyTask {
    CopyTask::parse(&t.body).expect("a copy task")
}

/// A completion event's data, read back.
pub(crate) fn event_of(msg: &OutMessage) -> CompletionEvent {
    serde_json::from_slice(&msg.data).expect("a completion event")
}

/// `body` as Cloud Tasks dispatches it from `queue` to its stage (the start or the poll stage).
pub(crate) async fn dispatched(p: &Pipeline, queue: Queue, body: &[u8]) -> StepOutcome {
    let task_name = match queue {
        Queue::Starts => "projects/p/locations/l/queues/copy-starts/tasks/start-1",
        Queue::Polls => "projects/p/locations/l/queues/copy-polls/tasks/poll-3",
    };
    let dispatch = Dispatch { task_name, body };
    match queue {
        Queue::Starts => p.start_stage(dispatch).await,
        Queue::Polls => p.poll_stage(dispatch).await,
    }
}

/// Fails the test unless the stage acked.
pub(crate) fn acked(out: &StepOutcome) {
    assert!(matches!(out, StepOutcome::Acked), "{out:?}");
}

/// Why the stage answered retry; fails the test if it did not.
fn retry(out: &StepOutcome) -> &RetryReason {
    match out {
        StepOutcome::Retry(why) => why,
        other => panic!("not a retry: {other:?}"),
    }
}

/// Fails the test unless the stage answered retry for a message Pub/Sub did not confirm.
pub(crate) fn publish_retry(out: &StepOutcome) {
    assert!(matches!(retry(out), RetryReason::Publish(_)), "{out:?}");
}

/// The code of the Vertex AI failure the stage answered retry for; fails the test otherwise.
pub(crate) fn vertex_failure(out: &StepOutcome) -> Code {
    match retry(out) {
        RetryReason::Vertex(f) => f.code,
        other => panic!("not a Vertex retry: {other:?}"),
    }
}

/// The code of the Cloud Tasks failure the stage answered retry for; fails the test otherwise.
pub(crate) fn queue_failure(out: &StepOutcome) -> Code {
    match retry(out) {
        RetryReason::Queue(f) => f.code,
        other => panic!("not a Cloud Tasks retry: {other:?}"),
    }
}
