//! Flags every subcommand shares, declared once and flattened into each (`#[command(flatten)]`),
//! and the one duration parser.

use std::time::Duration;

use clap::Args;

use crate::clients::pubsub::Connection;

/// The project of short topic and subscription names, and the Pub/Sub emulator.
#[derive(Debug, Clone, Default, Args)]
pub struct PubSubArgs {
    /// Project of short topic and subscription names.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT", value_parser = parse_project)]
    pub project: Option<String>,
    /// Pub/Sub emulator host:port; used anonymously.
    #[arg(long, env = "PUBSUB_EMULATOR_HOST")]
    pub pubsub_emulator_host: Option<String>,
}

impl PubSubArgs {
    /// The project, when one is set and not empty.
    pub fn project(&self) -> Option<&str> {
        self.project.as_deref().filter(|p| !p.is_empty())
    }

    /// The emulator's `host:port`, when one is set and not empty.
    pub fn emulator_host(&self) -> Option<String> {
        self.pubsub_emulator_host.clone().filter(|h| !h.is_empty())
    }

    /// How to reach Pub/Sub, checked: against the service (not the emulator), Application
    /// Default Credentials must yield a token, else the setup problem is reported at once,
    /// root cause first, with the fix. Every client of the connection shares those checked
    /// credentials (one token fetch per command).
    pub async fn connect(
        &self,
    ) -> Result<Connection, crate::clients::credentials::CredentialsProblem> {
        let credentials = match self.emulator_host() {
            Some(_) => None,
            None => Some(crate::clients::credentials::check().await?),
        };
        Ok(Connection {
            credentials,
            ..self.connection()
        })
    }

    /// How to reach Pub/Sub, unchecked: the emulator anonymously, or the service with ADC
    /// (each client builds its own).
    pub fn connection(&self) -> Connection {
        Connection {
            emulator_host: self.emulator_host(),
            credentials: None,
        }
    }
}

/// A project id (`my-proj-123`), a domain-scoped one (`example.com:my-proj`), or empty (unset).
pub fn parse_project(s: &str) -> Result<String, String> {
    let id = match s.rsplit_once(':') {
        Some((domain, id)) if domain.contains('.') && !domain.contains(' ') => id,
        _ => s,
    };
    if s.is_empty() || crate::domain::names::is_project(id) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a project id: 6 to 30 lowercase letters, digits and hyphens, starting with a letter (e.g. my-proj-123)"
        ))
    }
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

/// Parses `240s`, `30m`, `24h`, `1h 30m`: the one duration syntax of every flag and variable.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 240s or 24h ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_are_checked_and_empty_means_unset() {
        for ok in ["my-proj-123", "123456789012", "example.com:my-proj", ""] {
            assert_eq!(parse_project(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in ["My-Proj", "proj", "my_proj", "projects/p", "-my-proj"] {
            let e = parse_project(bad).unwrap_err();
            assert!(e.contains("is not a project id") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_bad_value_from_the_environment_is_blamed_on_the_variable() {
        use clap::{CommandFactory, Parser};
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

    #[test]
    fn durations_take_units_and_errors_quote_the_input() {
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("240s"), Ok(Duration::from_secs(240)));
        let e = parse_duration("5x").unwrap_err();
        assert!(e.starts_with("\"5x\" is not a duration"), "{e}");
    }
}
