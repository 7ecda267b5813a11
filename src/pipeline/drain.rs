//! The upgrade route (DESIGN.md "Upgrading from the watch-message release"): while
//! `COPY_OPERATIONS_DRAIN=true`, `POST /pubsub/copy-operations` takes the watch messages the
//! previous release left on `copy-operations` and hands each copy to the task queues, so no
//! copy in flight is lost. Nothing is polled or started here: a watch of a running operation
//! becomes its first poll task, a pending watch (no operation yet) a copy-start task.

use std::time::Duration;

use super::chain::{PollPlace, StartPlace};
use super::{Delivery, Job, Pipeline, StepOutcome};
use crate::contract::dead_letter::FailedStage;
use crate::contract::push::PushMessage;
use crate::contract::watch::Watch;
use crate::domain::{CopyRequest, OperationName};

impl Pipeline {
    /// Handles one delivery of the old `copy-operations-push`.
    pub async fn drain_stage(&self, msg: &PushMessage) -> StepOutcome {
        let d = Delivery {
            msg,
            stage: FailedStage::Operation,
        };
        let parsed = Watch::parse(&msg.attributes, msg.publish_time.as_deref()).and_then(|w| {
            let req = CopyRequest::parse(&msg.data, &self.settings.defaults)?;
            let op = w
                .operation
                .as_deref()
                .map(OperationName::parse)
                .transpose()?;
            Ok((w, req, op))
        });
        let (watch, req, op) = match parsed {
            Ok(p) => p,
            Err(why) => return self.reject(&d, why).await,
        };
        tracing::Span::current().record("request_id", req.request_id.as_str());
        let job = Job { d: &d, req: &req };
        match op {
            Some(op) => {
                // The old message does not say when CopyModel was called: counting the copy's
                // age from its acceptance only makes the first polls sparser.
                let poll = PollPlace {
                    operation: &op,
                    seq: 1,
                    attempt: watch.attempt,
                    accepted_at: watch.accepted_at,
                    started_at: watch.accepted_at,
                    // At once: the copy is already as old as it is.
                    due: (chrono::Utc::now() - watch.accepted_at)
                        .to_std()
                        .unwrap_or_default(),
                };
                match self.queue_poll(job, poll).await {
                    Ok(task) => {
                        tracing::info!(task, operation = %op, "watch drained into a poll task");
                        StepOutcome::Acked
                    }
                    Err(outcome) => outcome,
                }
            }
            None => {
                let place = StartPlace {
                    accepted_at: watch.accepted_at,
                    attempt: watch.attempt,
                    origin: msg.message_id.clone(),
                    seq: 0,
                    previous_operation: None,
                };
                self.queue_start(job, &place, Duration::ZERO).await
            }
        }
    }
}

#[cfg(test)]
mod tests;
