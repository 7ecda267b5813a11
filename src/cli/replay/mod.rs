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

use tokio::time::Instant;

pub use plan::{Plan, ReplayError};
pub use rules::Rules;
pub use summary::Summary;

use self::pump::Pump;
use self::summary::DryRun;
use super::args::{PubSubArgs, parse_duration};
use super::exit;
use crate::clients::pubsub::{full_subscription, full_topic};

/// Flags of `copy-worker replay`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
#[command(mut_args(crate::config::topics::spelled_topic(
    "requests_topic",
    "Topic to republish requests to: a short name or projects/P/topics/T"
)))]
#[command(mut_args(crate::config::topics::described(
    "callbacks_topic",
    "Topic to republish callbacks to (with --callbacks)"
)))]
pub struct ReplayArgs {
    /// Dead-letter subscription to read: a short name or projects/P/subscriptions/S.
    #[arg(
        long,
        env = "COPY_DEAD_LETTER_SUBSCRIPTION",
        default_value = "copy-dead-letter-replay"
    )]
    pub subscription: String,
    #[command(flatten)]
    pub topic: crate::config::topics::RequestsTopic,
    /// Replay dead-lettered webhook callbacks (failed_stage=callback) to --callbacks-topic,
    /// instead of requests to --topic. A run moves one kind only; the other is left in place.
    #[arg(long)]
    pub callbacks: bool,
    #[command(flatten)]
    pub callbacks_topic: crate::config::topics::CallbacksTopic,
    #[command(flatten)]
    pub pubsub: PubSubArgs,
    /// Replay only this request id (repeatable: any of them).
    #[arg(long = "request-id", value_name = "ID")]
    pub request_ids: Vec<String>,
    /// Replay only dead letters with this error_code, e.g. NOT_FOUND (repeatable: any of them).
    #[arg(long = "error-code", value_name = "CODE")]
    pub error_codes: Vec<String>,
    /// Replay only dead letters with this attribute value (repeatable: all of them).
    #[arg(long = "attribute", value_name = "K=V", value_parser = rules::parse_key_value)]
    pub attributes: Vec<(String, String)>,
    /// Replay only requests whose `context` has this pair, as given to `publish --context`
    /// (repeatable, or comma-separated: all of them).
    #[arg(long = "context", value_name = "K=V", value_delimiter = ',', value_parser = rules::parse_key_value)]
    pub context: Vec<(String, String)>,
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
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Ack and republish nothing; report what would be replayed, grouped by error_code.
    #[arg(long)]
    pub dry_run: bool,
}

const EXAMPLES: &str = "\
Examples:
  # What would be replayed? Counts by error_code and sample request ids; nothing is acked:
  copy-worker replay --dry-run

  # Replay the requests that failed because their source model was missing:
  copy-worker replay --error-code NOT_FOUND

  # Replay two requests, at most 5 messages a second:
  copy-worker replay --request-id nightly-2026-11-22 --request-id nightly-2026-11-23 --rate 5

  # Replay the first 100 dead letters of one pipeline (publish --context pipeline=nightly)
  # into another project's topic:
  copy-worker replay --context pipeline=nightly --limit 100 \\
    --topic projects/other-proj/topics/copy-requests

  # Webhook callbacks whose receiver refused them, once the receiver is fixed:
  copy-worker replay --callbacks --error-code CALLBACK_REJECTED

  # Against the local stack (cargo run --example demo -- --keep, then its export line):
  copy-worker replay --idle-timeout 5s

Each dead letter is acked only after its republish returned a message id. Skipped messages
are handed back untouched. stdout gets one JSON summary:
  {\"replayed\", \"skipped_filter\", \"skipped_max_replays\", \"skipped_replayed_this_run\",
   \"failed\", \"elapsed_s\", ...}
A request that fails again while the run is still reading comes back as a new dead letter;
the run leaves it in place (skipped_replayed_this_run): one run replays a request once.

Ctrl-C or SIGTERM stops the run: the republishes under way finish and are acked, every other
dead letter stays in place, and the summary's \"error\" says so; run the same command again to
carry on.

Exit codes: 0 done; 2 usage; 3 interrupted (Ctrl-C or SIGTERM); 4 Pub/Sub error: the emulator
or the subscription could not be reached, the target topic does not exist (checked before
reading), or a republish failed (the run stopped and every dead letter not yet replayed was
left in place). The summary then has an \"error\" field.";

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of messages per second"
        )),
    }
}

impl ReplayArgs {
    /// Resolves names against the project; the error names the flag to fix.
    pub fn plan(&self) -> Result<Plan, String> {
        let project = self.pubsub.project();
        Ok(Plan {
            subscription: full_subscription(&self.subscription, project)
                .map_err(|e| format!("--subscription: {e}"))?,
            topic: if self.callbacks {
                full_topic(&self.callbacks_topic, project)
                    .map_err(|e| format!("--callbacks-topic: {e}"))?
            } else {
                full_topic(&self.topic, project).map_err(|e| format!("--topic: {e}"))?
            },
            rules: Rules {
                request_ids: self.request_ids.clone(),
                error_codes: self.error_codes.clone(),
                attributes: self.attributes.clone(),
                context: self.context.clone(),
                max_replays: self.max_replays,
                callbacks: self.callbacks,
            },
            limit: self.limit,
            rate: self.rate,
            idle_timeout: self.idle_timeout,
            dry_run: self.dry_run,
            conn: self.pubsub.connection(),
        })
    }
}

/// Runs the command; returns the process exit code. The JSON summary is printed even when the
/// run stopped on an error, so a caller always learns what was moved.
pub async fn run(args: ReplayArgs) -> u8 {
    // SIGTERM (CI cancellation, `timeout`) stops a run as Ctrl-C does: what is in flight
    // finishes, the rest is handed back, and the summary is printed.
    crate::clients::interrupt::listen();
    let mut plan = match args.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("copy-worker replay: {e}");
            return exit::USAGE;
        }
    };
    // Credentials (exit 2), and an emulator that answers within seconds (exit 4).
    match super::args::connect("copy-worker replay", &args.pubsub).await {
        Ok(conn) => plan.conn = conn,
        Err(code) => return code,
    }
    let (mut summary, result) = execute(plan).await;
    summary.error = result.as_ref().err().map(ToString::to_string);
    println!("{}", summary.to_json());
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("copy-worker replay: {e}");
            e.exit_code()
        }
    }
}

/// Runs the plan. The summary is returned even when the run stopped on an error.
pub async fn execute(plan: Plan) -> (Summary, Result<(), ReplayError>) {
    let started = Instant::now();
    let mut summary = Summary {
        dry_run: plan.dry_run.then(DryRun::default),
        ..Summary::default()
    };
    let result = match plan::connect(&plan).await {
        Ok((subscriber, publisher)) => {
            let mut pump = Pump::new(plan, publisher, summary);
            let result = pump.run(&subscriber).await;
            summary = pump.into_summary();
            result
        }
        Err(e) => Err(e),
    };
    summary.elapsed_s = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    (summary, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_must_be_a_positive_number() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["0", "-1", "NaN", "inf", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
