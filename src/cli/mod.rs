//! The command line of DESIGN.md §6: one binary, `copy-worker`, whose subcommands each parse,
//! apply and answer.
//!
//! - [`args`]: blaming a bad value on its environment variable; the flags every subcommand
//!   shares are re-exported from [`crate::config::flags`].
//! - [`exit`]: the exit codes.
//! - [`serve`]: `copy-worker serve`, the push consumer (its configuration is
//!   [`crate::config`], the worker it runs [`crate::app`]).
//! - [`publish`]: `copy-worker publish`, submitting requests and waiting for their events.
//! - [`replay`]: `copy-worker replay`, moving dead letters back with no loss.
//! - [`wait`]: `copy-worker wait`, waiting for requests' events (and `publish --wait`).
//! - [`status`]: `copy-worker status`, the events of requests published earlier.
//! - [`events`]: `copy-worker events`, tailing completion events.
//! - [`doctor`]: `copy-worker doctor`, the read-only pre-flight check of a deployment.
//! - [`completions`]: `copy-worker completions SHELL`, shell completion scripts.

mod args;
mod completions;
mod doctor;
mod events;
mod exit;
mod publish;
mod replay;
mod serve;
mod status;
mod wait;
mod waiting;

use clap::{Parser, Subcommand};

pub use self::args::{env_source_note, parse_duration};

// What examples/demo.rs drives in-process besides `Cli`: the subcommands are private, so
// this list is the whole of what the library offers of the command line.
pub use self::doctor::{DoctorArgs, diagnose};
pub use self::events::{EventsArgs, tail};
pub use self::replay::{ReplayArgs, execute as execute_replay};

use self::publish::PublishArgs;
// `doctor` reads `serve`'s configuration as `super::config`.
use crate::config;
use crate::config::ServeArgs;

/// Copies Vertex AI models between projects and regions, driven by Pub/Sub.
#[derive(Parser)]
#[command(name = "copy-worker", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the push consumer (Cloud Run). Every flag is also an environment variable.
    #[command(after_help = serve::EXAMPLES)]
    Serve(Box<ServeArgs>),
    /// Submit copy requests to the copy-requests topic, and optionally wait for their results.
    Publish(Box<PublishArgs>),
    /// Wait for the completion events of requests published earlier (resumes a timed-out
    /// publish --wait).
    Wait(Box<wait::WaitArgs>),
    /// Look up what happened to requests published earlier (their completion events since
    /// --since, default 1h).
    Status(Box<status::StatusArgs>),
    /// Move dead-lettered requests (or, with --callbacks, webhook callbacks) back.
    Replay(Box<ReplayArgs>),
    /// Tail completion events through a temporary filtered subscription.
    Events(Box<EventsArgs>),
    /// Check a deployment before sending traffic: configuration, topics, subscriptions,
    /// grants, Vertex AI (read-only).
    Doctor(Box<DoctorArgs>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = completions::EXAMPLES)]
    Completions(completions::CompletionsArgs),
}

impl Command {
    /// Runs the command and returns its exit code ([`exit`]). Each command parses, applies
    /// and answers in its own module; a new command is a module and a variant here.
    pub fn run(self) -> u8 {
        let runtime = || tokio::runtime::Runtime::new().expect("tokio runtime");
        match self {
            Command::Serve(args) => runtime().block_on(serve::run(&args)),
            Command::Publish(args) => runtime().block_on(publish::run(*args)),
            Command::Replay(args) => runtime().block_on(replay::run(*args)),
            Command::Wait(args) => runtime().block_on(wait::run(*args)),
            Command::Status(args) => runtime().block_on(status::run(*args)),
            Command::Events(args) => runtime().block_on(events::run(*args)),
            Command::Doctor(args) => runtime().block_on(doctor::run(*args)),
            Command::Completions(args) => {
                completions::write(args.shell, &mut std::io::stdout());
                exit::OK
            }
        }
    }
}
