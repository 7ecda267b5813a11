//! Exit codes of every subcommand, named once.

/// Done (and, where the command waits, every request succeeded).
pub const OK: u8 = 0;
/// Something failed: a request ended `failed` or `rejected`, the worker stopped on an error,
/// or `replay` could not read its subscription.
pub const FAILED: u8 = 1;
/// Usage, configuration or validation error: nothing was done.
pub const USAGE: u8 = 2;
/// A wait timed out before every request had a completion event.
pub const TIMEOUT: u8 = 3;
/// Pub/Sub refused or could not be reached while publishing (or pulling, for `publish --wait`).
pub const PUBSUB: u8 = 4;
