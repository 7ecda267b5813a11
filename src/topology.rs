//! The Pub/Sub topology, the two Cloud Tasks queues and the HTTP routes the worker is built
//! around (docs/DESIGN.md §2, §10, §11): topic, subscription and queue names, the route each
//! push subscription and queue posts to, its ack or dispatch deadline and the worker's time
//! budget inside it, and how the queues' rates derive from Vertex AI's quotas. The router, `copy-worker doctor`, testkit
//! and a test against `terraform/*.tf` (docs/DESIGN.md §12) all read this module, so a rename
//! on one side fails a test instead of a deployment.
//!
//! Names are the defaults: flags, environment variables and Terraform's `names` may rename
//! topics and subscriptions (several copies of the topology in one project). Routes, budgets
//! and the delivery policies are not configurable.

use std::time::Duration;

/// Where callers publish copy requests.
pub const REQUESTS_TOPIC: &str = "copy-requests";
/// Completion events, for downstream consumers (one subscription each).
pub const COMPLETIONS_TOPIC: &str = "copy-completions";
/// Dead letters, read back by `copy-worker replay`.
pub const DEAD_LETTER_TOPIC: &str = "copy-dead-letter";
/// Webhook callbacks, internal (docs/DESIGN.md §7).
pub const CALLBACKS_TOPIC: &str = "copy-callbacks";

/// Every topic of docs/DESIGN.md §2.
pub const TOPICS: [&str; 4] = [
    REQUESTS_TOPIC,
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
/// Pushes of `copy-callbacks-push`.
pub const CALLBACKS_ROUTE: &str = "/pubsub/copy-callbacks";
/// Dispatches of the copy-start queue (docs/DESIGN.md §10, "Copy starts").
pub const COPY_STARTS_ROUTE: &str = "/tasks/copy-starts";
/// Dispatches of the poll queue (docs/DESIGN.md §1, "The poll chain").
pub const COPY_POLLS_ROUTE: &str = "/tasks/copy-polls";
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

/// Where a subscription's undeliverable messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetter {
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
    pub budget: Duration,
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
    budget: REQUEST_STAGE_BUDGET,
    dead_letter: DeadLetter::ToDeadLetterTopic {
        floor: AttemptFloor::PubSubMinimum,
    },
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
    budget: REQUEST_STAGE_BUDGET,
    dead_letter: DeadLetter::ToDeadLetterTopic {
        floor: AttemptFloor::CallbackMaxAttempts,
    },
};

/// Every push subscription, in the order `doctor` checks them.
pub const PUSH_SUBSCRIPTIONS: [PushSubscription; 2] = [REQUESTS_PUSH, CALLBACKS_PUSH];

/// What `copy-worker replay` reads. A topic without a subscription drops what is published
/// to it, so this one must always exist.
pub const DEAD_LETTER_REPLAY: PullSubscription = PullSubscription {
    name: "copy-dead-letter-replay",
    topic: DEAD_LETTER_TOPIC,
    ack_deadline: Duration::from_secs(60),
    retention: RETENTION,
};

/// One of the worker's two Cloud Tasks queues (docs/DESIGN.md §10). Their rate limits are
/// the only pacers of Vertex AI calls for the whole deployment: no instance paces its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskQueue {
    /// Default queue id (the last segment of `projects/P/locations/L/queues/Q`).
    pub name: &'static str,
    /// Path its tasks are posted to on the worker.
    pub route: &'static str,
}

/// Copy starts: one CopyModel call per dispatch (and the reads that decide it), at
/// `vertex_copy_rate` a minute for the deployment.
pub const STARTS_QUEUE: TaskQueue = TaskQueue {
    name: "copy-starts",
    route: COPY_STARTS_ROUTE,
};

/// Polls: one GetOperation per dispatch, at the read rate the starts leave.
pub const POLLS_QUEUE: TaskQueue = TaskQueue {
    name: "copy-polls",
    route: COPY_POLLS_ROUTE,
};

/// The most Vertex AI reads one copy start makes besides its CopyModel call: the source's
/// GetModel (for its project number and version), the destination's GetModel or
/// ListModelVersions (a `parent_model` looks first), and one more read of the destination
/// when CopyModel answers ALREADY_EXISTS.
pub const READS_PER_START: f64 = 3.0;

/// Vertex AI's default quota of LRO submissions (CopyModel among them) a minute per project
/// and region (cloud.google.com/vertex-ai/docs/quotas), shared with the project's training
/// and batch jobs.
pub const VERTEX_DEFAULT_COPY_QUOTA: f64 = 60.0;

/// Vertex AI's default quota of resource-management requests (reads) a minute per project and
/// region (cloud.google.com/vertex-ai/docs/quotas).
pub const VERTEX_DEFAULT_READ_QUOTA: f64 = 600.0;

/// How long Cloud Tasks waits for the worker's answer to one dispatch (`dispatchDeadline`);
/// a stage answers within [`REQUEST_STAGE_BUDGET`].
pub const DISPATCH_DEADLINE: Duration = Duration::from_secs(60);

/// The poll queue's rate, in dispatches a minute: the read quota share that the starts'
/// own reads leave (`vertex_read_rate - READS_PER_START × vertex_copy_rate`). Terraform
/// computes the same (`tasks.tf`); `None` when the starts would use the whole read rate.
pub fn poll_rate_per_minute(read_rate: f64, copy_rate: f64) -> Option<f64> {
    let left = read_rate - READS_PER_START * copy_rate;
    (left > 0.0).then_some(left)
}

/// The topic and subscription of the previous release's watch messages, read only while an
/// upgrade drains them (`COPY_OPERATIONS_DRAIN`, docs/DESIGN.md "Upgrading"): each watch still
/// in flight becomes a poll task, so no copy is lost.
pub mod legacy {
    /// The old watch topic.
    pub const OPERATIONS_TOPIC: &str = "copy-operations";
    /// Its push subscription.
    pub const OPERATIONS_SUBSCRIPTION: &str = "copy-operations-push";
    /// Where that subscription pushes.
    pub const OPERATIONS_ROUTE: &str = "/pubsub/copy-operations";
}

#[cfg(test)]
mod terraform;
#[cfg(test)]
pub(crate) mod tf_files;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_budget_leaves_the_margin_inside_its_ack_deadline() {
        for s in PUSH_SUBSCRIPTIONS {
            assert!(s.budget + ACK_MARGIN <= s.ack_deadline, "{}", s.name);
        }
        assert!(REQUEST_STAGE_BUDGET + ACK_MARGIN <= DISPATCH_DEADLINE);
    }

    #[test]
    fn the_poll_queue_gets_the_reads_the_starts_leave() {
        // The defaults: half of Vertex AI's default quotas (600 reads, 60 CopyModel a minute).
        assert_eq!(poll_rate_per_minute(300.0, 30.0), Some(210.0));
        assert_eq!(poll_rate_per_minute(90.0, 30.0), None);
    }
}
