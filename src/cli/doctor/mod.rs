//! `copy-worker doctor`: a read-only pre-flight check of a deployment. It parses the
//! configuration exactly as `serve` does, then looks at what the worker depends on: under
//! `PUSH_AUTH=cloud-run`, the invoker check of its own service; the topics, the push subscriptions' settings (DESIGN.md §2), the Pub/Sub service agent's
//! grants, the quota headroom of the two Vertex AI rates, Vertex AI in each project and
//! location, and what breaks a first deployment (service agents that do not exist yet, a
//! log-based metric Cloud Monitoring does not know yet). One line per check: `ok`, `warn`,
//! `fail`, or `unknown (why)`, with the fix under anything that is not ok.
//!
//! - [`report`]: the checks, their text and JSON, and the exit code.
//! - [`pubsub`]: credentials, topics and subscriptions, in the order they are reported.
//! - [`subscriptions`]: what a push subscription must look like (pure).
//! - [`probe`]: the Pub/Sub and Vertex AI calls.
//! - [`quota`]: the two queues, and their rates against Vertex AI's default quotas.
//! - [`deploy`]: service agents and the log-based metric (Resource Manager, Logging, Monitoring).
//! - [`publisher`]: `--publisher`, the publisher's federation chain, publishing nothing.
//! - [`trust`]: under `PUSH_AUTH=cloud-run`, the worker's own service's invoker check, read as
//!   the worker reads it.

pub(crate) mod deploy;
pub(crate) mod probe;
pub(crate) mod publisher;
pub(crate) mod pubsub;
pub(crate) mod quota;
pub(crate) mod report;
pub(crate) mod subscriptions;
pub(crate) mod trust;

use crate::topology;
use std::time::Duration;

use clap::Args;

use self::report::{Check, Report, Status};
use super::config::{Config, PushAuthMode, ServeArgs};
use super::exit;
use crate::clients::admin_apis;
use crate::clients::reach::Endpoint;
use crate::clients::vertex::{GoogleVertex, VertexOptions};

const EXAMPLES: &str = "\
Examples:
  # Check a deployment with the same environment the Cloud Run service has:
  GOOGLE_CLOUD_PROJECT=my-proj PUSH_AUDIENCE=https://copy-worker-abc-ew.a.run.app \\
  PUSH_SERVICE_ACCOUNTS=copy-worker-push@my-proj.iam.gserviceaccount.com \\
  SOURCE_PROJECT=ml-train TARGET_PROJECT=ml-serving LOCATION=us-central1 \\
    copy-worker doctor --regions europe-west4

  # The same as JSON, for a CI gate:
  copy-worker doctor --project my-proj --json | jq '.checks[] | select(.status != \"ok\")'

  # On an EC2 instance: may its credentials publish? (publishes nothing)
  copy-worker doctor --publisher --project my-proj

  # Against a local stack (the Pub/Sub emulator and a Vertex AI fake):
  PUBSUB_EMULATOR_HOST=127.0.0.1:8085 VERTEX_ENDPOINT=http://127.0.0.1:9090 \\
    copy-worker doctor --project copy-worker-demo --push-auth none --location us-central1

Every check is read-only. Topic publish rights are tested for the credentials doctor runs
with: run it as the worker's service account to check the worker
(gcloud auth application-default login --impersonate-service-account=SA). Where an answer
cannot be read (a missing permission, or the emulator, which has no IAM API), the check says
`unknown (why)`, never `ok`.

Exit codes: 0 nothing failed (warnings and unknowns allowed); 1 some check failed.";

/// Flags of `copy-worker doctor`: every flag and variable of `serve`, plus what to look at.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXAMPLES)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Push subscription of copy-requests.
    #[arg(long, default_value = topology::REQUESTS_PUSH.name)]
    pub requests_subscription: String,
    /// Push subscription of copy-callbacks.
    #[arg(long, default_value = topology::CALLBACKS_PUSH.name)]
    pub callbacks_subscription: String,
    /// Pull subscription of copy-dead-letter that `replay` reads.
    #[arg(long, default_value = topology::DEAD_LETTER_REPLAY.name)]
    pub dead_letter_subscription: String,
    /// More regions to check Vertex AI in, besides LOCATION (comma-separated): the
    /// destination regions your requests name.
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Check only the publisher's side (an EC2 instance): a token as `publish` gets it, then
    /// whether it may publish to copy-requests (testIamPermissions). Publishes nothing.
    #[arg(long)]
    pub publisher: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The Cloud Run service name: the module names its log-based metrics SERVICE/NAME.
    #[arg(long, default_value = "copy-worker")]
    pub service: String,
    /// Cloud Resource Manager endpoint (service agents); http:// is called without credentials.
    #[arg(long, default_value = admin_apis::RESOURCE_MANAGER, hide = true)]
    pub resource_manager_endpoint: String,
    /// Cloud Logging endpoint (log-based metrics).
    #[arg(long, default_value = admin_apis::LOGGING, hide = true)]
    pub logging_endpoint: String,
    /// Cloud Monitoring endpoint (metric descriptors).
    #[arg(long, default_value = admin_apis::MONITORING, hide = true)]
    pub monitoring_endpoint: String,
}

/// Runs every check and prints the report; the exit code is 1 when something failed.
pub async fn run(args: DoctorArgs) -> u8 {
    let report = if args.publisher {
        publisher::diagnose(&args).await
    } else {
        diagnose(&args).await
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if report.passed() {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// Every check, in order: configuration, topics, subscriptions, Vertex AI.
pub async fn diagnose(args: &DoctorArgs) -> Report {
    let mut report = Report::default();
    // PUSH_AUTH=cloud-run is refused without K_SERVICE, which only Cloud Run sets; doctor
    // looks at the deployment from outside, so the service it names stands in for it.
    let mut serve = args.serve.clone();
    if serve.push_auth == PushAuthMode::CloudRun && serve.k_service.is_none() {
        serve.k_service = Some(args.service.clone());
    }
    let cfg = match Config::from_args(&serve) {
        Ok(c) => c,
        Err(e) => {
            // The message names the variable and what to set; nothing else can be checked.
            report.push(Check::fail("config", "parses", e.to_string()));
            return report;
        }
    };
    report.push(Check::ok(
        "config",
        "parses",
        format!(
            "as serve would: project {}, PUSH_AUTH={}, queues {} and {}",
            cfg.worker_project,
            match cfg.push_auth {
                PushAuthMode::Oidc => "oidc",
                PushAuthMode::CloudRun => "cloud-run",
                PushAuthMode::None => "none",
            },
            cfg.queues.starts,
            cfg.queues.polls,
        ),
    ));
    for w in crate::config::startup_warnings(&cfg) {
        report.push(Check::warn("config", "warning", w));
    }
    report.extend(trust::check(cfg.push_auth, &serve.push).await);
    report.extend(quota::headroom(queue_rates(&cfg).await));
    let credentials = pubsub::check(args, &cfg, &mut report).await;
    vertex(args, &cfg, &mut report).await;
    first_deploy(args, &cfg, credentials, &mut report).await;
    report
}

/// How long doctor waits for the queues' rates: a dead endpoint, or credentials that never
/// come (no metadata server off Google Cloud), must not stall the report.
const QUEUE_READ_LIMIT: Duration = Duration::from_secs(5);

/// Both queues' rates (GetQueue), or why they could not be read within [`QUEUE_READ_LIMIT`].
async fn queue_rates(
    cfg: &Config,
) -> Result<crate::clients::tasks::QueueRates, crate::retry::Failure> {
    let queues = crate::clients::tasks::CloudTasksQueues::new(cfg.queues.clone());
    let endpoint = cfg.queues.endpoint.as_deref().map_or(
        "https://cloudtasks.googleapis.com (the default; CLOUD_TASKS_ENDPOINT is not set)"
            .to_owned(),
        |e| format!("{e} (CLOUD_TASKS_ENDPOINT)"),
    );
    tokio::time::timeout(QUEUE_READ_LIMIT, queues.rates())
        .await
        .unwrap_or_else(|_| {
            Err(crate::retry::Failure::new(
                google_cloud_gax::error::rpc::Code::DeadlineExceeded,
                format!(
                    "no answer (a token, then GetQueue) within {} s from {endpoint}",
                    QUEUE_READ_LIMIT.as_secs()
                ),
            ))
        })
}

/// Service agents and the alerted log-based metric: what breaks a first `terraform apply`.
async fn first_deploy(
    args: &DoctorArgs,
    cfg: &Config,
    credentials: Option<google_cloud_auth::credentials::Credentials>,
    report: &mut Report,
) {
    let apis = admin_apis::AdminApis::new(
        admin_apis::Endpoints {
            resource_manager: args.resource_manager_endpoint.clone(),
            logging: args.logging_endpoint.clone(),
            monitoring: args.monitoring_endpoint.clone(),
        },
        credentials,
    );
    report.push(deploy::service_agent(&apis, &deploy::PUBSUB_AGENT, &cfg.worker_project).await);
    match &cfg.settings.defaults.target_project {
        Some(p) => report.push(deploy::service_agent(&apis, &deploy::VERTEX_AGENT, p).await),
        None => report.push(Check::new(
            "service agent aiplatform.googleapis.com",
            "exists",
            Status::Unknown("TARGET_PROJECT is not set".into()),
            "destination project not checked: set TARGET_PROJECT to check it",
        )),
    }
    report.push(
        deploy::log_metric(
            &apis,
            &cfg.worker_project,
            &args.service,
            deploy::ALERTED_METRIC,
        )
        .await,
    );
}

async fn vertex(args: &DoctorArgs, cfg: &Config, report: &mut Report) {
    let d = &cfg.settings.defaults;
    let mut locations: Vec<String> = d.location.iter().cloned().collect();
    for r in &args.regions {
        if !crate::domain::names::is_location(r) {
            report.push(Check::fail(
                "config",
                "--regions",
                format!("{r:?} is not a region such as europe-west4"),
            ));
        } else if !locations.contains(r) {
            locations.push(r.clone());
        }
    }
    if locations.is_empty() {
        report.push(Check::new(
            "vertex",
            "reachable",
            Status::Unknown("no LOCATION and no --regions".into()),
            "Vertex AI not checked",
        ));
        return;
    }
    // A VERTEX_ENDPOINT that does not answer is one line, not a timeout per location.
    if let Some(endpoint) = cfg.vertex_endpoint.as_deref().and_then(Endpoint::vertex)
        && let Err(e) = endpoint.check().await
    {
        report.push(Check::fail("vertex", "reachable", e.to_string()));
        return;
    }
    let client = GoogleVertex::new(VertexOptions {
        endpoint: cfg.vertex_endpoint.clone(),
        call_timeout: cfg.vertex_call_timeout.min(Duration::from_secs(20)),
    });
    for (side, var, project) in [
        ("source", "SOURCE_PROJECT", &d.source_project),
        ("destination", "TARGET_PROJECT", &d.target_project),
    ] {
        let Some(project) = project else {
            report.push(Check::new(
                format!("vertex {side}"),
                "reachable",
                Status::Unknown(format!("{var} is not set")),
                format!("{side} project not checked: set {var} to check it"),
            ));
            continue;
        };
        for l in &locations {
            report.push(probe::vertex(&client, side, project, l).await);
        }
    }
}
