//! copy-worker: copies Vertex AI models between projects and regions, driven by Pub/Sub.
//!
//! # Layout
//!
//! - [`request`]: the copy request of DESIGN.md §3, parsed into types that are always valid.
//! - [`names`]: resource names (projects, models, KMS keys, operations) as parsing newtypes.
//! - [`push`]: the Pub/Sub push envelope, and the seam that authenticates pushes.
//! - [`oidc`]: verification of Google-signed OIDC tokens on pushes and direct callers.
//! - [`pipeline`]: the request stage and the watch stage, returning named outcomes.
//! - [`vertex`]: CopyModel, operations and existing-copy lookup through the official client.
//! - [`topics`]: publishers for the worker's topics; publishes are confirmed before acks.
//! - [`event`]: the completion event (CloudEvents attributes) and the dead-letter message.
//! - [`retry`]: which errors are transient, and the in-request backoff.
//! - [`callback`]: signed webhook callbacks after a completion.
//! - [`enqueue`]: `POST /v1/models/copy`, direct callers' requests published to `copy-requests`.
//! - [`server`]: the HTTP routes and the one table from outcome to status code.
//! - [`config`]: `serve`'s environment and flags, validated at start.
//! - [`telemetry`]: Cloud Logging JSON or text logs.
//! - [`serve`]: wires it all together and runs until SIGTERM.
//! - [`publish`]: `copy-worker publish`, submitting requests and waiting for their events.
//! - [`replay`]: `copy-worker replay`, moving dead letters back with no loss.

pub mod callback;
pub mod config;
pub mod enqueue;
pub mod event;
pub mod names;
pub mod oidc;
pub mod pipeline;
pub mod publish;
pub mod push;
pub mod replay;
pub mod request;
pub mod retry;
pub mod serve;
pub mod server;
pub mod telemetry;
pub mod topics;
pub mod vertex;
