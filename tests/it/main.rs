//! Integration tests: one binary, one Pub/Sub emulator, a fresh project per test.
//!
//! Messages travel through the real emulator's push delivery into a worker served on a local
//! port, which calls the `testkit` Vertex AI fake through the official client.

mod auth;
mod bin;
mod bodies;
mod callbacks;
mod chain;
mod child;
mod cli_input;
mod cloud_run;
mod crash;
mod doctor;
mod doctor_cloud_run;
mod enqueue;
mod envelope_props;
mod events;
mod examples;
mod faults;
mod help_examples;
mod helpers;
mod hostile;
mod idempotency;
mod limits;
mod lookup;
mod pipeline;
mod publish;
mod quotas;
mod readme;
mod receiver;
mod replay;
mod shutdown;
mod start_queue;
mod upgrade;
mod upstream_verifier;
mod waiter;
