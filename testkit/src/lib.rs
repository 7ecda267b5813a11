//! Test harness for copy-worker: the official Pub/Sub emulator, a Vertex AI fake, and helpers.
//!
//! # Layout
//! - [`emulator`]: starts and kills the official Pub/Sub emulator (a JVM child process).
//! - [`pubsub`]: creates the topology of DESIGN.md §2 on the emulator, publishes, and collects
//!   messages of pull subscriptions ([`pubsub::Inbox`]), all with the official client.
//! - [`vertex`]: an HTTP fake of the Vertex AI ModelService REST surface with scriptable
//!   durations and faults, project numbers and quotas like the real service, checked against
//!   the official `google-cloud-aiplatform-v1` client.
//! - [`front`]: a push-window front, a reverse proxy that models Pub/Sub push flow control
//!   between the emulator's push subscriptions and the worker.
//! - [`cloud_run`]: a Cloud Run front: the IAM invoker check that verifies ID tokens and
//!   forwards them with the signature removed, and the token Pub/Sub attaches to a push.
//! - [`tasks`]: an HTTP fake of Cloud Tasks v2 for HTTP targets: tasks (create, get, delete,
//!   list) and queues (get, pause, resume) for the official `google-cloud-tasks-v2` client,
//!   dispatched as documented: schedule times, rate limits, concurrency caps, no order,
//!   duplicate deliveries on request, retries, `X-CloudTasks-*` headers and OIDC tokens.
//! - [`oidc`]: a local OIDC issuer: a JWKS over HTTP, RS256 ID tokens and hostile tokens.
//! - [`run_admin`]: a fake of the Cloud Run Admin API's reads of one service and its IAM
//!   policy, for `PUSH_AUTH=cloud-run`'s check of its own invoker setting.

pub mod cloud_run;
pub mod emulator;
pub mod front;
pub mod oidc;
pub mod pubsub;
pub mod run_admin;
pub mod tasks;
pub mod vertex;

pub use cloud_run::{CloudRunFront, CloudRunIam};
pub use emulator::Emulator;
pub use front::{PushFront, PushWindow, PushWindowStats};
pub use oidc::{IssuerKeys, JwksMode, OidcIssuer};
pub use pubsub::{Inbox, Received, Topology, TopologyOptions};
pub use run_admin::{RunAdminFake, RunService};
pub use tasks::{Dispatch, QueueConfig, TaskView, TasksFake};
pub use vertex::{Call, CopyScript, Fault, ModelSpecs, Quotas, Rpc, RpcCount, VertexFake};
