//! What a stage hands on at the end of a copy (DESIGN.md §1, §3): the completion event, the
//! dead letter of a failure, and the callback message. Each publish is confirmed before the
//! stage answers 2xx.

use chrono::{DateTime, Utc};

use super::{Delivery, Job, Pipeline, StepOutcome};
use crate::clients::pubsub::Topic;
use crate::contract::callback::Callback;
use crate::contract::dead_letter::dead_letter;
use crate::contract::event::{CompletionEvent, ErrorInfo, Status};
use crate::contract::{Rejection, attr};
use crate::domain::{CopiedModel, RequestId};
use crate::retry::Failure;
use crate::telemetry::events::{CompletionPublished, CountedEvent as _};

/// How a copy ended, before it becomes an event.
pub(crate) struct Ending {
    pub status: Status,
    /// The copy, once Vertex AI named it.
    pub model: Option<CopiedModel>,
    pub operation: Option<String>,
    pub error: Option<ErrorInfo>,
    pub attempts: u32,
    pub accepted_at: DateTime<Utc>,
}

impl Ending {
    pub fn succeeded(model: CopiedModel, accepted_at: DateTime<Utc>) -> Self {
        Self {
            status: Status::Succeeded,
            model: Some(model),
            operation: None,
            error: None,
            attempts: 1,
            accepted_at,
        }
    }

    pub fn failed(f: &Failure, accepted_at: DateTime<Utc>) -> Self {
        Self {
            status: Status::Failed,
            model: None,
            operation: None,
            error: Some(ErrorInfo {
                code: f.code.name().to_owned(),
                message: f.message.clone(),
            }),
            attempts: 1,
            accepted_at,
        }
    }
}

impl Pipeline {
    /// Publishes the completion event, then (for failures) the dead letter, then (with a
    /// `callback_url`) the callback message. Acks only once every publish is confirmed; the
    /// callback itself is posted later, by its own push delivery, and never blocks the event.
    pub(crate) async fn announce(&self, job: Job<'_>, end: Ending) -> StepOutcome {
        let Job { d, req } = job;
        // The name as Vertex AI returns it (project number) on every path; a failure before
        // Vertex named the destination keeps the request's spelling.
        let (destination_model, version) = match end.model {
            Some(m) => (m.model, Some(m.version_id).filter(|v| !v.is_empty())),
            None => (self.numbers.canonical(&req.destination.model()), None),
        };
        let mut event = CompletionEvent::new(req.request_id.as_str(), end.status, end.accepted_at);
        event.source_model = Some(req.source_model.to_string());
        event.destination_model = Some(destination_model);
        event.destination_model_version = version;
        event.operation = end.operation;
        event.error = end.error;
        event.attempts = end.attempts;
        event.context = req.context.clone();
        let dest_project = req.destination.project.to_string();
        self.finish(d, event, Some(&dest_project), req.callback_url.as_deref())
            .await
    }

    /// Rejects a request that cannot be parsed: `rejected` event plus dead letter.
    pub(crate) async fn reject(&self, d: &Delivery<'_>, why: Rejection) -> StepOutcome {
        tracing::warn!(error.message = %why, "request rejected");
        let request_id = rejected_request_id(d);
        let mut event = CompletionEvent::new(request_id.as_str(), Status::Rejected, Utc::now());
        event.error = Some(ErrorInfo {
            code: "INVALID_REQUEST".into(),
            message: why.to_string(),
        });
        self.finish(d, event, None, None).await
    }

    async fn finish(
        &self,
        d: &Delivery<'_>,
        event: CompletionEvent,
        dest_project: Option<&str>,
        callback_url: Option<&str>,
    ) -> StepOutcome {
        let mut msg = event.to_message(&self.settings.worker_project, dest_project);
        // The trace, and the tag a `publish --wait` subscription filters on (DESIGN.md §3).
        for key in attr::ONTO_EVENT {
            if let Some(v) = d.msg.attribute(key) {
                msg.attributes.insert(key.into(), v.to_owned());
            }
        }
        if let Err(outcome) = self
            .hand_on(d, Topic::Completions, msg.clone(), "completion event")
            .await
        {
            return outcome;
        }
        if let Some(err) = &event.error {
            let (dl, dropped) = dead_letter(
                &d.msg.data,
                &d.msg.attributes,
                Some(&event.request_id),
                err,
                d.stage,
                Utc::now(),
            );
            log_dropped(&dropped);
            if let Err(e) = self.topics.publish(Topic::DeadLetter, dl).await {
                return StepOutcome::Retry(e.into());
            }
        }
        // The callback is a message of its own, posted by its own push delivery
        // (callback_stage): nothing runs after this delivery is acked.
        if let Some(url) = callback_url
            && let Err(outcome) = self.hand_on_callback(d, &event, url, msg.data).await
        {
            return outcome;
        }
        CompletionPublished {
            status: event.status.as_str(),
            ce_id: &event.ce_id(),
        }
        .emit();
        StepOutcome::Acked
    }
}

impl Pipeline {
    /// The callback message of `event` for `url`, sealed by this worker (DESIGN.md §3).
    async fn hand_on_callback(
        &self,
        d: &Delivery<'_>,
        event: &CompletionEvent,
        url: &str,
        event_json: Vec<u8>,
    ) -> Result<(), StepOutcome> {
        let callback = Callback {
            url: url.to_owned(),
            webhook_id: event.ce_id(),
            request_id: event.request_id.clone(),
        };
        let seal = self.callbacks.seal(
            &callback.url,
            &callback.request_id,
            &callback.webhook_id,
            &event_json,
        );
        let cb = callback.to_message(event_json, seal, d.msg.attribute(attr::TRACEPARENT));
        self.hand_on(d, Topic::Callbacks, cb, "callback message")
            .await
    }

    /// Publishes `msg`, which this step hands on. Not confirmed → a retry is asked for, and
    /// the sender tries again. Refused for good (INVALID_ARGUMENT: it would be refused on
    /// every try) → the delivery is dead-lettered with the reason instead, and the step acks:
    /// asking for a retry would repeat until the message's retention ran out (DESIGN.md §4).
    async fn hand_on(
        &self,
        d: &Delivery<'_>,
        topic: Topic,
        msg: crate::contract::OutMessage,
        what: &str,
    ) -> Result<(), StepOutcome> {
        let e = match self.topics.publish(topic, msg).await {
            Ok(_) => return Ok(()),
            Err(e) if !e.is_permanent() => return Err(StepOutcome::Retry(e.into())),
            Err(e) => e,
        };
        tracing::error!(error.message = %e, "Pub/Sub refused the {what} for good; dead-lettering the delivery");
        let err = ErrorInfo {
            code: "INVALID_ARGUMENT".into(),
            message: format!("Pub/Sub refused the {what} for good: {e}"),
        };
        let request_id = rejected_request_id(d);
        let (dl, dropped) = dead_letter(
            &d.msg.data,
            &d.msg.attributes,
            Some(request_id.as_str()),
            &err,
            d.stage,
            Utc::now(),
        );
        log_dropped(&dropped);
        match self.topics.publish(Topic::DeadLetter, dl).await {
            Ok(_) => Err(StepOutcome::Acked),
            Err(e) => Err(StepOutcome::Retry(e.into())),
        }
    }
}

/// Caller attributes that did not fit in Pub/Sub's limits are named in the log, not lost
/// silently; the message itself is still handed on.
pub(crate) fn log_dropped(dropped: &[String]) {
    if !dropped.is_empty() {
        tracing::warn!(
            dropped = dropped.len(),
            keys = %dropped.join(","),
            "caller attributes beyond Pub/Sub's limits were not carried on"
        );
    }
}

/// The id a rejection is announced under: the `request_id` attribute or field when it is
/// valid, else a hash of the bytes, so that a redelivery gets the same `ce-id`.
fn rejected_request_id(d: &Delivery<'_>) -> RequestId {
    if let Some(id) = d
        .msg
        .attribute(attr::REQUEST_ID)
        .and_then(|s| RequestId::parse(s).ok())
    {
        return id;
    }
    serde_json::from_slice::<serde_json::Value>(&d.msg.data)
        .ok()
        .and_then(|v| v.get(attr::REQUEST_ID)?.as_str().map(str::to_owned))
        .and_then(|s| RequestId::parse(&s).ok())
        .unwrap_or_else(|| RequestId::for_bytes(&d.msg.data))
}
