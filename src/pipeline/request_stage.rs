//! The request stage: validate the request, queue its first copy start, ack.

use chrono::Utc;

use super::chain::StartPlace;
use super::{Delivery, Job, Pipeline, StepOutcome};
use crate::contract::dead_letter::FailedStage;
use crate::contract::push::PushMessage;
use crate::domain::CopyRequest;

impl Pipeline {
    /// Handles one `copy-requests` delivery.
    ///
    /// 1. Invalid request → `rejected` event + dead letter, ack.
    /// 2. Otherwise → a copy-start task (named after the Pub/Sub message, so that a
    ///    redelivery queues nothing new), then ack. The copy-start queue dispatches it at the
    ///    deployment's copy rate to the start stage.
    /// 3. The task not created (Cloud Tasks unreachable, or the queue missing or not ours to
    ///    use) → a retry; Pub/Sub redelivers, and its dead-letter policy is the backstop.
    ///
    /// The whole step answers within `request_budget` (45 s): past it, a retry and redelivery.
    pub async fn request_stage(&self, msg: &PushMessage) -> StepOutcome {
        self.within_budget("request", self.request_step(msg)).await
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
        let place = StartPlace {
            accepted_at: Utc::now(),
            attempt: 1,
            origin: msg.message_id.clone(),
            seq: 0,
            previous_operation: None,
        };
        let job = Job { d: &d, req: &req };
        self.queue_start(job, &place, std::time::Duration::ZERO)
            .await
    }
}

#[cfg(test)]
mod tests;
