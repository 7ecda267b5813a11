//! The `copy-worker` binary: parses the command line and calls into the library.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use copy_worker::app;
use copy_worker::cli::{Cli, Command, doctor, events, exit, publish, replay, serve};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            let note = copy_worker::cli::args::env_source_note(&Cli::command(), &e, &argv);
            let code = e.exit_code();
            let _ = e.print();
            if let Some(n) = note {
                eprintln!("{n}");
            }
            return ExitCode::from(code as u8);
        }
    };
    match cli.command {
        Command::Serve(args) => match serve::start(&args) {
            Ok(cfg) => stopped(runtime().block_on(app::run(cfg))),
            Err(code) => ExitCode::from(code),
        },
        Command::Publish(args) => ExitCode::from(runtime().block_on(publish::run(*args))),
        Command::Replay(args) => ExitCode::from(runtime().block_on(replay::run(*args))),
        Command::Wait(args) => {
            ExitCode::from(runtime().block_on(copy_worker::cli::wait::run(*args)))
        }
        Command::Events(args) => ExitCode::from(runtime().block_on(events::run(*args))),
        Command::Doctor(args) => ExitCode::from(runtime().block_on(doctor::run(*args))),
        Command::Completions(args) => {
            copy_worker::cli::completions::write(args.shell, &mut std::io::stdout());
            ExitCode::from(exit::OK)
        }
    }
}

/// The exit code of a worker that stopped; why it stopped is logged and printed.
fn stopped(result: Result<(), app::ServeError>) -> ExitCode {
    match result.map_err(anyhow::Error::from) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "copy-worker stopped");
            eprintln!("copy-worker: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}
