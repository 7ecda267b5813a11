//! The hostile-input probe of issue 28, replayed: each test quotes the probe it repeats and
//! asserts the worker now holds.
//!
//! - [`names`]: forged resource names never become a host the worker connects to.
//! - [`publish`]: a publish Pub/Sub refuses for good is classified as permanent.
//! - [`lows`]: a doubled query parameter or token header.
//! - [`slow`]: slow-loris connections are closed, and their number is bounded.
//! - [`trust`]: `PUSH_AUTH=cloud-run` accepts stripped tokens only while its own service's
//!   invoker check is confirmed on.

mod lows;
mod names;
mod publish;
mod slow;
mod trust;
