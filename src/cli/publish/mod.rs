//! `copy-worker publish` (DESIGN.md §6): submits copy requests from flags or JSON Lines and,
//! with `--wait`, follows their completion events.
//!
//! Every command runs the same three steps: parse and validate all input, publish, answer (one
//! JSON line per request, then optionally the events). Validation runs to the end before the
//! first publish, so a file with one bad line publishes nothing.

mod input;
mod wait;

use std::io::{Read, Write};
use std::time::Duration;

use clap::{ArgGroup, Args};
use futures::future::join_all;

pub use input::{InvalidInput, RequestFlags, validate, validate_lines};
pub use wait::{Verdict, WaitError, WaitOutcome, Waiting};

use super::args::{PubSubArgs, parse_duration};
use super::exit;
use crate::clients::pubsub::{Connection, OutMessage, full_subscription, full_topic, to_message};
use crate::contract::attr;
use crate::domain::{CopyRequest, Defaults};

const EXAMPLES: &str = "\
Examples:
  # One request from flags (bare source ids resolve with SOURCE_PROJECT and LOCATION):
  copy-worker publish --project my-proj \\
    --source-model projects/src-proj/locations/us-central1/models/7704127342733426688@3 \\
    --destination-project dst-proj --destination-location europe-west4 \\
    --destination-model-id target-model-260213 --context pipeline=nightly
  # prints {\"request_id\":\"…\",\"message_id\":\"…\"}

  # Many requests, one JSON object a line (a file, or - for stdin):
  copy-worker publish --project my-proj --file requests.jsonl
  jq -c '.[]' requests.json | copy-worker publish --project my-proj --file -

  # Publish and wait up to 45 minutes for the results on a pull subscription of copy-completions:
  copy-worker publish --project my-proj --file requests.jsonl \\
    --wait --completions-subscription copy-completions-ec2 --timeout 45m

Exit codes:
  0  published; with --wait, every request succeeded
  1  --wait: at least one request ended failed or rejected
  2  usage or validation error (the line, field and rule are named on stderr); nothing published
  3  --wait: timeout before every request had a completion event
  4  Pub/Sub error while publishing or pulling; requests printed on stdout were published

Validation is the worker's own: a request accepted here is accepted by the worker, except that
callback_url hosts are checked against CALLBACK_ALLOWED_HOSTS by the worker only. Waiters may
share a completions subscription: each acks only its own events and hands the others back.
Credentials are Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS may point at a
workload identity federation config for AWS); PUBSUB_EMULATOR_HOST uses the emulator anonymously.
With TRACEPARENT set, it is sent as the traceparent attribute.";

/// Flags of `copy-worker publish`.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXAMPLES)]
#[command(group(ArgGroup::new("input").required(true).args(["file", "source_model"])))]
pub struct PublishArgs {
    /// Topic of copy requests, short or projects/P/topics/T.
    #[arg(long, env = "COPY_REQUESTS_TOPIC", default_value = "copy-requests")]
    pub topic: String,
    #[command(flatten)]
    pub pubsub: PubSubArgs,
    /// JSON Lines file of requests, one JSON object a line; - reads stdin.
    #[arg(long, value_name = "F", conflicts_with_all = REQUEST_FLAGS)]
    pub file: Option<String>,

    /// Model to copy: projects/P/locations/L/models/M[@V], or a bare id.
    #[arg(long, help_heading = "Request")]
    pub source_model: Option<String>,
    /// Destination project (default: TARGET_PROJECT).
    #[arg(long, help_heading = "Request")]
    pub destination_project: Option<String>,
    /// Destination location (default: the source's).
    #[arg(long, help_heading = "Request")]
    pub destination_location: Option<String>,
    /// Id of the new model, [a-z][a-z0-9_-]{0,62} (default: derived from the request id).
    #[arg(long, help_heading = "Request")]
    pub destination_model_id: Option<String>,
    /// Existing model to add the copy to as a new version.
    #[arg(long, help_heading = "Request")]
    pub destination_parent_model: Option<String>,
    /// CMEK key for the copy, in the destination location.
    #[arg(long, help_heading = "Request")]
    pub kms_key_name: Option<String>,
    /// Request id, [A-Za-z0-9._:-]{1,128} (default: derived from source and destination).
    #[arg(long, help_heading = "Request")]
    pub request_id: Option<String>,
    /// Context pair echoed into the completion event (repeatable).
    #[arg(long, value_name = "K=V", help_heading = "Request")]
    pub context: Vec<String>,
    /// https URL that receives the completion event (host must be allowed by the worker).
    #[arg(long, help_heading = "Request")]
    pub callback_url: Option<String>,

    /// Project of bare source model ids.
    #[arg(long, env = "SOURCE_PROJECT", help_heading = "Defaults")]
    pub source_project: Option<String>,
    /// Destination project when a request names none.
    #[arg(long, env = "TARGET_PROJECT", help_heading = "Defaults")]
    pub target_project: Option<String>,
    /// Location of bare source model ids and of the two-field form.
    #[arg(long, env = "LOCATION", help_heading = "Defaults")]
    pub location: Option<String>,
    /// Also allow http://127.0.0.1 callback URLs (local tests only).
    #[arg(long, env = "CALLBACK_ALLOW_HTTP_LOOPBACK", help_heading = "Defaults")]
    pub callback_allow_http_loopback: bool,

    /// Wait for the completion events of the published requests.
    #[arg(long, requires = "completions_subscription", help_heading = "Waiting")]
    pub wait: bool,
    /// Pull subscription of copy-completions to wait on, short or projects/P/subscriptions/S.
    #[arg(long, value_name = "S", requires = "wait", help_heading = "Waiting")]
    pub completions_subscription: Option<String>,
    /// Give up waiting after this long (e.g. 90s, 30m, 2h).
    #[arg(
        long,
        value_name = "D",
        default_value = "30m",
        value_parser = parse_duration,
        help_heading = "Waiting"
    )]
    pub timeout: Duration,
}

const REQUEST_FLAGS: [&str; 9] = [
    "source_model",
    "destination_project",
    "destination_location",
    "destination_model_id",
    "destination_parent_model",
    "kms_key_name",
    "request_id",
    "context",
    "callback_url",
];

/// Everything `run` needs, resolved and validated before anything is published.
struct Plan {
    topic: String,
    subscription: Option<String>,
    timeout: Duration,
    connection: Connection,
    requests: Vec<CopyRequest>,
    traceparent: Option<String>,
}

/// Runs the command; returns the process exit code.
pub async fn run(args: PublishArgs) -> u8 {
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(problems) => {
            for p in problems {
                eprintln!("copy-worker publish: {p}");
            }
            eprintln!("copy-worker publish: nothing was published");
            return exit::USAGE;
        }
    };
    let mut stdout = std::io::stdout();
    let ids = match publish_all(&plan, &mut stdout).await {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!("copy-worker publish: {e:#}");
            return exit::PUBSUB;
        }
    };
    let Some(subscription) = &plan.subscription else {
        return exit::OK;
    };
    let outcome = wait::wait(
        &plan.connection,
        subscription,
        ids,
        plan.timeout,
        &mut stdout,
    )
    .await;
    match outcome {
        Ok(WaitOutcome::AllSucceeded) => exit::OK,
        Ok(WaitOutcome::SomeFailed) => exit::FAILED,
        Ok(WaitOutcome::TimedOut { pending }) => {
            eprintln!(
                "copy-worker publish: timed out after {} waiting for {}",
                humantime::format_duration(args.timeout),
                pending.join(", ")
            );
            exit::TIMEOUT
        }
        Err(e) => {
            eprintln!("copy-worker publish: {e:#}");
            exit::PUBSUB
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

/// A publish that Pub/Sub did not confirm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishAllError {
    /// The publisher could not be built (credentials, endpoint).
    #[error("connecting to Pub/Sub: {0}")]
    Connect(#[from] google_cloud_gax::client_builder::Error),
    /// At least one request was not published; those printed on stdout were.
    #[error("publishing to {topic}: {source}")]
    Publish {
        topic: String,
        #[source]
        source: google_cloud_pubsub::error::PublishError,
    },
    /// stdout could not be written.
    #[error("writing to stdout: {0}")]
    Stdout(#[from] std::io::Error),
}

/// Step 1: resolve names and validate every request. Returns every problem found.
fn plan(args: &PublishArgs) -> Result<Plan, Vec<String>> {
    let project = args.pubsub.project();
    let topic = full_topic(&args.topic, project).map_err(|e| vec![e.to_string()])?;
    let subscription = args
        .completions_subscription
        .as_deref()
        .map(|s| {
            full_subscription(s, project).map_err(|e| format!("--completions-subscription: {e}"))
        })
        .transpose()
        .map_err(|e| vec![e])?;
    let defaults = Defaults {
        source_project: non_empty(&args.source_project),
        target_project: non_empty(&args.target_project),
        location: non_empty(&args.location),
        callback_allowed_hosts: vec![],
        callback_allow_http_loopback: args.callback_allow_http_loopback,
    };
    let requests = match &args.file {
        Some(path) => {
            let text = read_input(path).map_err(|e| vec![e])?;
            input::validate_lines(&text, &defaults)
                .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?
        }
        None => {
            vec![input::validate_flags(&flags(args), &defaults).map_err(|e| vec![e.to_string()])?]
        }
    };
    Ok(Plan {
        topic,
        subscription,
        timeout: args.timeout,
        connection: args.pubsub.connection(),
        requests,
        traceparent: std::env::var("TRACEPARENT").ok().filter(|s| !s.is_empty()),
    })
}

fn flags(a: &PublishArgs) -> RequestFlags {
    RequestFlags {
        source_model: a.source_model.clone(),
        destination_project: a.destination_project.clone(),
        destination_location: a.destination_location.clone(),
        destination_model_id: a.destination_model_id.clone(),
        destination_parent_model: a.destination_parent_model.clone(),
        kms_key_name: a.kms_key_name.clone(),
        request_id: a.request_id.clone(),
        context: a.context.clone(),
        callback_url: a.callback_url.clone(),
    }
}

fn read_input(path: &str) -> Result<String, String> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("reading requests from stdin: {e}"))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| format!("reading --file {path}: {e}"))
}

/// The message for one request: its normalised JSON, which the worker parses to the same
/// request without needing its own defaults, plus the attributes of DESIGN.md §3.
fn message(req: &CopyRequest, traceparent: Option<&str>) -> OutMessage {
    let mut m = OutMessage {
        data: req.to_bytes(),
        ..OutMessage::default()
    };
    m.attributes
        .insert(attr::REQUEST_ID.into(), req.request_id.to_string());
    if let Some(t) = traceparent {
        m.attributes.insert(attr::TRACEPARENT.into(), t.to_owned());
    }
    m
}

/// Step 2 and 3: publish every request (batched, concurrently), then print one line per
/// request in input order. Returns the request ids, for `--wait`.
async fn publish_all(plan: &Plan, out: &mut dyn Write) -> Result<Vec<String>, PublishAllError> {
    let base = plan.connection.base_publisher().await?;
    let publisher = base.publisher(plan.topic.clone()).build();
    let pending = plan.requests.iter().map(|r| {
        let msg = to_message(message(r, plan.traceparent.as_deref()));
        publisher.publish(msg)
    });
    let results = join_all(pending).await;
    let mut ids = Vec::new();
    let mut first_error = None;
    for (req, result) in plan.requests.iter().zip(results) {
        match result {
            Ok(message_id) => {
                let line = serde_json::json!({
                    "request_id": req.request_id.as_str(),
                    "message_id": message_id,
                });
                writeln!(out, "{line}")?;
                ids.push(req.request_id.to_string());
            }
            Err(e) => {
                eprintln!(
                    "copy-worker publish: request {} was not published: {e}",
                    req.request_id
                );
                first_error.get_or_insert(e);
            }
        }
    }
    out.flush()?;
    match first_error {
        Some(source) => Err(PublishAllError::Publish {
            topic: plan.topic.clone(),
            source,
        }),
        None => Ok(ids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_carries_request_id_and_traceparent_attributes() {
        let req = validate(
            br#"{"request_id":"r1","source_model":"projects/src-proj/locations/us-central1/models/1","destination":{"project":"dst-proj"}}"#,
            &Defaults::default(),
        )
        .unwrap();
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let m = message(&req, Some(tp));
        assert_eq!(m.attributes["request_id"], "r1");
        assert_eq!(m.attributes["traceparent"], tp);
        assert_eq!(m.data, req.to_bytes());
        assert!(!message(&req, None).attributes.contains_key("traceparent"));
    }
}
