//! Flags every subcommand shares, declared once in [`crate::config::flags`] and flattened
//! into each (`#[command(flatten)]`), the checked Pub/Sub connection, and the note that
//! blames a bad value on its variable.

pub use crate::config::flags::{PubSubArgs, parse_duration};

use super::exit;
use crate::clients::pubsub::Connection;
use crate::clients::reach::Endpoint;

/// The checked connection of a command that talks to Pub/Sub: credentials that yield a token
/// (exit 2 otherwise), and an emulator that answers (exit 4 otherwise, within a few seconds).
/// Err is the exit code; the one line that says why is already on stderr, after `who`.
pub async fn connect(who: &str, pubsub: &PubSubArgs) -> Result<Connection, u8> {
    let conn = pubsub.connect().await.map_err(|e| {
        eprintln!("{who}: {e}");
        exit::USAGE
    })?;
    if let Some(host) = &conn.emulator_host
        && let Err(e) = Endpoint::emulator(host).check().await
    {
        eprintln!("{who}: {e}");
        return Err(exit::PUBSUB);
    }
    Ok(conn)
}

/// When a flag's value came from its environment variable, a note that says so: clap's
/// error names the flag, but the user set the variable.
pub fn env_source_note(
    cmd: &clap::Command,
    err: &clap::Error,
    argv: &[std::ffi::OsString],
) -> Option<String> {
    let clap::error::ContextValue::String(invalid) =
        err.get(clap::error::ContextKind::InvalidArg)?
    else {
        return None;
    };
    let long = invalid.split_whitespace().next()?.strip_prefix("--")?;
    let on_argv = argv.iter().any(|a| {
        a.to_str()
            .and_then(|a| a.strip_prefix("--"))
            .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
    });
    if on_argv {
        return None;
    }
    let sub = argv
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find_map(|a| cmd.find_subcommand(a));
    let arg = sub
        .into_iter()
        .chain([cmd])
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long))?;
    let var = arg.get_env()?.to_str()?;
    std::env::var_os(var)?;
    Some(format!(
        "note: the value of --{long} came from the environment variable {var}; fix or unset {var}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_from_the_environment_is_blamed_on_the_variable() {
        use clap::{CommandFactory, Parser};
        use std::time::Duration;
        #[derive(Parser, Debug)]
        struct T {
            #[arg(long, env = "COPY_WORKER_TEST_NOTE_HOLD", value_parser = parse_duration)]
            hold: Option<Duration>,
        }
        // SAFETY: a variable no other test reads; set before any thread reads it.
        unsafe { std::env::set_var("COPY_WORKER_TEST_NOTE_HOLD", "5x") };
        let argv: Vec<std::ffi::OsString> = vec!["t".into()];
        let e = T::try_parse_from(&argv).unwrap_err();
        let note = env_source_note(&T::command(), &e, &argv).expect("a note");
        assert!(
            note.contains("--hold") && note.contains("COPY_WORKER_TEST_NOTE_HOLD"),
            "{note}"
        );
        // Given on the command line, the flag is to blame and clap's message is enough.
        let argv: Vec<std::ffi::OsString> = vec!["t".into(), "--hold=7x".into()];
        let e = T::try_parse_from(&argv).unwrap_err();
        assert_eq!(env_source_note(&T::command(), &e, &argv), None);
    }
}
