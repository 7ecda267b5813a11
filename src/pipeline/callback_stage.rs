//! The callback stage (DESIGN.md §7): one `copy-callbacks` delivery posts one webhook.
//!
//! The POST happens inside the push request, so the answer to Pub/Sub is the answer of the
//! receiver: 2xx → ack; a refusal (4xx) → dead letter with the receiver's status, ack; no
//! answer, a timeout or 5xx → a retry asked for, and Pub/Sub's retry policy spaces the next attempt. After
//! `CALLBACK_MAX_ATTEMPTS` deliveries (Pub/Sub's `deliveryAttempt`, sent when the
//! subscription has a dead-letter policy) the callback is dead-lettered with the last status;
//! the subscription's own dead-letter policy is the backstop.

use chrono::Utc;

use super::announce::log_dropped;
use super::{Delivery, Pipeline, RetryReason, StepOutcome};
use crate::clients::pubsub::Topic;
use crate::contract::attr;
use crate::contract::callback::Callback;
use crate::contract::dead_letter::{FailedStage, dead_letter};
use crate::contract::event::ErrorInfo;
use crate::contract::push::PushMessage;
use crate::domain::request::validate_callback_url;

/// Dead letter `error_code` of a callback the receiver refused.
pub const CALLBACK_REJECTED: &str = "CALLBACK_REJECTED";
/// Dead letter `error_code` of a callback still failing after its attempts.
pub const CALLBACK_UNDELIVERED: &str = "CALLBACK_UNDELIVERED";

impl Pipeline {
    /// Handles one `copy-callbacks` delivery.
    pub async fn callback_stage(&self, msg: &PushMessage) -> StepOutcome {
        let d = Delivery {
            msg,
            stage: FailedStage::Callback,
        };
        let cb = match Callback::parse(&msg.attributes) {
            Ok(cb) => cb,
            Err(why) => {
                return self
                    .dead_letter_callback(&d, None, CALLBACK_REJECTED, why.to_string())
                    .await;
            }
        };
        tracing::Span::current().record("request_id", cb.request_id.as_str());
        if let Some(refused) = self.unsealed(&d, &cb).await {
            return refused;
        }
        // The allow-list is the worker's current one: a host removed since the request was
        // accepted is no longer posted to.
        if let Err(why) = validate_callback_url(&cb.url, &self.settings.defaults) {
            return self
                .dead_letter_callback(&d, Some(&cb), CALLBACK_REJECTED, why.to_string())
                .await;
        }
        match self
            .callbacks
            .post(&cb.url, &cb.webhook_id, &msg.data)
            .await
        {
            Ok(status) => {
                tracing::info!(callback.status = status, "callback delivered");
                StepOutcome::Acked
            }
            Err(e) if e.is_permanent() => {
                self.dead_letter_callback(&d, Some(&cb), CALLBACK_REJECTED, e.to_string())
                    .await
            }
            Err(e) if self.attempts_spent(msg) => {
                let why = format!(
                    "{e}, after {} attempts",
                    msg.delivery_attempt.unwrap_or_default()
                );
                self.dead_letter_callback(&d, Some(&cb), CALLBACK_UNDELIVERED, why)
                    .await
            }
            Err(e) => {
                tracing::warn!(error.message = %e, attempt = ?msg.delivery_attempt, "callback not delivered; Pub/Sub will try again");
                StepOutcome::Retry(RetryReason::Callback(e))
            }
        }
    }

    /// Whether this was the last delivery `CALLBACK_MAX_ATTEMPTS` allows.
    fn attempts_spent(&self, msg: &PushMessage) -> bool {
        msg.delivery_attempt
            .is_some_and(|n| n >= i64::from(self.settings.callback_max_attempts))
    }

    /// Dead-letters the callback (its event JSON and attributes as received) and acks.
    async fn dead_letter_callback(
        &self,
        d: &Delivery<'_>,
        cb: Option<&Callback>,
        code: &str,
        message: String,
    ) -> StepOutcome {
        tracing::warn!(error.code = code, error.message = %message, "callback dead-lettered");
        let err = ErrorInfo {
            code: code.to_owned(),
            message,
        };
        let request_id = cb.map(|c| c.request_id.as_str());
        let (dl, dropped) = dead_letter(
            &d.msg.data,
            &d.msg.attributes,
            request_id,
            &err,
            d.stage,
            Utc::now(),
        );
        log_dropped(&dropped);
        match self.topics.publish(Topic::DeadLetter, dl).await {
            Ok(_) => StepOutcome::Acked,
            Err(e) => StepOutcome::Retry(e.into()),
        }
    }
}

impl Pipeline {
    /// Only what this worker produced is signed and posted: a message published to the topic
    /// by anyone else (who holds no signing secret) carries no valid seal, and is
    /// dead-lettered instead.
    async fn unsealed(&self, d: &Delivery<'_>, cb: &Callback) -> Option<StepOutcome> {
        let ids = (
            cb.url.as_str(),
            cb.request_id.as_str(),
            cb.webhook_id.as_str(),
        );
        let seal = d.msg.attribute(attr::CALLBACK_SEAL);
        if self.callbacks.sealed_here(seal, ids, &d.msg.data) {
            return None;
        }
        let why = "the callback message is not sealed by this worker (callback_seal): not posted";
        Some(
            self.dead_letter_callback(d, Some(cb), CALLBACK_REJECTED, why.into())
                .await,
        )
    }
}

#[cfg(test)]
mod tests;
