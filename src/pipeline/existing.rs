//! ALREADY_EXISTS and redeliveries (DESIGN.md §1): CopyModel has no idempotency key, so a
//! stage reads the destination to decide whether it already holds our copy.

use std::collections::HashMap;
use std::sync::Mutex;

use google_cloud_gax::error::rpc::Code;

use super::announce::Ending;
use super::chain::StartPlace;
use super::decide::{self, AfterRead};
use super::{Job, Pipeline, StepOutcome};
use crate::domain::names::ModelIdentity;
use crate::domain::{CopyRequest, Existing, ModelName, Project};
use crate::retry::{Failure, retry_transient};

/// Project id → project number, learned from the names Vertex AI returns and kept for the
/// life of the process (a project's number never changes).
#[derive(Debug, Default)]
pub struct ProjectNumbers(Mutex<HashMap<String, String>>);

impl ProjectNumbers {
    /// The number of `project`: itself when it is a number, else what was learned.
    pub fn get(&self, project: &Project) -> Option<String> {
        if project.is_number() {
            return Some(project.to_string());
        }
        self.0.lock().expect("lock").get(project.as_str()).cloned()
    }

    /// Records that `project` is spelled `name`'s project number in a name Vertex returned
    /// (`projects/{number}/…`).
    pub fn learn(&self, project: &Project, name: &str) {
        let mut parts = name.split('/');
        if let (Some("projects"), Some(n)) = (parts.next(), parts.next())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && !project.is_number()
        {
            self.0
                .lock()
                .expect("lock")
                .insert(project.to_string(), n.to_owned());
        }
    }

    /// `name` with its project spelled as a number, when the number is known.
    pub fn canonical(&self, name: &ModelName) -> String {
        match self.get(&name.project) {
            Some(n) => name.with_project(&n),
            None => name.to_string(),
        }
    }
}

impl Pipeline {
    /// Vertex answered ALREADY_EXISTS: decide whether the destination is our copy.
    ///
    /// Our copy → `succeeded`; someone else's → `failed`; not readable yet (the first copy
    /// is still running) → the start is asked again later through the copy-start queue
    /// ([`Self::start_later`]), and this dispatch answers 2xx. Never announce a model that
    /// cannot be read.
    pub(crate) async fn resolve_existing(&self, job: Job<'_>, place: &StartPlace) -> StepOutcome {
        let req = job.req;
        match decide::after_read(self.find_existing_copy(req).await) {
            AfterRead::Ours(m) => {
                tracing::info!(model = %m.model, "destination already holds our copy");
                let mut end = Ending::succeeded(m, place.accepted_at);
                end.attempts = place.attempt;
                self.announce(job, end).await
            }
            AfterRead::StartLater => self.start_later(job, place).await,
            AfterRead::Retry(f) => StepOutcome::Retry(f.into()),
            AfterRead::Fail(f) => {
                let mut end = Ending::failed(&f, place.accepted_at);
                end.attempts = place.attempt;
                self.announce(job, end).await
            }
        }
    }

    /// The source as Vertex names it: its project number (cached per process) and, when the
    /// request pins an alias, the version it resolves to. Reads the source model only when
    /// one of those is not known yet.
    pub(crate) async fn source_identity(
        &self,
        req: &CopyRequest,
    ) -> Result<ModelIdentity, Failure> {
        let src = &req.source_model;
        if let Some(id) = self
            .numbers
            .get(&src.project)
            .and_then(|n| src.identity(&n))
        {
            return Ok(id);
        }
        let name = src.to_string();
        let model = retry_transient("get_model", || self.vertex.get_model(&name, &src.location))
            .await?
            .ok_or_else(|| {
                Failure::new(
                    Code::NotFound,
                    format!("source model {name} does not exist"),
                )
            })?;
        self.numbers.learn(&src.project, &model.name);
        let number = self.numbers.get(&src.project).ok_or_else(|| {
            Failure::new(
                Code::Internal,
                format!(
                    "Vertex AI named the source {:?}, without a project number",
                    model.name
                ),
            )
        })?;
        Ok(ModelIdentity {
            project_number: number,
            location: src.location.clone(),
            model_id: src.model_id.clone(),
            version_id: src.version.as_ref().map(|_| model.version_id),
        })
    }

    /// Reads what the destination holds: the model by name, or every version of the parent.
    pub(crate) async fn find_existing_copy(&self, req: &CopyRequest) -> Result<Existing, Failure> {
        let source = self.source_identity(req).await?;
        self.find_existing_copy_of(req, &source).await
    }

    /// [`Self::find_existing_copy`] with the source's identity already resolved.
    pub(crate) async fn find_existing_copy_of(
        &self,
        req: &CopyRequest,
        source: &ModelIdentity,
    ) -> Result<Existing, Failure> {
        let dest = &req.destination;
        let found = retry_transient("find_copies", || self.vertex.find_copies(dest)).await?;
        if let Some(m) = found.first() {
            self.numbers.learn(&dest.project, &m.name);
        }
        Ok(dest.judge(source, found))
    }
}
