//! `copy-worker status REQUEST_ID…` (DESIGN.md §6): what happened to requests published
//! earlier. It reads `copy-completions` through a new subscription of its own, seeked back to
//! `--since` ago, so the events the topic retains are found; it reads for `--read-for` (or until
//! every request has an event and no more come), prints each request's newest event, one
//! summary, and deletes the subscription.
//!
//! - [`lookup`]: the reading, which keeps every event of a request and picks the newest.

mod lookup;

use std::time::{Duration, SystemTime};

use serde_json::json;

use self::lookup::Looked;
use super::args::{PubSubArgs, parse_duration};
use super::exit;
use super::waiting::follow::{Counts, Followed, WaitOutcome, Waiting};
use super::waiting::own;
use crate::clients::pubsub::full_topic;
use crate::clients::temp_subscription::WaitSource;

const EXAMPLES: &str = "\
Examples:
  # What happened to last night's requests (events of the last 24 hours):
  copy-worker status --project my-proj --since 24h nightly-2026-11-22 nightly-2026-11-23

stdout gets each request's newest event (by event time) as one JSON line, then one summary:
  {\"status\":{\"requests\",\"succeeded\",\"failed\",\"rejected\",\"other_status\",\"not_found\",
   \"earlier_events\",\"since\"}}
A request with several events (a failed one, then after a replay a succeeded one) is judged by
its newest; \"earlier_events\" counts the others by request id, and stderr names their statuses.
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
    let looked = lookup::look_up(&conn, source.name(), &ids, args.read_for).await;
    if let WaitSource::Own(sub) = source
        && let Err(e) = sub.delete().await
    {
        eprintln!("{WHO}: warning: {e}");
    }
    match looked {
        Ok(looked) => {
            let f = answer(&looked, ids);
            println!("{}", summary(&f, &looked, since));
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

/// Prints each request's newest event, notes its earlier ones on stderr, and judges the
/// requests by their newest events.
fn answer(looked: &Looked, ids: Vec<String>) -> Followed {
    let mut waiting = Waiting::new(ids.clone());
    for id in &ids {
        let Some((newest, earlier)) = looked.newest(id) else {
            continue;
        };
        println!("{}", newest.line);
        waiting.judge(Some(id), newest.status.as_deref());
        if !earlier.is_empty() {
            eprintln!(
                "{WHO}: {id}: the newest of {} events is shown; earlier: {}",
                earlier.len() + 1,
                earlier.join(", ")
            );
        }
    }
    Followed {
        outcome: waiting.outcome(looked.interrupted),
        counts: Counts::default(),
        waiting,
    }
}

/// `{"status":{…}}`: the counts by newest event, the requests without an event, and how
/// many earlier events the others had.
fn summary(f: &Followed, looked: &Looked, since: SystemTime) -> serde_json::Value {
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
        "earlier_events": earlier_events(looked),
        "since": humantime::format_rfc3339_seconds(since).to_string(),
    }})
}

/// `{"id": n}` for each request with `n` events before its newest.
fn earlier_events(looked: &Looked) -> serde_json::Map<String, serde_json::Value> {
    looked
        .events
        .iter()
        .filter(|(_, all)| all.len() > 1)
        .map(|(id, all)| (id.clone(), (all.len() - 1).into()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = &summary(&f, &Looked::default(), at)["status"];
        assert_eq!(
            (s["requests"].as_u64(), s["succeeded"].as_u64()),
            (Some(3), Some(1))
        );
        assert_eq!(s["failed"], 1);
        assert_eq!(s["not_found"], json!(["c"]));
        assert_eq!(s["since"], "2027-01-15T08:00:00Z");
    }
}
