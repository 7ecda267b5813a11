//! `copy-worker serve`: checks the configuration (DESIGN.md §5), starts the logs, and runs
//! the worker ([`crate::app`]) until SIGTERM.

use super::exit;
use crate::app::{WorkerService, worker_service};
use crate::clients::reach::Endpoint;
use crate::config::{Config, ServeArgs};
use crate::telemetry;

/// `serve --help` examples.
pub const EXAMPLES: &str = "\
Examples:
  # On Cloud Run (configured by environment; see README):
  copy-worker serve

  # Locally against the Pub/Sub emulator and the Vertex AI and Cloud Tasks fakes
  # (cargo run --example fake-vertex / fake-tasks), without push auth:
  PUBSUB_EMULATOR_HOST=127.0.0.1:8085 GOOGLE_CLOUD_PROJECT=copy-worker-demo PUSH_AUTH=none \\
    VERTEX_ENDPOINT=http://127.0.0.1:9090 CLOUD_TASKS_ENDPOINT=http://127.0.0.1:9191 \\
    COPY_START_QUEUE=projects/copy-worker-demo/locations/us-central1/queues/copy-starts \\
    COPY_POLL_QUEUE=projects/copy-worker-demo/locations/us-central1/queues/copy-polls \\
    TASKS_URL=http://127.0.0.1:8080 copy-worker serve --port 8080";

/// The checked configuration and, under `PUSH_AUTH=cloud-run`, the worker's own service
/// (`COPY_WORKER_SERVICE`, required here: `doctor` reads the same configuration from outside
/// and does without it), with the logs started; or, for a wrong value, the exit code once the
/// message naming its variable is printed.
pub fn start(args: &ServeArgs) -> Result<(Config, Option<WorkerService>), u8> {
    let checked = Config::from_args(args).and_then(|cfg| {
        let svc = worker_service(args.push_auth, args.k_service.as_deref(), &args.push)?;
        Ok((cfg, svc))
    });
    let (cfg, svc) = checked.map_err(|e| {
        eprintln!("copy-worker: {e}");
        exit::USAGE
    })?;
    telemetry::init(cfg.log_format, &cfg.worker_project, telemetry::stderr());
    Ok((cfg, svc))
}

/// Runs the worker until it stops; the exit code, with why it stopped logged and printed.
pub async fn run(args: &ServeArgs) -> u8 {
    let (cfg, service) = match start(args) {
        Ok(started) => started,
        Err(code) => return code,
    };
    // An emulator the user named answers first: one line and exit 4 within seconds, not a
    // worker that starts and then fails every delivery.
    if let Some(host) = &cfg.emulator_host
        && let Err(e) = Endpoint::emulator(host).check().await
    {
        eprintln!("copy-worker: {e}");
        return exit::PUBSUB;
    }
    // Every error of `app::run` comes before the first request is served: the port, the
    // signing secret, or a client that cannot be built (credentials, endpoint). A setup
    // problem, nothing was done: exit 2 (DESIGN.md §6).
    match crate::app::run(cfg, service).await {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "copy-worker stopped");
            eprintln!("copy-worker: {}", with_causes(&e));
            exit::USAGE
        }
    }
}

/// `error: cause: cause`, as `{:#}` prints an error chain, without a cause the line already
/// quotes (`cannot listen on 8080: Address already in use` says it once).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(&format!(": {text}"));
        }
        source = cause.source();
    }
    line
}
