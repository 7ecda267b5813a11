//! The `copy-worker` binary: parses the command line and calls into the library.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use copy_worker::cli::Cli;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            let note = copy_worker::cli::env_source_note(&Cli::command(), &e, &argv);
            let code = e.exit_code();
            let _ = e.print();
            if let Some(n) = note {
                eprintln!("{n}");
            }
            return ExitCode::from(code as u8);
        }
    };
    ExitCode::from(cli.command.run())
}
