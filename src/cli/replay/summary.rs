//! What a replay run reports: counts, the dry-run grouping, the progress bar on stderr and the
//! JSON summary on stdout.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Request ids listed per error code in a dry run.
const SAMPLE_SIZE: usize = 5;

/// Counts of one run. Every dead letter is counted once, by message id, however often it is
/// delivered.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Republished and acked.
    pub replayed: u64,
    /// Handed back: did not match the filters.
    pub skipped_filter: u64,
    /// Handed back: already replayed `--max-replays` times.
    pub skipped_max_replays: u64,
    /// Handed back: a new dead letter of a request this run already replayed (it failed
    /// again while the run was still reading). One run replays a request once.
    pub skipped_replayed_this_run: u64,
    /// Republish failed; the dead letter was handed back.
    pub failed: u64,
    /// Wall-clock time of the run.
    pub elapsed_s: f64,
    /// Distinct dead letters seen.
    pub seen: u64,
    /// Deliveries of a message this run had already replayed; acked again, not republished.
    pub redelivered_after_replay: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRun>,
    /// Why the run stopped early, when it did (the same text as on stderr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `--dry-run`: what would be replayed, grouped by `error_code`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DryRun {
    pub would_replay: u64,
    pub by_error_code: BTreeMap<String, Group>,
}

/// One `error_code` of a dry run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Group {
    pub count: u64,
    pub sample_request_ids: Vec<String>,
}

impl DryRun {
    /// Records a message that would be replayed. Messages without `error_code` (for example
    /// those Pub/Sub dead-lettered on its own) are grouped under `(none)`.
    pub fn record(&mut self, error_code: Option<&str>, request_id: Option<String>) {
        self.would_replay += 1;
        let group = self
            .by_error_code
            .entry(error_code.unwrap_or("(none)").to_owned())
            .or_default();
        group.count += 1;
        if group.sample_request_ids.len() < SAMPLE_SIZE {
            group
                .sample_request_ids
                .push(request_id.unwrap_or_else(|| "(unknown)".into()));
        }
    }
}

impl Summary {
    /// Messages that matched the filters (replayed, failed, or would be replayed).
    pub fn matched(&self) -> u64 {
        self.replayed + self.failed + self.dry_run.as_ref().map_or(0, |d| d.would_replay)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("summary serializes")
    }
}

/// The progress line on stderr, drawn only when stderr is a terminal.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .expect("progress template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { bar }
    }

    pub fn update(&self, s: &Summary, elapsed: Duration) {
        if self.bar.is_hidden() {
            return;
        }
        let done = s.replayed + s.failed + s.dry_run.as_ref().map_or(0, |d| d.would_replay);
        let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "done {done} / matched {} / skipped {} / {rate:.1} msg/s",
            s.matched(),
            s.skipped_filter + s.skipped_max_replays + s.skipped_replayed_this_run,
        ));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_groups_by_error_code_and_keeps_a_short_sample() {
        let mut d = DryRun::default();
        for i in 0..7 {
            d.record(Some("NOT_FOUND"), Some(format!("r{i}")));
        }
        d.record(None, None);
        assert_eq!(d.would_replay, 8);
        assert_eq!(d.by_error_code["NOT_FOUND"].count, 7);
        assert_eq!(
            d.by_error_code["NOT_FOUND"].sample_request_ids,
            ["r0", "r1", "r2", "r3", "r4"]
        );
        assert_eq!(d.by_error_code["(none)"].sample_request_ids, ["(unknown)"]);
    }

    #[test]
    fn summary_json_has_the_fields_of_the_design() {
        let s = Summary {
            replayed: 3,
            ..Summary::default()
        };
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        for key in [
            "replayed",
            "skipped_filter",
            "skipped_max_replays",
            "skipped_replayed_this_run",
            "failed",
            "elapsed_s",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        assert_eq!(v["replayed"], 3);
        assert!(v.get("dry_run").is_none());
    }
}
