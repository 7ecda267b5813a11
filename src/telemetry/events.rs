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
/// Target of the events of the Vertex AI request budget.
const QUOTA: &str = "copy_worker::pipeline::quota";

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
pub const COUNTED: [(&str, &str); 3] = [
    (CopyStarted::METRIC, CopyStarted::MESSAGE),
    (CompletionPublished::METRIC, CompletionPublished::MESSAGE),
    (VertexQuotaExhausted::METRIC, VertexQuotaExhausted::MESSAGE),
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

/// Vertex AI answered RESOURCE_EXHAUSTED (429): a start answers 503 so that its queue backs
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

#[cfg(test)]
mod tests;
