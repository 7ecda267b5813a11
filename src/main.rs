//! The `copy-worker` binary: parses the command line and calls into the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use copy_worker::config::{Config, ServeArgs};
use copy_worker::publish::PublishArgs;
use copy_worker::replay::ReplayArgs;
use copy_worker::{publish, replay, serve, telemetry};

/// Copies Vertex AI models between projects and regions, driven by Pub/Sub.
#[derive(Parser)]
#[command(name = "copy-worker", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the push consumer (Cloud Run). Every flag is also an environment variable.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(Box<ServeArgs>),
    /// Submit copy requests to the copy-requests topic, and optionally wait for their results.
    Publish(Box<PublishArgs>),
    /// Move dead-lettered requests back to the copy-requests topic.
    Replay(Box<ReplayArgs>),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  # On Cloud Run (configured by environment; see README):
  copy-worker serve

  # Locally against the Pub/Sub emulator and a Vertex AI fake, without push auth:
  PUBSUB_EMULATOR_HOST=127.0.0.1:8085 GOOGLE_CLOUD_PROJECT=local PUSH_AUTH=none \\
    VERTEX_ENDPOINT=http://127.0.0.1:9090 copy-worker serve --port 8080";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let cfg = match Config::from_args(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("copy-worker: {e}");
                    return ExitCode::from(2);
                }
            };
            telemetry::init(cfg.log_format, &cfg.worker_project, telemetry::stderr());
            match runtime().block_on(serve::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error.message = %e, error.cause_chain = ?e, "copy-worker stopped");
                    eprintln!("copy-worker: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Publish(args) => ExitCode::from(runtime().block_on(publish::run(*args))),
        Command::Replay(args) => ExitCode::from(runtime().block_on(replay::run(*args))),
    }
}
