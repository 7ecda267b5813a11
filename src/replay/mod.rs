//! `copy-worker replay`: moves dead-lettered requests back to `copy-requests` with no loss
//! (DESIGN.md §6). Parse the flags, run the loop, answer with a JSON summary.
//!
//! - [`rules`]: filters, the `--max-replays` guard, and the attributes of the republished copy.
//! - [`pace`]: `--rate`, held over the whole run.
//! - [`plan`]: the resolved run, its errors and its clients.
//! - [`pump`]: the loop that pulls, republishes, and acks only after the publish.
//! - [`summary`]: counts, the dry-run grouping, progress and the JSON summary.

mod pace;
mod plan;
mod pump;
mod rules;
mod summary;

use std::time::Duration;

pub use plan::{Plan, ReplayError};
pub use rules::{Rules, Verdict, republished};
pub use summary::Summary;

use crate::topics::{Connection, full_subscription, full_topic};

/// Flags of `copy-worker replay`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct ReplayArgs {
    /// Dead-letter subscription to read: a short name or projects/P/subscriptions/S.
    #[arg(long, default_value = "copy-dead-letter-replay")]
    pub subscription: String,
    /// Topic to republish to: a short name or projects/P/topics/T.
    #[arg(long, env = "COPY_REQUESTS_TOPIC", default_value = "copy-requests")]
    pub topic: String,
    /// Project of short subscription and topic names.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    pub project: Option<String>,
    /// Replay only this request id (repeatable: any of them).
    #[arg(long = "request-id", value_name = "ID")]
    pub request_ids: Vec<String>,
    /// Replay only dead letters with this error_code, e.g. NOT_FOUND (repeatable: any of them).
    #[arg(long = "error-code", value_name = "CODE")]
    pub error_codes: Vec<String>,
    /// Replay only dead letters with this attribute value (repeatable: all of them).
    #[arg(long = "attribute", value_name = "K=V", value_parser = rules::parse_key_value)]
    pub attributes: Vec<(String, String)>,
    /// Stop after this many matching dead letters.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Republish at most this many messages per second, averaged over the whole run.
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Leave dead letters that were already replayed this often in place (loop guard).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_replays: u32,
    /// Stop after this long without a dead letter not seen before.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Ack and republish nothing; report what would be replayed, grouped by error_code.
    #[arg(long)]
    pub dry_run: bool,
    /// Pub/Sub emulator host:port; used anonymously.
    #[arg(long, env = "PUBSUB_EMULATOR_HOST", hide = true)]
    pub pubsub_emulator_host: Option<String>,
}

const EXAMPLES: &str = "\
Examples:
  # What would be replayed? Counts by error_code and sample request ids; nothing is acked:
  copy-worker replay --dry-run

  # Replay the requests that failed because their source model was missing:
  copy-worker replay --error-code NOT_FOUND

  # Replay two requests, at most 5 messages a second:
  copy-worker replay --request-id nightly-2026-11-22 --request-id nightly-2026-11-23 --rate 5

  # Replay the first 100 dead letters of one pipeline into another project's topic:
  copy-worker replay --attribute pipeline=nightly --limit 100 \\
    --topic projects/other-proj/topics/copy-requests

  # Against the Pub/Sub emulator:
  PUBSUB_EMULATOR_HOST=127.0.0.1:8085 GOOGLE_CLOUD_PROJECT=local copy-worker replay

Each dead letter is acked only after its republish returned a message id. Skipped messages
are handed back untouched. stdout gets one JSON summary:
  {\"replayed\", \"skipped_filter\", \"skipped_max_replays\", \"failed\", \"elapsed_s\", ...}

Exit codes: 0 done; 1 the subscription could not be read; 2 usage; 4 a republish failed (the
run stopped and every dead letter not yet replayed was left in place).";

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of messages per second"
        )),
    }
}

/// Full `projects/P/subscriptions/S` from a short or full name.
impl ReplayArgs {
    /// Resolves names against the project; the error names the flag to fix.
    pub fn plan(&self) -> Result<Plan, String> {
        let project = self.project.as_deref().filter(|p| !p.is_empty());
        Ok(Plan {
            subscription: full_subscription(&self.subscription, project)
                .map_err(|e| format!("--subscription: {e}"))?,
            topic: full_topic(&self.topic, project).map_err(|e| format!("--topic: {e}"))?,
            rules: Rules {
                request_ids: self.request_ids.clone(),
                error_codes: self.error_codes.clone(),
                attributes: self.attributes.clone(),
                max_replays: self.max_replays,
            },
            limit: self.limit,
            rate: self.rate,
            idle_timeout: self.idle_timeout,
            dry_run: self.dry_run,
            conn: Connection {
                emulator_host: self.pubsub_emulator_host.clone().filter(|h| !h.is_empty()),
            },
        })
    }
}

/// Runs the command; returns the process exit code. The JSON summary is printed even when the
/// run stopped on an error, so a caller always learns what was moved.
pub async fn run(args: ReplayArgs) -> u8 {
    let plan = match args.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("copy-worker replay: {e}");
            return 2;
        }
    };
    let (summary, result) = plan::run(plan).await;
    println!("{}", summary.to_json());
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("copy-worker replay: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_names_expand_like_topic_names() {
        assert_eq!(
            full_subscription("copy-dead-letter-replay", Some("p")).unwrap(),
            "projects/p/subscriptions/copy-dead-letter-replay"
        );
        assert_eq!(
            full_subscription("projects/q/subscriptions/s", None).unwrap(),
            "projects/q/subscriptions/s"
        );
        let e = full_subscription("s", None).unwrap_err();
        assert!(
            e.contains("GOOGLE_CLOUD_PROJECT") && e.contains("subscription"),
            "{e}"
        );
        assert!(full_subscription("projects/q/snapshots/s", Some("p")).is_err());
    }

    #[test]
    fn rate_must_be_a_positive_number() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["0", "-1", "NaN", "inf", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
