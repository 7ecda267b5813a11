//! [`FakeVertex`]: the Vertex AI seam from a script, and the calls the stage made.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use google_cloud_gax::error::rpc::Code;

use super::{Script, failure};
use crate::clients::vertex::{OperationState, Vertex};
use crate::domain::{CopyRequest, Destination, KmsKeyName, ModelInfo, OperationName};
use crate::retry::Failure;

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
