//! Integration tests: one binary, one Pub/Sub emulator, a fresh project per test.
//!
//! Messages travel through the real emulator's push delivery into a worker served on a local
//! port, which calls the `testkit` Vertex AI fake through the official client.

mod auth;
mod bodies;
mod envelope_props;
mod helpers;
mod pipeline;
mod upstream_verifier;

mod publish;
mod replay;
