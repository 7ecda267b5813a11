//! `copy-worker serve`: checks the configuration (DESIGN.md §5), starts the logs, and runs
//! the worker ([`crate::app`]) until SIGTERM.

use super::exit;
use crate::config::{Config, ServeArgs};
use crate::telemetry;

/// `doctor` lists the same warnings as a start does.
pub(super) use crate::config::startup_warnings;

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

/// The checked configuration, with the logs started; or, for a wrong value, the exit code
/// once the message naming its variable is printed.
pub fn start(args: &ServeArgs) -> Result<Config, u8> {
    let cfg = Config::from_args(args).map_err(|e| {
        eprintln!("copy-worker: {e}");
        exit::USAGE
    })?;
    telemetry::init(cfg.log_format, &cfg.worker_project, telemetry::stderr());
    Ok(cfg)
}

/// Runs the worker until it stops; the exit code, with why it stopped logged and printed.
pub async fn run(args: &ServeArgs) -> u8 {
    let cfg = match start(args) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    match crate::app::run(cfg).await {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "copy-worker stopped");
            eprintln!("copy-worker: {}", with_causes(&e));
            exit::FAILED
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
