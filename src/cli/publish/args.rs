//! The flags of `copy-worker publish` and its `--help` examples.

use std::time::Duration;

use clap::{ArgGroup, Args};

use super::RequestFlags;
use crate::cli::args::{PubSubArgs, parse_duration};
use crate::config::topics::{CompletionsTopic, RequestsTopic, reword, spelled_topic};

const EXAMPLES: &str = "\
Examples:
  # One request from flags (bare source ids resolve with SOURCE_PROJECT and LOCATION):
  copy-worker publish --project my-proj \\
    --source-model projects/src-proj/locations/us-central1/models/7704127342733426688@3 \\
    --destination-project dst-proj --destination-location europe-west4 \\
    --destination-model-id target-model-260213 --context pipeline=nightly
  # prints {\"message_id\":\"…\",\"published_at\":\"…\",\"request_id\":\"…\"}

  # Many requests, one JSON object a line (a file, or - for stdin):
  copy-worker publish --project my-proj --file requests.jsonl
  jq -c '.[]' requests.json | copy-worker publish --project my-proj --file -

  # Publish and wait up to 45 minutes for the results (read through a temporary subscription
  # of copy-completions that only this waiter reads, deleted on exit):
  copy-worker publish --project my-proj --file requests.jsonl --wait --timeout 45m

With --wait, stdout gets one line per published request, then each completion event as it
arrives, then one summary:
  {\"summary\":{\"outcome\",\"requests\",\"succeeded\",\"failed\",\"rejected\",\"other_status\",\"pending\",
   \"subscription\",\"resume\"}}
When stderr is a terminal, a progress bar counts the requests that ended.

Exit codes:
  0  published; with --wait, every request succeeded
  1  --wait: at least one request ended failed or rejected
  2  usage or validation error (the line, field and rule are named on stderr), a line over
     64 KiB, or a request_id that repeats an earlier line's; nothing published
  3  --wait: timeout (or Ctrl-C, SIGTERM) before every request had a completion event; the summary
     lists them in \"pending\", and \"resume\" is the `copy-worker wait` command that carries
     on (the temporary subscription is kept for it, so no event is missed)
  4  Pub/Sub error while publishing or pulling; requests printed on stdout were published
     (with --wait, the subscription it reads is created, or with --completions-subscription
     checked, before anything is published: if that fails, nothing is published)

Validation is the worker's own: a request accepted here is accepted by the worker, except that
callback_url hosts are checked against CALLBACK_ALLOWED_HOSTS by the worker only. --wait needs
pubsub.subscriptions.create/get/consume/delete on the project and
pubsub.topics.attachSubscription on the completions topic (Terraform: publisher_can_wait).
Credentials are Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS may point at a
workload identity federation config for AWS); PUBSUB_EMULATOR_HOST uses the emulator anonymously.
With TRACEPARENT set, it is sent as the traceparent attribute.";

/// Flags of `copy-worker publish`.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXAMPLES)]
#[command(group(ArgGroup::new("input").required(true).args(["file", "source_model"])))]
#[command(mut_args(spelled_topic(
    "requests_topic",
    "Topic of copy requests, short or projects/P/topics/T"
)))]
#[command(mut_args(reword("completions_topic", |a| a
    .value_name("T")
    .help_heading("Waiting")
    .help("Topic of completion events, short or projects/P/topics/T"))))]
pub struct PublishArgs {
    #[command(flatten)]
    pub topic: RequestsTopic,
    #[command(flatten)]
    pub pubsub: PubSubArgs,
    /// JSON Lines file of requests, one JSON object a line; - reads stdin.
    #[arg(long, value_name = "F", conflicts_with_all = RequestFlags::ids())]
    pub file: Option<String>,
    #[command(flatten)]
    pub request: RequestFlags,

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

    /// Wait for the completion events of the published requests, read through a temporary
    /// subscription of --completions-topic that only this waiter reads (created before
    /// publishing, filtered on a waiter tag that every request carries, deleted on exit; if
    /// the process dies, the next waiter deletes it once the timeout plus an hour has passed).
    #[arg(long, help_heading = "Waiting")]
    pub wait: bool,
    #[command(flatten)]
    pub completions_topic: CompletionsTopic,
    /// Project to create the temporary subscription in (default: the completions topic's).
    /// A project of the waiters' own keeps their Pub/Sub permissions away from the worker's
    /// pipeline subscriptions; the caller then needs pubsub.topics.attachSubscription on
    /// the topic and the subscription permissions in that project only.
    #[arg(
        long,
        value_name = "P",
        env = "COPY_WAITER_PROJECT",
        help_heading = "Waiting"
    )]
    pub waiter_project: Option<String>,
    /// Read this existing pull subscription of copy-completions instead of a temporary one,
    /// for callers that may not create subscriptions. Other waiters' events are handed back
    /// (nack), so with several waiters events circle between them. Used with --wait only.
    /// The subscription must exist before the publish: it only sees events published after
    /// it was created.
    #[arg(
        long,
        value_name = "S",
        env = "COPY_COMPLETIONS_SUBSCRIPTION",
        help_heading = "Waiting"
    )]
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

#[cfg(test)]
mod tests {
    use super::PublishArgs;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        publish: PublishArgs,
    }

    #[test]
    fn context_takes_comma_separated_pairs_as_gcloud_does() {
        let cli = Cli::try_parse_from([
            "publish",
            "--project",
            "my-proj",
            "--source-model",
            "projects/src-proj/locations/us-central1/models/1",
            "--context",
            "pipeline=nightly,commit=f00",
            "--context",
            "team=ml",
        ])
        .expect("flags parse");
        assert_eq!(
            cli.publish.request.context,
            ["pipeline=nightly", "commit=f00", "team=ml"]
        );
    }
}
