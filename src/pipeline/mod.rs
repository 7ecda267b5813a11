//! The stages of DESIGN.md §1: each push delivery does one short, idempotent step,
//! publishes what comes next, and only then is acked.
//!
//! - [`request_stage`]: starts the copy and publishes a watch message.
//! - [`start_stage`]: starts a copy that the copy-start queue paced (`COPY_START_QUEUE`).
//! - [`watch_stage`]: checks the operation; announces the result or continues as new.
//! - [`callback_stage`]: posts one webhook callback inside its own push delivery.
//! - [`announce`]: the completion event, the dead letter and the watch message a stage
//!   hands on, each confirmed before the stage acks.
//! - [`decide`]: the stages' decisions as tables: what follows each Vertex AI answer,
//!   by the one [`FailureClass`](crate::retry::FailureClass) of a failure.
//! - [`existing`]: deciding whether an existing destination is our earlier copy.
//! - [`in_flight`]: `parent_model` copies this process started and that may still run.
//! - [`budget`]: the instance's share of Vertex AI's quotas: paced reads, admitted copies.
//! - [`deadline`]: one deadline per delivery, from its subscription's ack deadline.
//!
//! Every stage returns a [`StepOutcome`]; `http::error` maps it to a status code in one place.

pub(crate) mod announce;
pub(crate) mod budget;
pub(crate) mod callback_stage;
pub(crate) mod deadline;
mod decide;
pub(crate) mod existing;
pub(crate) mod in_flight;
pub(crate) mod request_stage;
pub(crate) mod start_stage;
pub(crate) mod watch_stage;

use std::sync::Arc;
use std::time::Duration;

use crate::clients::pubsub::{PublishError, Topics};
use crate::clients::tasks::StartQueue;
use crate::clients::vertex::Vertex;
use crate::clients::webhook::Callbacks;
use crate::contract::dead_letter::FailedStage;
use crate::contract::push::PushMessage;
use crate::domain::{CopyRequest, Defaults};
use crate::retry::Failure;

/// What a stage did with a delivery. The only input to the status code.
#[derive(Debug)]
pub enum StepOutcome {
    /// Done, and everything handed on is confirmed: ack (204).
    Acked,
    /// Shutting down while the operation still runs: nack so Pub/Sub redelivers after its
    /// backoff (429). In the steady state a held watch continues as new and answers 204.
    NotYet,
    /// A transient failure, or a publish that was not confirmed: nack (503).
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
    /// `WATCH_HOLD`.
    pub watch_hold: Duration,
    /// `COPY_OPERATIONS_ACK_DEADLINE`: the ack deadline of `copy-operations-push`, from
    /// which each watch delivery's [`deadline::Deadline`] is derived.
    pub operations_ack_deadline: Duration,
    /// `CALLBACK_MAX_ATTEMPTS`: deliveries of one callback before it is dead-lettered.
    pub callback_max_attempts: u32,
    /// How long one request-stage delivery may take ([`REQUEST_STAGE_BUDGET`]).
    pub request_budget: Duration,
    /// `VERTEX_CALL_TIMEOUT`: a `parent_model` CopyModel is not started with less time left
    /// in the delivery than this, so the stage's deadline never cancels it mid-call.
    pub vertex_call_timeout: Duration,
    /// Shortest and longest wait between two polls of an operation; in between, the wait
    /// grows with the copy's age (`watch_stage::poll_interval`).
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
            operations_ack_deadline: Duration::from_secs(300),
            callback_max_attempts: 10,
            request_budget: REQUEST_STAGE_BUDGET,
            vertex_call_timeout: Duration::from_secs(30),
            poll_initial: Duration::from_secs(1),
            poll_max: Duration::from_secs(60),
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
    /// The instance's share of the Vertex AI budget (`vertex` already waits for reads;
    /// the stages ask it before CopyModel).
    pub budget: Arc<budget::Budget>,
    pub topics: Arc<dyn Topics>,
    /// `COPY_START_QUEUE`: when set, copies start from this queue's tasks, at its rate for
    /// the whole deployment; when not, each instance admits copies from its own budget.
    pub queue: Option<Arc<dyn StartQueue>>,
    pub callbacks: Arc<Callbacks>,
    pub settings: Arc<Settings>,
    /// Project numbers learned from Vertex AI's answers.
    pub numbers: Arc<existing::ProjectNumbers>,
    /// `parent_model` copies started by this process (closes the duplicate-version window
    /// for deliveries that reach the same instance).
    pub in_flight: Arc<in_flight::InFlight>,
    /// Flips to `true` on SIGTERM: held watch deliveries stop polling and answer 429.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
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
    use crate::topology::{MAX_DELIVERY_ATTEMPTS, OPERATIONS_PUSH};

    #[test]
    fn the_stages_use_the_deadlines_topology_names() {
        let settings = super::Settings::new("p");
        assert_eq!(
            settings.operations_ack_deadline,
            OPERATIONS_PUSH.ack_deadline
        );
        assert_eq!(
            settings.callback_max_attempts, MAX_DELIVERY_ATTEMPTS as u32,
            "CALLBACK_MAX_ATTEMPTS equals the subscriptions' max_delivery_attempts (docs/DESIGN.md §12)"
        );
    }
}
