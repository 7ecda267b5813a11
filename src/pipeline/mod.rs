//! The stages of DESIGN.md §1: each push delivery or task dispatch does one short, idempotent
//! step, hands on what comes next (a task, an event, a message), and only then answers 2xx.
//! No request is held open while a copy runs.
//!
//! - [`request_stage`]: validates a request and queues its first copy start.
//! - [`start_stage`]: a copy-start task: starts the copy and schedules its first poll.
//! - [`start`]: the start code every CopyModel site goes through (`parent_model` looks first,
//!   ALREADY_EXISTS is resolved by reading the destination).
//! - [`poll_stage`]: a poll task: one GetOperation, then the next poll or the end.
//! - [`chain`]: the tasks a stage hands on, their names and their schedule.
//! - [`drain`]: the upgrade route, which turns the previous release's watch messages into tasks.
//! - [`callback_stage`]: posts one webhook callback inside its own push delivery.
//! - [`announce`]: the completion event and the dead letter, each confirmed before the stage
//!   answers.
//! - [`decide`]: the stages' decisions as tables: what follows each answer, by the one
//!   [`FailureClass`](crate::retry::FailureClass) of a failure.
//! - [`existing`]: deciding whether an existing destination is our earlier copy.
//! - [`in_flight`]: `parent_model` copies this process started and that may still run.
//! - `doubles` (tests only): in-memory `Vertex`, `Topics` and `TaskQueues` that record and
//!   answer from a script, for the paused-time tests beside each stage (`*/tests.rs`).
//!
//! Every stage returns a [`StepOutcome`]; `http::error` maps it to a status code in one place.

pub(crate) mod announce;
pub(crate) mod callback_stage;
pub(crate) mod chain;
mod decide;
#[cfg(test)]
mod doubles;
pub(crate) mod drain;
pub(crate) mod existing;
pub(crate) mod in_flight;
pub(crate) mod poll_stage;
pub(crate) mod request_stage;
pub(crate) mod start;
pub(crate) mod start_stage;

pub use start_stage::Dispatch;

use std::sync::Arc;
use std::time::Duration;

use crate::clients::pubsub::{PublishError, Topics};
use crate::clients::tasks::TaskQueues;
use crate::clients::vertex::Vertex;
use crate::clients::webhook::Callbacks;
use crate::contract::dead_letter::FailedStage;
use crate::contract::push::PushMessage;
use crate::domain::{CopyRequest, DefaultKeys, Defaults};
use crate::retry::Failure;

/// What a stage did with a delivery. The only input to the status code.
#[derive(Debug)]
pub enum StepOutcome {
    /// Done, and everything handed on is confirmed: ack.
    Acked,
    /// A transient failure, or something handed on that was not confirmed: nack, asking for a
    /// retry (its status and `Retry-After` are `http::error`'s), and the sender tries again.
    Retry(RetryReason),
}

/// Why a stage asks Pub/Sub to deliver again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetryReason {
    /// A Vertex AI call still failed transiently after the in-request retries.
    #[error("{0}")]
    Vertex(#[from] Failure),
    /// A message the step hands on was not confirmed; never ack before it is.
    #[error("{0}")]
    Publish(#[from] PublishError),
    /// The task the step hands on was not created (Cloud Tasks unreachable, or the queue
    /// missing or not ours to use: a deployment fault, not the copy's).
    #[error("creating the next task: {0}")]
    Queue(Failure),
    /// The callback receiver did not answer 2xx (and may later): Pub/Sub tries again.
    #[error("{0}")]
    Callback(#[from] crate::clients::webhook::CallbackError),
    /// The stage's time budget ran out (slow answers, retries): answer before the ack
    /// deadline rather than after it, so Pub/Sub does not deliver the same message twice at once.
    #[error("the {stage} stage used its {}s budget; asking for redelivery", .budget.as_secs())]
    OutOfTime {
        stage: &'static str,
        budget: Duration,
    },
}

/// The longest a request-stage delivery may take, everything included (the calls, their
/// in-request retries, the publishes): well inside the 60 s ack deadline of
/// `copy-requests-push` (DESIGN.md §10).
pub const REQUEST_STAGE_BUDGET: Duration = crate::topology::REQUEST_STAGE_BUDGET;

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
    /// `CALLBACK_MAX_ATTEMPTS`: deliveries of one callback before it is dead-lettered.
    pub callback_max_attempts: u32,
    /// How long one request-stage delivery (or task dispatch) may take
    /// ([`REQUEST_STAGE_BUDGET`]).
    pub request_budget: Duration,
    /// `VERTEX_CALL_TIMEOUT`: a `parent_model` CopyModel is not started with less time left
    /// in the delivery than this, so the stage's deadline never cancels it mid-call.
    pub vertex_call_timeout: Duration,
    /// The poll schedule (`chain::poll_delay`): the first poll comes `poll_initial` after
    /// CopyModel, each next one `poll_initial + poll_growth × the copy's age` later, at most
    /// `poll_max`.
    pub poll_initial: Duration,
    pub poll_growth: f64,
    pub poll_max: Duration,
    /// How long a copy waits after Vertex AI's quota refused a call, or when its destination
    /// cannot be read yet, before it asks again.
    pub quota_backoff: Duration,
    /// `COPY_DEFAULT_KMS_KEYS`: the key of each destination region for a copy of a CMEK
    /// source whose request names none (`domain::check_copy_limits`).
    pub default_kms_keys: DefaultKeys,
}

impl Settings {
    pub fn new(worker_project: impl Into<String>) -> Self {
        Self {
            defaults: Defaults::default(),
            worker_project: worker_project.into(),
            max_attempts: 3,
            max_duration: Duration::from_secs(24 * 3600),
            callback_max_attempts: 10,
            request_budget: REQUEST_STAGE_BUDGET,
            vertex_call_timeout: Duration::from_secs(30),
            poll_initial: Duration::from_secs(1),
            poll_growth: 0.25,
            poll_max: Duration::from_secs(60),
            quota_backoff: Duration::from_secs(10),
            default_kms_keys: DefaultKeys::default(),
        }
    }
}

impl Settings {
    /// DEADLINE_EXCEEDED once a copy accepted at `accepted_at` is older than
    /// `COPY_MAX_DURATION`; `state` says where it is ("still not done", "not started").
    pub fn past_max_duration(
        &self,
        accepted_at: chrono::DateTime<chrono::Utc>,
        model: &str,
        state: &str,
    ) -> Option<Failure> {
        let age = (chrono::Utc::now() - accepted_at)
            .to_std()
            .unwrap_or_default();
        (age > self.max_duration).then(|| {
            Failure::new(
                google_cloud_gax::error::rpc::Code::DeadlineExceeded,
                format!(
                    "copy into {model} {state} after {}s; COPY_MAX_DURATION is {}s",
                    age.as_secs(),
                    self.max_duration.as_secs()
                ),
            )
        })
    }
}

/// Everything a stage needs: the outbound clients and the settings.
#[derive(Clone)]
pub struct Pipeline {
    pub vertex: Arc<dyn Vertex>,
    pub topics: Arc<dyn Topics>,
    /// `COPY_START_QUEUE` and `COPY_POLL_QUEUE`: their rates pace every Vertex AI call of
    /// the deployment.
    pub queues: Arc<dyn TaskQueues>,
    pub callbacks: Arc<Callbacks>,
    pub settings: Arc<Settings>,
    /// Project numbers learned from Vertex AI's answers.
    pub numbers: Arc<existing::ProjectNumbers>,
    /// `parent_model` copies started by this process (closes the duplicate-version window
    /// for deliveries that reach the same instance).
    pub in_flight: Arc<in_flight::InFlight>,
}

impl Pipeline {
    /// `step`, the work of `stage`, held to `request_budget`: past it, a retry asked for
    /// ([`RetryReason::OutOfTime`]), answered before the caller's deadline.
    async fn within_budget(
        &self,
        stage: &'static str,
        step: impl Future<Output = StepOutcome>,
    ) -> StepOutcome {
        let budget = self.settings.request_budget;
        match tokio::time::timeout(budget, step).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => StepOutcome::Retry(RetryReason::OutOfTime { stage, budget }),
        }
    }
}

/// What the stages know about the delivery they are working on.
pub(crate) struct Delivery<'a> {
    pub msg: &'a PushMessage,
    pub stage: FailedStage,
}

/// A parsed copy request and the delivery that carries it: what every step after parsing
/// needs (what to copy, and what to hand on and ack), passed as one value.
#[derive(Clone, Copy)]
pub(crate) struct Job<'a> {
    pub d: &'a Delivery<'a>,
    pub req: &'a CopyRequest,
}

#[cfg(test)]
mod tests {
    use crate::topology::MAX_DELIVERY_ATTEMPTS;

    #[test]
    fn the_stages_use_the_delivery_attempts_topology_names() {
        let settings = super::Settings::new("p");
        assert_eq!(
            settings.callback_max_attempts, MAX_DELIVERY_ATTEMPTS as u32,
            "CALLBACK_MAX_ATTEMPTS equals the subscriptions' max_delivery_attempts (docs/DESIGN.md §12)"
        );
    }
}
