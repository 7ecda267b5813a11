//! copy-worker: copies Vertex AI models between projects and regions, driven by Pub/Sub.
//!
//! # Layout
//!
//! Each folder is one part of DESIGN.md; dependencies point down this list, never up.
//!
//! - [`cli`]: the command line (§6): `serve`, `publish`, `wait`, `status`, `replay`, `events`,
//!   `doctor`, `completions`, and exit codes.
//! - [`app`]: the composition root: builds the worker from its configuration and serves it
//!   until SIGTERM.
//! - [`config`]: the worker's configuration (§5), one clap group per concern, and the flags
//!   every command shares (the Pub/Sub project, the topics).
//! - [`http`]: the HTTP surface (§4, §7): push envelope, authentication middleware, the push
//!   and enqueue routes, and the one table from answer to status code.
//! - [`pipeline`]: the request, start, watch and callback stages (§1), returning named
//!   outcomes, and their decision tables (what follows each Vertex AI answer).
//! - [`clients`]: Vertex AI, Pub/Sub and webhooks, each behind a small trait.
//! - [`domain`]: resource names, destinations and the validated copy request (§3).
//! - [`contract`]: the wire contract (§3): attribute keys, the request JSON, the watch
//!   message, the completion event and the dead letter.
//! - [`retry`]: which errors are transient, the one failure class, and the in-request
//!   backoff (§4).
//! - [`topology`]: topic and subscription names, push routes, ack deadlines and the
//!   stages' budgets (§2, §11), which the router, `doctor`, testkit and Terraform agree on.
//! - [`telemetry`]: Cloud Logging JSON or text logs, and the typed log events Terraform's
//!   log-based metrics count.
//!
//! Submodules are crate-private; each folder re-exports, on purpose, what the binary, the
//! tests and the examples use. See docs/ARCHITECTURE.md for the path of one push delivery
//! through these modules and for the files a change touches.
//!
//! The module docs link the crate-private files a newcomer reads; build them with
//! `cargo doc --no-deps --document-private-items --open` (CI builds them so, warnings denied).

// The module docs link crate-private modules on purpose (see above).
#![allow(rustdoc::private_intra_doc_links)]

pub mod app;
pub mod cli;
pub mod clients;
pub mod config;
pub mod contract;
pub mod domain;
pub mod http;
pub mod pipeline;
pub mod retry;
pub mod telemetry;
pub mod topology;
