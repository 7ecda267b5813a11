//! Integration tests: one binary, one Pub/Sub emulator, a fresh project per test.
//!
//! Messages travel through the real emulator's push delivery into a worker served on a local
//! port, which calls the `testkit` Vertex AI fake through the official client.

mod auth;
mod bodies;
mod callbacks;
mod child;
mod cloud_run;
mod crash;
mod deadline;
mod doctor;
mod enqueue;
mod envelope_props;
mod events;
mod faults;
mod helpers;
mod hostile;
mod idempotency;
mod limits;
mod pipeline;
mod publish;
mod quotas;
mod readme;
mod receiver;
mod replay;
mod shutdown;
mod start_queue;
mod upstream_verifier;
mod waiter;
