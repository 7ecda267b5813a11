//! ALREADY_EXISTS and redeliveries (DESIGN.md §1): CopyModel has no idempotency key, so a
//! stage reads the destination to decide whether it already holds our copy.

use chrono::{DateTime, Utc};
use google_cloud_gax::error::rpc::Code;

use super::announce::Ending;
use super::{Delivery, Pipeline, RetryReason, StepOutcome};
use crate::domain::{CopyRequest, Existing};
use crate::retry::{Failure, retry_transient};

impl Pipeline {
    /// Vertex answered ALREADY_EXISTS: decide whether the destination is our copy.
    ///
    /// Our copy → `succeeded`; someone else's → `failed`; not readable yet (the first copy
    /// is still running) → retry later. Never announce a model that cannot be read.
    pub(crate) async fn resolve_existing(
        &self,
        d: &Delivery<'_>,
        req: &CopyRequest,
        accepted_at: DateTime<Utc>,
    ) -> StepOutcome {
        match self.find_existing_copy(req).await {
            Ok(Existing::Ours(m, v)) => {
                tracing::info!(model = %m, "destination already holds our copy");
                self.announce(d, req, Ending::succeeded(m, v, accepted_at))
                    .await
            }
            Ok(Existing::Conflict(why)) => {
                let f = Failure::new(Code::AlreadyExists, why);
                self.announce(d, req, Ending::failed(&f, accepted_at)).await
            }
            Ok(Existing::NotYet) => StepOutcome::Retry(RetryReason::NotReadable {
                model: req.destination.model_name(),
            }),
            Err(f) if f.is_transient() => StepOutcome::Retry(f.into()),
            Err(f) => self.announce(d, req, Ending::failed(&f, accepted_at)).await,
        }
    }

    /// Reads what the destination holds: the model by name, or every version of the parent.
    pub(crate) async fn find_existing_copy(&self, req: &CopyRequest) -> Result<Existing, Failure> {
        let dest = &req.destination;
        let name = dest.model_name();
        let found = if dest.lists_versions() {
            retry_transient("list_model_versions", || {
                self.vertex.list_versions(&name, &dest.location)
            })
            .await?
        } else {
            retry_transient("get_model", || self.vertex.get_model(&name, &dest.location))
                .await?
                .into_iter()
                .collect()
        };
        Ok(dest.judge(&req.source_model, found))
    }
}
