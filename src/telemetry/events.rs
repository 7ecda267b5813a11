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
const BUDGET: &str = "copy_worker::pipeline::budget";

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

/// A CopyModel operation was started (a first attempt or a restart) and the watch message
/// that follows it is published.
pub struct CopyStarted<'a> {
    /// Pub/Sub's id of the watch message.
    pub watch_message_id: &'a str,
    /// 1 for the first attempt; the metric's label.
    pub attempt: u32,
}

impl CountedEvent for CopyStarted<'_> {
    const MESSAGE: &'static str = "copy started; watch published";
    const METRIC: &'static str = "copies_started";

    fn emit(self) {
        tracing::info!(target: ANNOUNCE, watch_message_id = %self.watch_message_id, attempt = self.attempt, "{}", Self::MESSAGE);
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

/// Vertex AI answered RESOURCE_EXHAUSTED (429), and the instance holds the region back.
pub struct VertexQuotaExhausted<'a> {
    pub project: &'a str,
    pub region: &'a str,
    /// What the call spent, `Copy` or `Read`: logged by its `Debug` name.
    pub kind: &'a dyn fmt::Debug,
    /// How long the region is held back.
    pub hold: Duration,
    /// Vertex AI's answer.
    pub error: &'a dyn fmt::Display,
}

impl CountedEvent for VertexQuotaExhausted<'_> {
    const MESSAGE: &'static str = "Vertex AI quota exhausted; slowing down";
    const METRIC: &'static str = "vertex_resource_exhausted";

    fn emit(self) {
        tracing::warn!(target: BUDGET, project = self.project, region = self.region, kind = ?self.kind, hold_s = self.hold.as_secs(), error.message = %self.error, "{}", Self::MESSAGE);
    }
}

#[cfg(test)]
mod tests;
