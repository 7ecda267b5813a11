//! The request stage: validate, start the copy, publish the watch message, ack.

use chrono::Utc;
use google_cloud_gax::error::rpc::Code;

use super::announce::Ending;
use super::{Delivery, Pipeline, RetryReason, StepOutcome};
use crate::contract::dead_letter::FailedStage;
use crate::contract::watch::Watch;
use crate::domain::{CopyRequest, Existing};
use crate::http::envelope::PushMessage;
use crate::retry::retry_transient;

impl Pipeline {
    /// Handles one `copy-requests` delivery.
    ///
    /// 1. Invalid request → `rejected` event + dead letter, ack.
    /// 2. A `parent_model` destination that already holds a version copied from our source
    ///    → `succeeded` (CopyModel has no idempotency key, and a new version is not a conflict).
    /// 3. CopyModel started → watch message published → ack.
    /// 4. ALREADY_EXISTS → resolved by reading the destination (see `resolve_existing`).
    /// 5. Permanent failure → `failed` + dead letter; transient after in-request retries → 503.
    ///
    /// The whole step answers within `request_budget` (45 s): past it, 503 and redelivery.
    pub async fn request_stage(&self, msg: &PushMessage) -> StepOutcome {
        let budget = self.settings.request_budget;
        match tokio::time::timeout(budget, self.request_step(msg)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => StepOutcome::Retry(RetryReason::OutOfTime { budget }),
        }
    }

    async fn request_step(&self, msg: &PushMessage) -> StepOutcome {
        let d = Delivery {
            msg,
            stage: FailedStage::Request,
        };
        let req = match CopyRequest::parse(&msg.data, &self.settings.defaults) {
            Ok(r) => r,
            Err(why) => return self.reject(&d, why).await,
        };
        tracing::Span::current().record("request_id", req.request_id.as_str());
        let accepted_at = Utc::now();

        if req.destination.lists_versions() {
            match self.find_existing_copy(&req).await {
                Ok(Existing::Ours(m, v)) => {
                    return self
                        .announce(&d, &req, Ending::succeeded(m, v, accepted_at))
                        .await;
                }
                Ok(_) => {}
                Err(f) if f.is_transient() => return StepOutcome::Retry(f.into()),
                Err(f) => {
                    return self
                        .announce(&d, &req, Ending::failed(&f, accepted_at))
                        .await;
                }
            }
        }

        match retry_transient("copy_model", || self.vertex.start_copy(&req)).await {
            Ok(op) => {
                tracing::Span::current().record("operation", op.as_str());
                self.numbers.learn(&req.destination.project, op.as_str());
                let watch = Watch {
                    operation: op.to_string(),
                    attempt: 1,
                    accepted_at,
                };
                self.publish_watch(&d, &req, watch).await
            }
            Err(f) if f.code == Code::AlreadyExists => {
                self.resolve_existing(&d, &req, accepted_at).await
            }
            Err(f) if f.is_transient() => StepOutcome::Retry(f.into()),
            Err(f) => {
                self.announce(&d, &req, Ending::failed(&f, accepted_at))
                    .await
            }
        }
    }
}
