//! The outbound clients, each behind a small trait held in the app state so a test can swap
//! one. The integration tests still go through the real clients, against the Pub/Sub emulator
//! and testkit's Vertex AI fake.
//!
//! - [`vertex`]: CopyModel, operations, model reads, through the official client.
//! - [`admin_apis`]: what `doctor` reads of a deployment from Resource Manager, Logging and
//!   Monitoring.
//! - [`credentials`]: Application Default Credentials, checked before a command starts.
//! - [`interrupt`]: Ctrl-C and SIGTERM as one stop request for the CLI's long commands.
//! - [`lines`]: the CLI's line input (`--file`), read in bounded memory.
//! - [`pubsub`]: topic and subscription names, the connection, confirmed publishes, and
//!   the CLI's reader of a subscription.
//! - [`reach`]: one quick connection to an endpoint the user named, before relying on it.
//! - [`run_admin`]: the worker's own Cloud Run service, whose invoker check `cloud-run` trusts.
//! - [`tasks`]: the Cloud Tasks queue that paces copy starts for the whole deployment.
//! - [`temp_subscription`]: a waiter's own filtered, expiring subscription.
//! - [`webhook`]: signed callbacks to `callback_url` (Standard Webhooks).

pub(crate) mod admin_apis;
pub(crate) mod credentials;
pub(crate) mod interrupt;
pub(crate) mod lines;
pub(crate) mod pubsub;
pub(crate) mod reach;
pub(crate) mod run_admin;
pub(crate) mod tasks;
pub(crate) mod temp_subscription;
pub(crate) mod vertex;
pub(crate) mod webhook;

// The surface outside the crate: the Pub/Sub connection, the waiters' subscriptions, and
// the Vertex AI seam (the tests drive it against the testkit fake).
pub use pubsub::{Connection, OutMessage, PubSubTopics, PublishError, Topic, TopicNames, Topics};
pub use run_admin::{CloudRunAdmin, Trust};
pub use temp_subscription::{FilterBy, TempSubscription, WaiterTag};
pub use vertex::{GoogleVertex, OperationState, Vertex, VertexOptions};
