//! The log lines other systems count (docs/DESIGN.md §13, "Monitoring"). Terraform's
//! log-based metrics (terraform/monitoring.tf) filter on their `message` and extract their
//! fields, so their text is part of the contract. Each is a type here with one `emit()`, in
//! the manner of vector's `internal_events`: a call site fills in fields and cannot misspell
//! the message, and a test holds the messages to monitoring.tf's filters.
//!
//! Each event keeps the target of the module that logged it before it moved here, so the
//! `target` of a JSON line and `RUST_LOG` directives stay as they were.

use std::fmt;
use std::time::Duration;

/// Target of the events the stages log when they hand something on.
const ANNOUNCE: &str = "copy_worker::pipeline::announce";
/// Target of the events of Vertex AI's quota.
const QUOTA: &str = "copy_worker::pipeline::quota";
/// Target of the events of the worker's start-up and its own checks.
const APP: &str = "copy_worker::app";

/// A log line a log-based metric counts.
pub trait CountedEvent {
    /// The line's `message`, as the metric's filter spells it.
    const MESSAGE: &'static str;
    /// The key of the metric in monitoring.tf's `log_metrics` (`SERVICE/KEY` in Cloud
    /// Logging).
    const METRIC: &'static str;
    /// Writes the line.
    fn emit(self);
}

/// Every counted event: (metric, message).
#[cfg(test)]
pub const COUNTED: [(&str, &str); 4] = [
    (CopyStarted::METRIC, CopyStarted::MESSAGE),
    (CompletionPublished::METRIC, CompletionPublished::MESSAGE),
    (VertexQuotaExhausted::METRIC, VertexQuotaExhausted::MESSAGE),
    (CloudRunTrustRefused::METRIC, CloudRunTrustRefused::MESSAGE),
];

/// A CopyModel operation was started (a first attempt or a restart) and the first poll task
/// of its chain is created.
pub struct CopyStarted<'a> {
    /// The id of the first poll task.
    pub poll_task: &'a str,
    /// 1 for the first attempt; the metric's label.
    pub attempt: u32,
}

impl CountedEvent for CopyStarted<'_> {
    const MESSAGE: &'static str = "copy started; first poll scheduled";
    const METRIC: &'static str = "copies_started";

    fn emit(self) {
        tracing::info!(target: ANNOUNCE, poll_task = %self.poll_task, attempt = self.attempt, "{}", Self::MESSAGE);
    }
}

/// A copy ended and its completion event is published.
pub struct CompletionPublished<'a> {
    /// `succeeded`, `failed` or `rejected`; the metric's label, which an alert watches.
    pub status: &'a str,
    /// The event's CloudEvents id.
    pub ce_id: &'a str,
}

impl CountedEvent for CompletionPublished<'_> {
    const MESSAGE: &'static str = "completion published";
    const METRIC: &'static str = "completions";

    fn emit(self) {
        tracing::info!(target: ANNOUNCE, status = self.status, ce_id = %self.ce_id, "{}", Self::MESSAGE);
    }
}

/// Vertex AI answered RESOURCE_EXHAUSTED (429): a start asks for a retry so that its queue backs
/// off, a poll schedules its next poll later.
pub struct VertexQuotaExhausted<'a> {
    pub project: &'a str,
    pub region: &'a str,
    /// What the call spent, `Copy` or `Read`: logged by its `Debug` name.
    pub kind: &'a dyn fmt::Debug,
    /// How long the copy waits before its next call.
    pub hold: Duration,
    /// Vertex AI's answer.
    pub error: &'a dyn fmt::Display,
}

impl CountedEvent for VertexQuotaExhausted<'_> {
    const MESSAGE: &'static str = "Vertex AI quota exhausted; slowing down";
    const METRIC: &'static str = "vertex_resource_exhausted";

    fn emit(self) {
        tracing::warn!(target: QUOTA, project = self.project, region = self.region, kind = ?self.kind, hold_s = self.hold.as_secs(), error.message = %self.error, "{}", Self::MESSAGE);
    }
}

/// `PUSH_AUTH=cloud-run` cannot trust Cloud Run's invoker check (DESIGN.md §11): a read of the
/// worker's own service found it off or open to everyone, or could not read it. Until a read
/// confirms it, every signature-removed token (every push) is refused with 401; an alert
/// watches this line.
pub struct CloudRunTrustRefused<'a> {
    /// `projects/P/locations/L/services/S`.
    pub service: &'a str,
    /// `invoker_check_off`, `public_invoker` or `unreadable`; the metric's label.
    pub reason: &'a str,
    /// What was found, and what to do.
    pub cause: &'a str,
}

impl CountedEvent for CloudRunTrustRefused<'_> {
    const MESSAGE: &'static str =
        "Cloud Run invoker check not confirmed; signature-removed tokens refused";
    const METRIC: &'static str = "cloud_run_trust_refused";

    fn emit(self) {
        tracing::error!(target: APP, service = self.service, reason = self.reason, error.message = %self.cause, "{}", Self::MESSAGE);
    }
}

#[cfg(test)]
mod tests;
