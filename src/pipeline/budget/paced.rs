//! The Vertex AI client wrapped in the instance's budget.

use std::future::Future;
use std::sync::Arc;

use google_cloud_gax::error::rpc::Code;

use super::{Budget, COPY_BACKOFF, Kind, READ_BACKOFF, READ_WAIT_MAX};
use crate::clients::vertex::{OperationState, Vertex};
use crate::domain::{CopyRequest, Destination, ModelInfo, OperationName};
use crate::retry::Failure;
use crate::telemetry::events::{CountedEvent as _, VertexQuotaExhausted};

/// [`Vertex`] with the instance's budget applied: reads wait for their slot, and a 429 from
/// Vertex AI holds the project's region back. CopyModel is admitted by the stages (they
/// decide what to do when no slot is free: hand the copy on as a pending watch).
pub struct Paced {
    inner: Arc<dyn Vertex>,
    budget: Arc<Budget>,
}

/// The project segment of a resource name (`projects/{p}/…`).
pub(super) fn project_of(name: &str) -> &str {
    name.strip_prefix("projects/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
}

impl Paced {
    pub fn new(inner: Arc<dyn Vertex>, budget: Arc<Budget>) -> Self {
        Self { inner, budget }
    }

    /// A read slot, or this instance's own RESOURCE_EXHAUSTED when none is near.
    async fn read_slot(&self, project: &str, region: &str) -> Result<(), Failure> {
        if self.budget.read(project, region).await {
            return Ok(());
        }
        Err(Failure::new(
            Code::ResourceExhausted,
            format!(
                "no Vertex AI read slot for {project} in {region} within {} s (VERTEX_READ_RATE); this instance's budget, not Vertex AI's quota",
                READ_WAIT_MAX.as_secs()
            ),
        ))
    }

    /// A read of `name` in `region`, inside the budget.
    async fn read<T>(
        &self,
        name: &str,
        region: &str,
        call: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let project = project_of(name);
        self.read_slot(project, region).await?;
        let r = call.await;
        self.after(Kind::Read, (project, region), r)
    }

    fn after<T>(&self, kind: Kind, at: (&str, &str), r: Result<T, Failure>) -> Result<T, Failure> {
        if let Err(f) = &r
            && f.code == Code::ResourceExhausted
        {
            let hold = match kind {
                Kind::Copy => COPY_BACKOFF,
                Kind::Read => READ_BACKOFF,
            };
            let (project, region) = at;
            VertexQuotaExhausted {
                project,
                region,
                kind: &kind,
                hold,
                error: f,
            }
            .emit();
            self.budget.back_off(kind, at, hold);
        }
        r
    }
}

#[async_trait::async_trait]
impl Vertex for Paced {
    async fn start_copy(&self, req: &CopyRequest) -> Result<OperationName, Failure> {
        let r = self.inner.start_copy(req).await;
        let at = (
            req.destination.project.as_str(),
            req.destination.location.as_str(),
        );
        self.after(Kind::Copy, at, r)
    }

    async fn get_operation(&self, op: &OperationName) -> Result<OperationState, Failure> {
        let call = self.inner.get_operation(op);
        self.read(op.as_str(), op.location(), call).await
    }

    async fn get_model(&self, name: &str, location: &str) -> Result<Option<ModelInfo>, Failure> {
        let call = self.inner.get_model(name, location);
        self.read(name, location, call).await
    }

    async fn find_copies(&self, dest: &Destination) -> Result<Vec<ModelInfo>, Failure> {
        let call = self.inner.find_copies(dest);
        self.read(&dest.model_name(), &dest.location, call).await
    }
}
