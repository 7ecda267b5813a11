//! In-memory doubles of the stages' three seams (`Vertex`, `Topics`, `TaskQueues`), for the
//! stage tests beside each stage (issue 30, point 4). A double records what a stage hands on
//! and answers from a script; it does not reimplement the pipeline, Pub/Sub or Cloud Tasks.
//!
//! Each answers only what its real client can answer: a Vertex failure is a [`Failure`] as
//! `retry::classify` makes it, a model read that finds nothing is `Ok(None)` (the client's
//! NOT_FOUND), a publish failure is the client's `PublishError::Rpc` around a status, and
//! CreateTask's ALREADY_EXISTS is `Ok` (`CloudTasksQueues::create`). The wire contract
//! (envelopes, the emulator, the Cloud Tasks fake), crashes and shutdown stay with `tests/it`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound as _, Utc};
use google_cloud_gax::error::rpc::{Code, Status};

use super::{Pipeline, Settings};
use crate::clients::pubsub::{OutMessage, PublishError, Topic, Topics};
use crate::clients::tasks::{NewTask, Queue, TaskQueues};
use crate::clients::vertex::{OperationState, Vertex};
use crate::clients::webhook::Callbacks;
use crate::contract::attr;
use crate::contract::event::CompletionEvent;
use crate::contract::push::PushMessage;
use crate::contract::task::{CopyTask, raw_request};
use crate::domain::{CopyRequest, Destination, KmsKeyName, ModelInfo, OperationName};
use crate::retry::Failure;

/// Answers in order; the last one repeats, so "always UNAVAILABLE" is a script of one.
#[derive(Debug)]
struct Script<T>(VecDeque<T>);

impl<T: Clone> Script<T> {
    fn next(&mut self, what: &str) -> T {
        match self.0.len() {
            0 => panic!("the stage called {what}, which this test did not script"),
            1 => self.0[0].clone(),
            _ => self.0.pop_front().expect("not empty"),
        }
    }
}

impl<T> Default for Script<T> {
    fn default() -> Self {
        Self(VecDeque::new())
    }
}

/// A Vertex AI call as the stage made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VertexCall {
    /// CopyModel: the request id and the key the copy is encrypted with.
    StartCopy {
        request_id: String,
        key: Option<String>,
    },
    GetOperation(String),
    GetModel(String),
    /// The destination model read (or listed) for an earlier copy.
    FindCopies(String),
}

/// [`Vertex`] from a script.
#[derive(Default)]
pub(crate) struct FakeVertex {
    starts: Mutex<Script<Result<OperationName, Failure>>>,
    operations: Mutex<Script<Result<OperationState, Failure>>>,
    copies: Mutex<Script<Result<Vec<ModelInfo>, Failure>>>,
    /// Models by name; a name not here reads as `Ok(None)`, as the client's NOT_FOUND does.
    models: Mutex<HashMap<String, Result<ModelInfo, Failure>>>,
    /// How long every call takes before it answers (a slow endpoint, in paused time).
    latency: Mutex<Duration>,
    calls: Mutex<Vec<VertexCall>>,
}

impl FakeVertex {
    /// CopyModel's answers: an operation name, or a google.rpc failure.
    pub fn on_start(&self, answers: impl IntoIterator<Item = Result<&'static str, Code>>) {
        let script = answers.into_iter().map(|a| match a {
            Ok(op) => Ok(OperationName::parse(op).expect("an operation name")),
            Err(code) => Err(failure(code, "CopyModel")),
        });
        self.starts.lock().unwrap().0.extend(script);
    }

    /// GetOperation's answers.
    pub fn on_operation(&self, answers: impl IntoIterator<Item = Result<OperationState, Code>>) {
        let script = answers
            .into_iter()
            .map(|a| a.map_err(|code| failure(code, "GetOperation")));
        self.operations.lock().unwrap().0.extend(script);
    }

    /// What the destination holds (the model by name, or the parent's versions).
    pub fn on_find_copies(&self, answers: impl IntoIterator<Item = Result<Vec<ModelInfo>, Code>>) {
        let script = answers
            .into_iter()
            .map(|a| a.map_err(|code| failure(code, "find copies")));
        self.copies.lock().unwrap().0.extend(script);
    }

    /// A model that GetModel finds under `name`.
    pub fn with_model(&self, name: &str, model: ModelInfo) {
        self.models.lock().unwrap().insert(name.into(), Ok(model));
    }

    /// Every call takes `d` before it answers.
    pub fn answering_after(&self, d: Duration) {
        *self.latency.lock().unwrap() = d;
    }

    pub fn calls(&self) -> Vec<VertexCall> {
        self.calls.lock().unwrap().clone()
    }

    /// How many CopyModel calls the stage made.
    pub fn copy_calls(&self) -> usize {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| matches!(c, VertexCall::StartCopy { .. }))
            .count()
    }

    /// How many GetOperation calls the stage made.
    pub fn operation_calls(&self) -> usize {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| matches!(c, VertexCall::GetOperation(_)))
            .count()
    }

    async fn called(&self, call: VertexCall) {
        self.calls.lock().unwrap().push(call);
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
}

#[async_trait]
impl Vertex for FakeVertex {
    async fn start_copy(
        &self,
        req: &CopyRequest,
        key: Option<&KmsKeyName>,
    ) -> Result<OperationName, Failure> {
        self.called(VertexCall::StartCopy {
            request_id: req.request_id.as_str().into(),
            key: key.map(|k| k.as_str().to_owned()),
        })
        .await;
        self.starts.lock().unwrap().next("CopyModel")
    }

    async fn get_operation(&self, op: &OperationName) -> Result<OperationState, Failure> {
        self.called(VertexCall::GetOperation(op.to_string())).await;
        self.operations.lock().unwrap().next("GetOperation")
    }

    async fn get_model(&self, name: &str, _location: &str) -> Result<Option<ModelInfo>, Failure> {
        self.called(VertexCall::GetModel(name.into())).await;
        self.models.lock().unwrap().get(name).cloned().transpose()
    }

    async fn find_copies(&self, dest: &Destination) -> Result<Vec<ModelInfo>, Failure> {
        self.called(VertexCall::FindCopies(dest.model_name())).await;
        self.copies.lock().unwrap().next("find_copies")
    }
}

/// A failure as `retry::classify` makes it from a status.
fn failure(code: Code, call: &str) -> Failure {
    Failure::new(code, format!("{call}: scripted {}", code.name()))
}

/// How Pub/Sub answers a publish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Publish {
    /// Confirmed: a message id.
    Ok,
    /// Not confirmed; a later try may pass (UNAVAILABLE, a topic not made yet).
    Fails(Code),
}

impl Publish {
    /// Refused for good: Pub/Sub's INVALID_ARGUMENT (a message over its limits).
    pub const REFUSED: Publish = Publish::Fails(Code::InvalidArgument);
    pub const UNAVAILABLE: Publish = Publish::Fails(Code::Unavailable);
}

/// One publish the stage attempted.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub topic: Topic,
    pub msg: OutMessage,
    /// Whether Pub/Sub confirmed it (returned a message id).
    pub confirmed: bool,
}

/// [`Topics`] from a script per topic; a topic without one confirms every publish.
#[derive(Default)]
pub(crate) struct FakeTopics {
    scripts: Mutex<HashMap<Topic, Script<Publish>>>,
    log: Mutex<Vec<Published>>,
}

impl FakeTopics {
    pub fn on(&self, topic: Topic, answers: impl IntoIterator<Item = Publish>) {
        let mut scripts = self.scripts.lock().unwrap();
        scripts.entry(topic).or_default().0.extend(answers);
    }

    /// Every publish attempted, confirmed or not, in order.
    pub fn attempts(&self) -> Vec<Published> {
        self.log.lock().unwrap().clone()
    }

    /// The confirmed messages on `topic`, in order.
    pub fn confirmed(&self, topic: Topic) -> Vec<OutMessage> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|p| p.topic == topic && p.confirmed)
            .map(|p| p.msg.clone())
            .collect()
    }

    /// The one confirmed message on `topic`; fails the test unless there is exactly one.
    pub fn only(&self, topic: Topic) -> OutMessage {
        let mut all = self.confirmed(topic);
        assert_eq!(all.len(), 1, "{topic:?}: {all:#?}");
        all.remove(0)
    }
}

#[async_trait]
impl Topics for FakeTopics {
    async fn publish(&self, topic: Topic, msg: OutMessage) -> Result<String, PublishError> {
        let answer = {
            let mut scripts = self.scripts.lock().unwrap();
            scripts
                .get_mut(&topic)
                .map_or(Publish::Ok, |s| s.next("publish"))
        };
        let mut log = self.log.lock().unwrap();
        log.push(Published {
            topic,
            msg,
            confirmed: answer == Publish::Ok,
        });
        match answer {
            Publish::Ok => Ok(log.len().to_string()),
            Publish::Fails(code) => {
                let e = google_cloud_pubsub::Error::service(
                    Status::default()
                        .set_code(code)
                        .set_message("scripted refusal"),
                );
                Err(PublishError {
                    topic: format!("projects/worker-proj/topics/{topic:?}"),
                    source: google_cloud_pubsub::error::PublishError::Rpc(Arc::new(e)),
                })
            }
        }
    }

    async fn flush(&self) {}
}

/// How Cloud Tasks answers a CreateTask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Create {
    /// Created, or (a name seen before) ALREADY_EXISTS, which the client answers as `Ok`.
    Ok,
    /// Refused with this code (UNAVAILABLE, NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT).
    Fails(Code),
}

/// [`TaskQueues`] from a script; without one every task is created.
#[derive(Default)]
pub(crate) struct FakeQueues {
    script: Mutex<Script<Create>>,
    /// Every CreateTask the stage made, in order, whatever the answer.
    calls: Mutex<Vec<NewTask>>,
    /// The tasks the queues hold: one per name, as in Cloud Tasks.
    created: Mutex<Vec<NewTask>>,
}

impl FakeQueues {
    pub fn on_create(&self, answers: impl IntoIterator<Item = Create>) {
        for a in answers {
            assert_ne!(
                a,
                Create::Fails(Code::AlreadyExists),
                "the client answers ALREADY_EXISTS as Ok"
            );
            self.script.lock().unwrap().0.push_back(a);
        }
    }

    /// Every CreateTask call, in order.
    pub fn calls(&self) -> Vec<NewTask> {
        self.calls.lock().unwrap().clone()
    }

    /// The tasks `queue` holds, in the order they were created.
    pub fn tasks(&self, queue: Queue) -> Vec<NewTask> {
        let created = self.created.lock().unwrap();
        created
            .iter()
            .filter(|t| t.queue == queue)
            .cloned()
            .collect()
    }

    /// The one task `queue` holds; fails the test unless there is exactly one.
    pub fn only(&self, queue: Queue) -> NewTask {
        let mut all = self.tasks(queue);
        assert_eq!(all.len(), 1, "{queue:?}: {all:#?}");
        all.remove(0)
    }
}

#[async_trait]
impl TaskQueues for FakeQueues {
    async fn create(&self, task: NewTask) -> Result<(), Failure> {
        self.calls.lock().unwrap().push(task.clone());
        let answer = {
            let mut script = self.script.lock().unwrap();
            if script.0.is_empty() {
                Create::Ok
            } else {
                script.next("CreateTask")
            }
        };
        match answer {
            Create::Fails(code) => Err(failure(code, "CreateTask")),
            Create::Ok => {
                let mut created = self.created.lock().unwrap();
                if !created.iter().any(|t| t.id == task.id) {
                    created.push(task);
                }
                Ok(())
            }
        }
    }
}

/// The three doubles, and a pipeline over them.
#[derive(Clone, Default)]
pub(crate) struct Doubles {
    pub vertex: Arc<FakeVertex>,
    pub topics: Arc<FakeTopics>,
    pub queues: Arc<FakeQueues>,
}

impl Doubles {
    /// A pipeline over these doubles, with `settings`; callbacks sealed with `secret`.
    pub fn pipeline_with(&self, settings: Settings, secret: Option<&str>) -> Pipeline {
        Pipeline {
            vertex: self.vertex.clone(),
            topics: self.topics.clone(),
            queues: self.queues.clone(),
            callbacks: Arc::new(Callbacks::new(secret).expect("a callback secret")),
            settings: Arc::new(settings),
            numbers: Default::default(),
            in_flight: Default::default(),
        }
    }

    /// A pipeline with the test settings ([`settings`]) and no callback secret.
    pub fn pipeline(&self) -> Pipeline {
        self.pipeline_with(settings(), None)
    }
}

/// The worker's default settings, with `hooks.example.com` allowed for callbacks.
pub(crate) fn settings() -> Settings {
    let mut s = Settings::new("worker-proj");
    s.defaults.callback_allowed_hosts = vec!["hooks.example.com".into()];
    s
}

// What the stage tests share: one request, its names, and the deliveries that carry it.

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
