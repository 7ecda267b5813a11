//! The two stages of DESIGN.md §1: each push delivery does one short, idempotent step,
//! publishes what comes next, and only then is acked.
//!
//! - [`request_stage`]: starts the copy and publishes a watch message.
//! - [`watch_stage`]: checks the operation; announces the result or answers "not yet".
//!
//! Both return a [`StepOutcome`]; `server` maps it to a status code in one place.

pub mod request_stage;
pub mod watch_stage;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use google_cloud_gax::error::rpc::Code;

use crate::callback::Callbacks;
use crate::event::{CompletionEvent, ErrorInfo, FailedStage, Status, dead_letter, rfc3339};
use crate::push::PushMessage;
use crate::request::{CopyRequest, Defaults, Rejection, RequestId, Target};
use crate::retry::{Failure, retry_transient};
use crate::topics::{OutMessage, Topic, Topics};
use crate::vertex::Vertex;

/// What a stage did with a delivery. The only input to the status code.
#[derive(Debug)]
pub enum StepOutcome {
    /// Done, and everything handed on is confirmed: ack (204).
    Acked,
    /// The operation is still running: nack so Pub/Sub redelivers after its backoff (429).
    NotYet,
    /// A transient failure, or a publish that was not confirmed: nack (503).
    Retry(String),
}

/// Tunables of the stages (DESIGN.md §5).
#[derive(Debug, Clone)]
pub struct Settings {
    pub defaults: Defaults,
    /// Project of the worker's topics, for `ce-source`.
    pub worker_project: String,
    /// `COPY_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `COPY_MAX_DURATION`.
    pub max_duration: Duration,
    /// `WATCH_HOLD`.
    pub watch_hold: Duration,
    /// First poll interval inside a held watch delivery; grows by 1.3× up to `poll_max`.
    pub poll_initial: Duration,
    pub poll_max: Duration,
}

impl Settings {
    pub fn new(worker_project: impl Into<String>) -> Self {
        Self {
            defaults: Defaults::default(),
            worker_project: worker_project.into(),
            max_attempts: 3,
            max_duration: Duration::from_secs(24 * 3600),
            watch_hold: Duration::from_secs(240),
            poll_initial: Duration::from_secs(1),
            poll_max: Duration::from_secs(10),
        }
    }
}

/// Everything a stage needs: the outbound clients and the settings.
#[derive(Clone)]
pub struct Pipeline {
    pub vertex: Arc<dyn Vertex>,
    pub topics: Arc<dyn Topics>,
    pub callbacks: Arc<Callbacks>,
    pub settings: Arc<Settings>,
    /// Flips to `true` on SIGTERM: held watch deliveries stop polling and answer 429.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// What the stages know about the delivery they are working on.
pub(crate) struct Delivery<'a> {
    pub msg: &'a PushMessage,
    pub stage: FailedStage,
}

impl Delivery<'_> {
    /// Attributes to carry onto every message handed on: the caller's (so `traceparent`
    /// and `replay_count` survive), without the stage-specific ones.
    fn carried_attributes(&self) -> BTreeMap<String, String> {
        self.msg
            .attributes
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "operation" | "attempt" | "accepted_at"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// How a copy ended, before it becomes an event.
pub(crate) struct Ending {
    pub status: Status,
    pub model: Option<(String, String)>,
    pub operation: Option<String>,
    pub error: Option<ErrorInfo>,
    pub attempts: u32,
    pub accepted_at: DateTime<Utc>,
}

impl Ending {
    pub fn succeeded(model: String, version: String, accepted_at: DateTime<Utc>) -> Self {
        Self {
            status: Status::Succeeded,
            model: Some((model, version)),
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
    /// Publishes the completion event, then (for failures) the dead letter, then posts the
    /// callback. Acks only once both publishes are confirmed; the callback never blocks it.
    pub(crate) async fn announce(
        &self,
        d: &Delivery<'_>,
        req: &CopyRequest,
        end: Ending,
    ) -> StepOutcome {
        let (destination_model, version) = match end.model {
            Some((m, v)) => (Some(m), Some(v).filter(|v| !v.is_empty())),
            None => (Some(req.destination.model_name()), None),
        };
        let event = CompletionEvent {
            request_id: req.request_id.to_string(),
            status: end.status,
            source_model: Some(req.source_model.to_string()),
            destination_model,
            destination_model_version: version,
            operation: end.operation,
            error: end.error,
            attempts: end.attempts,
            accepted_at: rfc3339(end.accepted_at),
            finished_at: rfc3339(Utc::now()),
            context: req.context.clone(),
        };
        let dest_project = req.destination.project.to_string();
        self.finish(d, event, Some(&dest_project), req.callback_url.as_deref())
            .await
    }

    /// Rejects a request that cannot be parsed: `rejected` event plus dead letter.
    pub(crate) async fn reject(&self, d: &Delivery<'_>, why: Rejection) -> StepOutcome {
        tracing::warn!(error.message = %why, "request rejected");
        let request_id = rejected_request_id(d.msg);
        let now = rfc3339(Utc::now());
        let event = CompletionEvent {
            request_id: request_id.to_string(),
            status: Status::Rejected,
            source_model: None,
            destination_model: None,
            destination_model_version: None,
            operation: None,
            error: Some(ErrorInfo {
                code: "INVALID_REQUEST".into(),
                message: why.to_string(),
            }),
            attempts: 0,
            accepted_at: now.clone(),
            finished_at: now,
            context: BTreeMap::new(),
        };
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
        if let Some(tp) = d.msg.attribute("traceparent") {
            msg.attributes.insert("traceparent".into(), tp.to_owned());
        }
        if let Err(e) = self.topics.publish(Topic::Completions, msg.clone()).await {
            return StepOutcome::Retry(e.to_string());
        }
        if let Some(err) = &event.error {
            let mut dl = dead_letter(
                &d.msg.data,
                Some(&event.request_id),
                err,
                d.stage,
                Utc::now(),
            );
            for (k, v) in d.msg.attributes.iter() {
                dl.attributes.entry(k.clone()).or_insert_with(|| v.clone());
            }
            if let Err(e) = self.topics.publish(Topic::DeadLetter, dl).await {
                return StepOutcome::Retry(e.to_string());
            }
        }
        tracing::info!(status = event.status.as_str(), ce_id = %event.ce_id(), "completion published");
        if let Some(url) = callback_url {
            self.callbacks
                .spawn(url.to_owned(), event.ce_id(), msg.data);
        }
        StepOutcome::Acked
    }

    /// Publishes a watch message for `op` (DESIGN.md §3), confirmed before the caller acks.
    pub(crate) async fn publish_watch(
        &self,
        d: &Delivery<'_>,
        req: &CopyRequest,
        op: &str,
        attempt: u32,
        accepted_at: DateTime<Utc>,
    ) -> StepOutcome {
        let mut attributes = d.carried_attributes();
        attributes.insert("request_id".into(), req.request_id.to_string());
        attributes.insert("operation".into(), op.to_owned());
        attributes.insert("attempt".into(), attempt.to_string());
        attributes.insert("accepted_at".into(), rfc3339(accepted_at));
        let msg = OutMessage {
            data: req.to_bytes(),
            attributes,
        };
        match self.topics.publish(Topic::Operations, msg).await {
            Ok(id) => {
                tracing::info!(watch_message_id = %id, attempt, "copy started; watch published");
                StepOutcome::Acked
            }
            Err(e) => StepOutcome::Retry(e.to_string()),
        }
    }

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
            Ok(Existing::NotYet) => StepOutcome::Retry(format!(
                "destination {} exists but cannot be read yet; the first copy is probably still running",
                req.destination.model_name()
            )),
            Err(f) if f.is_transient() => StepOutcome::Retry(f.to_string()),
            Err(f) => self.announce(d, req, Ending::failed(&f, accepted_at)).await,
        }
    }

    pub(crate) async fn find_existing_copy(&self, req: &CopyRequest) -> Result<Existing, Failure> {
        let dest = &req.destination;
        let name = dest.model_name();
        match &dest.target {
            Target::ModelId(_) => {
                let found =
                    retry_transient("get_model", || self.vertex.get_model(&name, &dest.location))
                        .await?;
                Ok(match found {
                    None => Existing::NotYet,
                    Some(m) => match &m.original_model {
                        Some(src) if req.source_model.is_source_of(src) => {
                            Existing::Ours(name.clone(), m.version_id)
                        }
                        other => Existing::Conflict(format!(
                            "destination {name} already exists and is not a copy of {} (it was copied from {})",
                            req.source_model,
                            other.as_deref().unwrap_or("nothing")
                        )),
                    },
                })
            }
            Target::ParentModel(_) => {
                let versions = retry_transient("list_model_versions", || {
                    self.vertex.list_versions(&name, &dest.location)
                })
                .await?;
                Ok(versions
                    .into_iter()
                    .find(|m| {
                        m.original_model
                            .as_deref()
                            .is_some_and(|s| req.source_model.is_source_of(s))
                    })
                    .map_or(Existing::NotYet, |m| {
                        Existing::Ours(name.clone(), m.version_id)
                    }))
            }
        }
    }
}

/// What the destination holds.
pub(crate) enum Existing {
    /// A copy of our source: (model, version).
    Ours(String, String),
    /// Something else, with the reason.
    Conflict(String),
    /// Nothing readable (yet).
    NotYet,
}

/// The id a rejection is announced under: the `request_id` attribute or field when it is
/// valid, else a hash of the bytes, so that a redelivery gets the same `ce-id`.
fn rejected_request_id(msg: &PushMessage) -> RequestId {
    if let Some(id) = msg
        .attribute("request_id")
        .and_then(|s| RequestId::parse(s).ok())
    {
        return id;
    }
    serde_json::from_slice::<serde_json::Value>(&msg.data)
        .ok()
        .and_then(|v| v.get("request_id")?.as_str().map(str::to_owned))
        .and_then(|s| RequestId::parse(&s).ok())
        .unwrap_or_else(|| RequestId::for_bytes(&msg.data))
}
