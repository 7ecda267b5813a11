//! Exit codes of every subcommand, named once.

/// Done (and, where the command waits, every request succeeded).
pub const OK: u8 = 0;
/// Something failed: a request ended `failed` or `rejected`, or a `doctor` check failed.
pub const FAILED: u8 = 1;
/// Usage, configuration or validation error, or no usable Google credentials: nothing was
/// done.
pub const USAGE: u8 = 2;
/// A wait timed out before every request had a completion event.
pub const TIMEOUT: u8 = 3;
/// Pub/Sub refused or could not be reached: publishing, pulling (`publish --wait`, `events`,
/// `replay`), or a topic or subscription that does not exist.
pub const PUBSUB: u8 = 4;
