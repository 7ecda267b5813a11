//! `copy-worker wait`: waiting for the completion events of requests published earlier. The
//! waiting itself is [`super::waiting`], which `publish --wait` and `status` share.
//!
//! - [`ids`]: the request ids of `--file`, and how far back a new subscription looks.

mod ids;

use std::time::{Duration, SystemTime};

use clap::Args;

use super::args::{PubSubArgs, parse_duration};
use super::exit;
use super::waiting::{finish, own};
use crate::clients::lines;
use crate::clients::pubsub::{Connection, full_subscription, full_topic};
use crate::clients::temp_subscription::{ABANDON_MARGIN, TempSubscription, WaitSource};
use crate::contract::request::MAX_REQUEST_BYTES;

const EXAMPLES: &str = "\
Examples:
  # Carry on after `publish --wait` timed out (exit 3): it printed this command, with the
  # subscription it kept so that no event is missed in between:
  copy-worker wait --subscription projects/my-proj/subscriptions/copy-worker-wait-3f2a9c1e0b7d4a58 \\
    --request-id nightly-2026-11-22,nightly-2026-11-23

  # Wait for what an earlier publish printed (its stdout, one JSON line per request):
  copy-worker publish --project my-proj --file requests.jsonl > published.jsonl
  copy-worker wait --project my-proj --file published.jsonl --timeout 2h

  # Through a shared pull subscription that already existed when the requests were published:
  copy-worker wait --completions-subscription copy-completions-ci --request-id nightly-2026-11-22

Without --subscription or --completions-subscription, it reads through a new subscription of
its own, seeked back to --since ago (with --file of publish's output: to its published_at), so
an event published before it started is found as long as copy-completions retains it (7 days
with the Terraform module; a topic without message retention keeps nothing for a new
subscription). stdout gets each event as one JSON line, then one summary:
  {\"summary\":{\"outcome\",\"requests\",\"succeeded\",\"failed\",\"rejected\",\"other_status\",\"pending\",
   \"subscription\",\"resume\"}}

Exit codes: 0 every request succeeded; 1 some failed or were rejected; 2 usage; 3 timeout,
Ctrl-C or SIGTERM (the summary's \"resume\" carries on, and a subscription of its own is kept
for it); 4 Pub/Sub error.";

/// Flags of `copy-worker wait`.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXAMPLES)]
#[command(mut_args(crate::config::topics::described(
    "completions_topic",
    "Topic of completion events, for a new subscription of its own"
)))]
pub struct WaitArgs {
    /// Request ids to wait for (repeatable, or comma-separated).
    #[arg(long = "request-id", value_name = "ID", value_delimiter = ',')]
    pub request_ids: Vec<String>,
    /// A file of request ids: publish's stdout (JSON lines with request_id), or one id a
    /// line; - for stdin.
    #[arg(long, value_name = "PATH")]
    pub file: Option<String>,
    /// A waiting subscription kept by `publish --wait` or `wait` (read as its own, deleted
    /// once every request has its event).
    #[arg(long, value_name = "S", conflicts_with = "completions_subscription")]
    pub subscription: Option<String>,
    /// A shared pull subscription of copy-completions (other waiters' events are handed back).
    #[arg(long, value_name = "S", env = "COPY_COMPLETIONS_SUBSCRIPTION")]
    pub completions_subscription: Option<String>,
    #[command(flatten)]
    pub completions_topic: crate::config::topics::CompletionsTopic,
    /// Project to create a new subscription of its own in (default: the topic's); see
    /// `publish --help`.
    #[arg(long, value_name = "P", env = "COPY_WAITER_PROJECT")]
    pub waiter_project: Option<String>,
    /// Give up after this long (exit 3).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// A new subscription of its own also finds the events published this long before the
    /// command started (it is seeked back; copy-completions retains 7 days). With --file of
    /// publish's output, it goes back to the earliest published_at instead.
    #[arg(long, value_name = "D", default_value = "1h", value_parser = parse_duration)]
    pub since: Duration,
    #[command(flatten)]
    pub pubsub: PubSubArgs,
}

const WHO: &str = "copy-worker wait";

/// Runs the command; returns the process exit code.
pub async fn run(args: WaitArgs) -> u8 {
    // SIGTERM (CI cancellation, `timeout`) ends the wait as Ctrl-C does.
    crate::clients::interrupt::listen();
    let mut ids: Vec<String> = args.request_ids.clone();
    let mut published_at = None;
    if let Some(path) = &args.file {
        let lines = lines::open(path, MAX_REQUEST_BYTES).map_err(|e| e.to_string());
        match lines.and_then(ids::ids_of) {
            Ok(file) => {
                ids.extend(file.ids);
                published_at = file.published_at;
            }
            Err(e) => {
                eprintln!("{WHO}: {e}");
                return exit::USAGE;
            }
        }
    }
    let since = ids::since(&args, published_at);
    ids.retain(|i| !i.is_empty());
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        eprintln!("{WHO}: no request ids: give --request-id ID or --file PATH");
        return exit::USAGE;
    }
    let conn = match super::args::connect(WHO, &args.pubsub).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    let source = match source(&args, &conn, &ids, since).await {
        Ok(source) => source,
        Err(code) => return code,
    };
    let mut stdout = std::io::stdout();
    finish::follow_and_finish(WHO, &conn, source, ids, args.timeout, &mut stdout).await
}

/// Where the wait reads: a kept subscription (`--subscription`), a shared one, or a new one
/// of its own. Err is the exit code, the reason already on stderr.
async fn source(
    args: &WaitArgs,
    conn: &Connection,
    ids: &[String],
    since: SystemTime,
) -> Result<WaitSource, u8> {
    let project = args.pubsub.project();
    let new = match (&args.subscription, &args.completions_subscription) {
        (Some(s), _) => return kept(args, conn, s).await,
        (None, Some(s)) => {
            return full_subscription(s, project)
                .map(WaitSource::Shared)
                .map_err(|e| usage(format!("--completions-subscription: {e}")));
        }
        (None, None) => {
            let topic = full_topic(&args.completions_topic, project)
                .map_err(|e| usage(format!("--completions-topic: {e}")))?;
            let project = own::waiter_project(&args.waiter_project, &topic).map_err(usage)?;
            WaitSource::New { topic, project }
        }
    };
    match own::open_since(WHO, conn, new, ids, args.timeout, since).await {
        Ok(source) => Ok(source),
        Err(e) => {
            eprintln!("{WHO}: {e}");
            Err(exit::PUBSUB)
        }
    }
}

/// A subscription kept by an earlier wait (`--subscription`), read as this wait's own.
async fn kept(args: &WaitArgs, conn: &Connection, s: &str) -> Result<WaitSource, u8> {
    let name = full_subscription(s, args.pubsub.project())
        .map_err(|e| usage(format!("--subscription: {e}")))?;
    match TempSubscription::existing(conn, &name).await {
        Ok(sub) => {
            // Left alone by other waiters' sweeps until this wait has given up too.
            let until = std::time::SystemTime::now() + args.timeout + ABANDON_MARGIN;
            own::keep_until(WHO, &sub, until).await; // best effort: it says so
            Ok(WaitSource::Own(sub))
        }
        Err(e) => {
            eprintln!("{WHO}: {e}");
            Err(exit::PUBSUB)
        }
    }
}

/// Says `e` on stderr; the exit code of a usage error.
fn usage(e: impl std::fmt::Display) -> u8 {
    eprintln!("{WHO}: {e}");
    exit::USAGE
}
