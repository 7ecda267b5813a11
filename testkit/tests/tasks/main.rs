//! Proves that the Cloud Tasks fake behaves as Google documents it, by driving it with the
//! official `google-cloud-tasks-v2` client only, and receiving its dispatches on a small axum
//! server.

mod api;
mod dispatch;
mod retries;
mod support;
