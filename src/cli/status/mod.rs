//! `copy-worker status REQUEST_ID…` (DESIGN.md §6): what happened to requests published
//! earlier. It reads `copy-completions` through a new subscription of its own, seeked back to
//! `--since` ago, so the events the topic retains are found; it reads for `--read-for`, prints
//! each request's event, one summary, and deletes the subscription.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::args::{PubSubArgs, parse_duration};
use super::exit;
use super::wait::follow::{self, Followed, WaitOutcome};
use super::wait::own;
use crate::clients::pubsub::full_topic;
use crate::clients::temp_subscription::WaitSource;

const EXAMPLES: &str = "\
Examples:
  # What happened to last night's requests (events of the last 24 hours):
  copy-worker status --project my-proj --since 24h nightly-2026-11-22 nightly-2026-11-23

stdout gets each request's first event as one JSON line, then one summary:
  {\"status\":{\"requests\",\"succeeded\",\"failed\",\"rejected\",\"other_status\",\"not_found\",\"since\"}}
It finds what copy-completions still retains (7 days with the Terraform module); on a topic
without message retention it finds nothing published before it started.

Exit codes: 0 every request has an event and all succeeded; 1 some failed or were rejected;
2 usage; 3 some have no event since --since (or Ctrl-C, SIGTERM); 4 Pub/Sub error.";

/// Flags of `copy-worker status`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
#[command(mut_args(crate::config::topics::described(
    "completions_topic",
    "Topic of completion events"
)))]
pub struct StatusArgs {
    /// Request ids to look up (or comma-separated).
    #[arg(required = true, value_name = "REQUEST_ID", value_delimiter = ',')]
    pub request_ids: Vec<String>,
    /// Look at the events published since this long ago.
    #[arg(long, value_name = "D", default_value = "1h", value_parser = parse_duration)]
    pub since: Duration,
    /// Read for this long at most: a request without an event by then is "not_found".
    #[arg(long, value_name = "D", default_value = "15s", value_parser = parse_duration)]
    pub read_for: Duration,
    #[command(flatten)]
    pub completions_topic: crate::config::topics::CompletionsTopic,
    /// Project to create the temporary subscription in (default: the topic's).
    #[arg(long, value_name = "P", env = "COPY_WAITER_PROJECT")]
    pub waiter_project: Option<String>,
    #[command(flatten)]
    pub pubsub: PubSubArgs,
}

const WHO: &str = "copy-worker status";

/// Runs the command; returns the process exit code.
pub async fn run(args: StatusArgs) -> u8 {
    crate::clients::interrupt::listen();
    let mut ids = args.request_ids.clone();
    ids.retain(|i| !i.is_empty());
    ids.sort();
    ids.dedup();
    let conn = match super::args::connect(WHO, &args.pubsub).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    let topic = match full_topic(&args.completions_topic, args.pubsub.project()) {
        Ok(t) => t,
        Err(e) => return say(format!("--completions-topic: {e}"), exit::USAGE),
    };
    let project = match own::waiter_project(&args.waiter_project, &topic) {
        Ok(p) => p,
        Err(e) => return say(e, exit::USAGE),
    };
    let since = SystemTime::now() - args.since;
    let new = WaitSource::New { topic, project };
    let source = match own::open_since(WHO, &conn, new, &ids, args.read_for, since).await {
        Ok(s) => s,
        Err(e) => return say(e, exit::PUBSUB),
    };
    let mut stdout = std::io::stdout();
    let followed = follow::wait(&conn, &source, ids, args.read_for, &mut stdout).await;
    if let WaitSource::Own(sub) = source
        && let Err(e) = sub.delete().await
    {
        eprintln!("{WHO}: warning: {e}");
    }
    match followed {
        Ok(f) => {
            println!("{}", summary(&f, since));
            match f.outcome {
                WaitOutcome::AllSucceeded => exit::OK,
                WaitOutcome::SomeFailed => exit::FAILED,
                WaitOutcome::TimedOut { .. } | WaitOutcome::Interrupted { .. } => exit::TIMEOUT,
            }
        }
        Err(e) => say(e, exit::PUBSUB),
    }
}

/// Says `e` on stderr; returns `code`.
fn say(e: impl std::fmt::Display, code: u8) -> u8 {
    eprintln!("{WHO}: {e}");
    code
}

/// `{"status":{…}}`: the counts, and the requests without an event.
fn summary(f: &Followed, since: SystemTime) -> serde_json::Value {
    let w = &f.waiting;
    let not_found = match &f.outcome {
        WaitOutcome::TimedOut { pending } | WaitOutcome::Interrupted { pending } => pending.clone(),
        _ => vec![],
    };
    let known = w.count("succeeded") + w.count("failed") + w.count("rejected");
    json!({ "status": {
        "requests": w.total(),
        "succeeded": w.count("succeeded"),
        "failed": w.count("failed"),
        "rejected": w.count("rejected"),
        "other_status": w.finished() - known,
        "not_found": not_found,
        "since": humantime::format_rfc3339_seconds(since).to_string(),
    }})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::wait::follow::{Counts, Waiting};

    #[test]
    fn the_summary_counts_what_was_found_and_names_what_was_not() {
        let mut w = Waiting::new(["a", "b", "c"].map(String::from));
        w.judge(Some("a"), Some("succeeded"));
        w.judge(Some("b"), Some("failed"));
        let f = Followed {
            outcome: w.outcome(false),
            counts: Counts::default(),
            waiting: w,
        };
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let s = &summary(&f, at)["status"];
        assert_eq!(
            (s["requests"].as_u64(), s["succeeded"].as_u64()),
            (Some(3), Some(1))
        );
        assert_eq!(s["failed"], 1);
        assert_eq!(s["not_found"], json!(["c"]));
        assert_eq!(s["since"], "2027-01-15T08:00:00Z");
    }
}
