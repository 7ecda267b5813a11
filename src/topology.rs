//! The Pub/Sub topology and the HTTP routes the worker is built around (docs/DESIGN.md §2,
//! §11): topic and subscription names, the route each push subscription posts to, its ack
//! deadline and the worker's time budget inside it. The router, `copy-worker doctor`, testkit
//! and a test against `terraform/*.tf` (docs/DESIGN.md §12) all read this module, so a rename
//! on one side fails a test instead of a deployment.
//!
//! Names are the defaults: flags, environment variables and Terraform's `names` may rename
//! topics and subscriptions (several copies of the topology in one project). Routes, budgets
//! and the delivery policies are not configurable.

use std::time::Duration;

/// Where callers publish copy requests.
pub const REQUESTS_TOPIC: &str = "copy-requests";
/// Watch messages, internal: one per running or pending copy.
pub const OPERATIONS_TOPIC: &str = "copy-operations";
/// Completion events, for downstream consumers (one subscription each).
pub const COMPLETIONS_TOPIC: &str = "copy-completions";
/// Dead letters, read back by `copy-worker replay`.
pub const DEAD_LETTER_TOPIC: &str = "copy-dead-letter";
/// Webhook callbacks, internal (docs/DESIGN.md §7).
pub const CALLBACKS_TOPIC: &str = "copy-callbacks";

/// Every topic of docs/DESIGN.md §2.
pub const TOPICS: [&str; 5] = [
    REQUESTS_TOPIC,
    OPERATIONS_TOPIC,
    COMPLETIONS_TOPIC,
    DEAD_LETTER_TOPIC,
    CALLBACKS_TOPIC,
];

/// Cloud Run's probes; they reach the container directly (docs/DESIGN.md §10).
pub const HEALTHZ_ROUTE: &str = "/healthz";
/// The same check through the service URL, where Cloud Run keeps paths ending in `z`.
pub const HEALTH_ROUTE: &str = "/health";
/// Pushes of `copy-requests-push`.
pub const REQUESTS_ROUTE: &str = "/pubsub/copy-requests";
/// Pushes of `copy-operations-push`.
pub const OPERATIONS_ROUTE: &str = "/pubsub/copy-operations";
/// Pushes of `copy-callbacks-push`.
pub const CALLBACKS_ROUTE: &str = "/pubsub/copy-callbacks";
/// Dispatches of the copy-start queue (docs/DESIGN.md §10, "Copy starts").
pub const COPY_STARTS_ROUTE: &str = "/tasks/copy-starts";
/// Direct callers (docs/DESIGN.md §7).
pub const DIRECT_COPY_ROUTE: &str = "/v1/models/copy";

/// The longest a request-stage (and callback-stage) delivery may take, everything included:
/// inside the 60 s ack deadline of its subscription with [`ACK_MARGIN`] to spare.
pub const REQUEST_STAGE_BUDGET: Duration = Duration::from_secs(45);

/// What an ack deadline must leave above the worker's budget: the time between Pub/Sub
/// sending a push and the handler starting (cold start, queueing), and the answer's way back
/// (docs/DESIGN.md §13).
pub const ACK_MARGIN: Duration = Duration::from_secs(15);

/// Pub/Sub's smallest `max_delivery_attempts` in a dead-letter policy.
pub const MIN_DELIVERY_ATTEMPTS: i32 = 5;

/// Deliveries before a dead-lettering subscription gives up (Terraform's default, and the
/// worker's `CALLBACK_MAX_ATTEMPTS` default).
pub const MAX_DELIVERY_ATTEMPTS: i32 = 10;

/// How long the worker's subscriptions keep a message: 7 days.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What one delivery of a push subscription may take inside the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// A fixed budget, whatever the configuration.
    Fixed(Duration),
    /// The usable share of `COPY_OPERATIONS_ACK_DEADLINE` (`pipeline::deadline::usable`),
    /// which is this subscription's ack deadline as the worker is told it.
    OperationsAckDeadline,
}

/// Where a subscription's undeliverable messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetter {
    /// No dead-letter policy: a long copy is delivered hundreds of times, and the worker
    /// ends it at `COPY_MAX_DURATION` itself.
    None,
    /// To [`DEAD_LETTER_TOPIC`] after [`MAX_DELIVERY_ATTEMPTS`], and never before `floor`.
    ToDeadLetterTopic { floor: AttemptFloor },
}

/// The fewest delivery attempts a dead-letter policy may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptFloor {
    /// [`MIN_DELIVERY_ATTEMPTS`].
    PubSubMinimum,
    /// The worker's `CALLBACK_MAX_ATTEMPTS`: the worker decides first and names the
    /// receiver's last answer, the policy is the backstop.
    CallbackMaxAttempts,
}

/// One of the worker's push subscriptions (docs/DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushSubscription {
    /// Default name.
    pub name: &'static str,
    /// Default name of the topic it is attached to.
    pub topic: &'static str,
    /// Path of its push endpoint on the worker.
    pub route: &'static str,
    /// The stage that answers its pushes, as docs/DESIGN.md §1 names it.
    pub stage: &'static str,
    /// Its ack deadline as deployed (Terraform's default).
    pub ack_deadline: Duration,
    /// The Terraform variable that sets that ack deadline.
    pub ack_variable: &'static str,
    /// Its retry policy's minimum and maximum backoff.
    pub backoff: (Duration, Duration),
    /// What the worker may spend on one delivery; the ack deadline covers it plus
    /// [`ACK_MARGIN`].
    pub budget: Budget,
    pub dead_letter: DeadLetter,
}

/// A pull subscription the worker's tools read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullSubscription {
    /// Default name.
    pub name: &'static str,
    /// Default name of the topic it is attached to.
    pub topic: &'static str,
    pub ack_deadline: Duration,
    /// How long it keeps a message.
    pub retention: Duration,
}

/// The request stage's subscription.
pub const REQUESTS_PUSH: PushSubscription = PushSubscription {
    name: "copy-requests-push",
    topic: REQUESTS_TOPIC,
    route: REQUESTS_ROUTE,
    stage: "request",
    ack_deadline: Duration::from_secs(60),
    ack_variable: "requests_ack_deadline_seconds",
    backoff: (Duration::from_secs(10), Duration::from_secs(600)),
    budget: Budget::Fixed(REQUEST_STAGE_BUDGET),
    dead_letter: DeadLetter::ToDeadLetterTopic {
        floor: AttemptFloor::PubSubMinimum,
    },
};

/// The watch stage's subscription. Its retry backoff spaces only refused deliveries: in the
/// steady state a watch continues as a new message (docs/DESIGN.md §1).
pub const OPERATIONS_PUSH: PushSubscription = PushSubscription {
    name: "copy-operations-push",
    topic: OPERATIONS_TOPIC,
    route: OPERATIONS_ROUTE,
    stage: "watch",
    ack_deadline: Duration::from_secs(300),
    ack_variable: "operations_ack_deadline_seconds",
    backoff: (Duration::from_secs(10), Duration::from_secs(60)),
    budget: Budget::OperationsAckDeadline,
    dead_letter: DeadLetter::None,
};

/// The callback stage's subscription: delivered like `copy-requests-push`, with the same
/// Terraform variables.
pub const CALLBACKS_PUSH: PushSubscription = PushSubscription {
    name: "copy-callbacks-push",
    topic: CALLBACKS_TOPIC,
    route: CALLBACKS_ROUTE,
    stage: "callback",
    ack_deadline: Duration::from_secs(60),
    ack_variable: "requests_ack_deadline_seconds",
    backoff: (Duration::from_secs(10), Duration::from_secs(600)),
    budget: Budget::Fixed(REQUEST_STAGE_BUDGET),
    dead_letter: DeadLetter::ToDeadLetterTopic {
        floor: AttemptFloor::CallbackMaxAttempts,
    },
};

/// Every push subscription, in the order `doctor` checks them.
pub const PUSH_SUBSCRIPTIONS: [PushSubscription; 3] =
    [REQUESTS_PUSH, OPERATIONS_PUSH, CALLBACKS_PUSH];

/// What `copy-worker replay` reads. A topic without a subscription drops what is published
/// to it, so this one must always exist.
pub const DEAD_LETTER_REPLAY: PullSubscription = PullSubscription {
    name: "copy-dead-letter-replay",
    topic: DEAD_LETTER_TOPIC,
    ack_deadline: Duration::from_secs(60),
    retention: RETENTION,
};

#[cfg(test)]
pub(crate) mod hcl;
#[cfg(test)]
mod terraform;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fixed_budget_leaves_the_margin_inside_its_ack_deadline() {
        for s in PUSH_SUBSCRIPTIONS {
            if let Budget::Fixed(b) = s.budget {
                assert!(b + ACK_MARGIN <= s.ack_deadline, "{}", s.name);
            }
        }
    }
}
