//! Waiting for completion events, the code that `wait`, `publish --wait` and `status` share
//! (sibling commands share through this module, never through each other).
//!
//! - [`follow`]: reading events until every awaited request has one.
//! - [`finish`]: the summary, the exit code, and keeping or deleting the subscription.
//! - [`own`]: sweeping away dead waiters' subscriptions, seeking a new one back, and moving
//!   a kept one's `expires`.

pub(crate) mod finish;
pub(crate) mod follow;
pub(crate) mod own;
