//! `copy-worker events`: tail `copy-completions` through a temporary subscription of its own
//! (`clients::temp_subscription`, shared with `publish --wait`), filtered on the event's
//! plain attributes, expiring after a day and deleted on exit, and read with the CLI's one
//! reader (`clients::pubsub::read`).

use std::io::Write;
use std::ops::ControlFlow;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::args::{PubSubArgs, parse_duration};
use super::exit;
use crate::clients::pubsub::full_topic;
use crate::clients::pubsub::read::{Consume, Lease, ReadError, Reader, Received};
use crate::clients::temp_subscription::{EventFilter, FilterBy, TempSubscription};

const EXAMPLES: &str = "\
Examples:
  # Follow every completion event as it is published (Ctrl-C to stop):
  copy-worker events --project my-proj --follow --format table

  # The failed copies into one destination project, then exit after 2 quiet minutes:
  copy-worker events --project my-proj --status failed --destination-project ml-serving \\
    --idle-timeout 2m

  # One request's events as JSON lines, for jq:
  copy-worker events --project my-proj --request-id nightly-2026-11-22 | jq .status

Only events published after the command starts are shown: it reads through a temporary
subscription of its own on copy-completions (filtered, expiring after a day, deleted on exit),
so it never takes events from other subscribers. It needs pubsub.subscriptions.create/get/
consume/delete on the project and pubsub.topics.attachSubscription on the topic (Terraform:
publisher_can_wait). The local emulator does not apply subscription filters; the filters are
also applied here, so the output is the same.

Exit codes: 0 done (idle timeout, --limit reached, Ctrl-C or SIGTERM); 2 usage; 4 Pub/Sub error.";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object a line: the event's data.
    Json,
    /// One aligned line per event: time, status, request id, destination or error.
    Table,
}

/// Flags of `copy-worker events`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
#[command(mut_args(crate::config::topics::spelled_topic(
    "completions_topic",
    "Topic of completion events, short or projects/P/topics/T"
)))]
pub struct EventsArgs {
    #[command(flatten)]
    pub topic: crate::config::topics::CompletionsTopic,
    #[command(flatten)]
    pub pubsub: PubSubArgs,
    /// Only events with this status (repeatable: any of them).
    #[arg(long, value_parser = ["succeeded", "failed", "rejected"])]
    pub status: Vec<String>,
    /// Only events of this request id (repeatable: any of them).
    #[arg(long = "request-id", value_name = "ID")]
    pub request_ids: Vec<String>,
    /// Only events whose destination project is this (as the request named it).
    #[arg(long, value_name = "P")]
    pub destination_project: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// Keep reading until Ctrl-C or SIGTERM.
    #[arg(long, conflicts_with = "idle_timeout")]
    pub follow: bool,
    /// Without --follow: exit after this long without a matching event (e.g. 30s, 5m).
    #[arg(long, value_name = "D", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Exit after this many matching events.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

/// The filters, applied by the subscription where Pub/Sub does and always here.
fn filters(a: &EventsArgs) -> EventFilter {
    EventFilter {
        status: a.status.clone(),
        request_ids: a.request_ids.clone(),
        destination_project: a.destination_project.clone(),
    }
}

/// Runs the command, writing events to stdout; returns the exit code.
pub async fn run(args: EventsArgs) -> u8 {
    // SIGTERM stops the tail as Ctrl-C does: the subscription is deleted on the way out.
    crate::clients::interrupt::listen();
    tail(args, &mut std::io::stdout()).await
}

/// Runs the command, writing events to `out`; returns the exit code.
pub async fn tail(args: EventsArgs, out: &mut (dyn Write + Send)) -> u8 {
    let conn = match super::args::connect("copy-worker events", &args.pubsub).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    let topic = match full_topic(&args.topic, args.pubsub.project()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("copy-worker events: --topic: {e}");
            return exit::USAGE;
        }
    };
    let filters = filters(&args);
    let seed = format!("{filters:?}");
    let by = FilterBy::Events(&filters);
    let sub =
        match TempSubscription::create_filtered(&conn, &topic, "copy-worker-events", by, &seed)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("copy-worker events: {e}");
                return exit::PUBSUB;
            }
        };
    eprintln!(
        "copy-worker events: reading {topic} through {} (filter: {})",
        sub.name,
        if sub.filter.is_empty() {
            "none"
        } else {
            &sub.filter
        }
    );
    let code = read(&conn, &sub.name, &args, &filters, out).await;
    if let Err(e) = sub.delete().await {
        eprintln!("copy-worker events: warning: {e}");
    }
    code
}

/// A tail under way: what it shows, and how it ends.
struct Tail<'a> {
    args: &'a EventsArgs,
    filters: &'a EventFilter,
    out: &'a mut (dyn Write + Send),
    shown: u64,
    code: u8,
}

impl Consume for Tail<'_> {
    type Side = std::convert::Infallible;
    const CTRL_C_STOPS: bool = true;

    fn finished(&self) -> bool {
        self.args.limit.is_some_and(|n| self.shown >= n)
    }

    fn quiet_at(&self) -> Option<Instant> {
        // --follow: a day at a time, forever.
        let idle = if self.args.follow {
            Duration::from_secs(86_400)
        } else {
            self.args.idle_timeout
        };
        Some(Instant::now() + idle)
    }

    fn on_delivery(&mut self, received: Received) -> ControlFlow<()> {
        let event = self
            .filters
            .matches(received.attributes())
            .then(|| received.completion().line);
        // Its own subscription: everything read is acked, shown or not.
        received.ack();
        let Some(event) = event else {
            return ControlFlow::Continue(());
        };
        self.shown += 1;
        let line = match self.args.format {
            Format::Json => event.to_string(),
            Format::Table => table_row(&event),
        };
        if writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .is_err()
        {
            return ControlFlow::Break(()); // stdout closed (e.g. `| head`)
        }
        ControlFlow::Continue(())
    }

    fn on_quiet(&mut self) -> ControlFlow<()> {
        if self.args.follow {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }

    fn on_error(&mut self, error: ReadError) -> ControlFlow<()> {
        eprintln!("copy-worker events: {error}");
        self.code = exit::PUBSUB;
        ControlFlow::Break(())
    }
}

async fn read(
    conn: &crate::clients::pubsub::Connection,
    subscription: &str,
    args: &EventsArgs,
    filters: &EventFilter,
    out: &mut (dyn Write + Send),
) -> u8 {
    let subscriber = match conn.subscriber().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("copy-worker events: connecting to Pub/Sub: {e}");
            return exit::PUBSUB;
        }
    };
    let mut reader = Reader::open(&subscriber, subscription, Lease::Brief);
    if args.format == Format::Table {
        let _ = writeln!(
            out,
            "{:<20}  {:<9}  {:<28}  destination or error",
            "time", "status", "request id"
        );
    }
    let mut tail = Tail {
        args,
        filters,
        out,
        shown: 0,
        code: exit::OK,
    };
    reader.run(&mut tail).await;
    reader.close().await;
    eprintln!("copy-worker events: {} event(s) shown", tail.shown);
    tail.code
}

fn table_row(ev: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let detail = match ev["error"]["code"].as_str() {
        Some(code) => format!("{code}: {}", text(&ev["error"]["message"])),
        None => text(&ev["destination_model"]),
    };
    format!(
        "{:<20}  {:<9}  {:<28}  {detail}",
        text(&ev["finished_at"]),
        text(&ev["status"]),
        text(&ev["request_id"]),
    )
}
