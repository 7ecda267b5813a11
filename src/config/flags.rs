//! The flags and value parsers every command shares (DESIGN.md §6): the Pub/Sub project and
//! emulator, durations, and the forms `serve`'s settings are parsed into.

use std::convert::Infallible;
use std::time::Duration;

use clap::Args;

use super::ConfigError;
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

/// Parses `240s`, `30m`, `24h`, `1h 30m`: the one duration syntax of every flag and variable.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 240s or 24h ({e})"))
}

/// A value clap parsed, or what is wrong with it. `serve`'s settings take this form so that
/// a malformed one is reported as every other wrong value is, by the configuration, naming
/// the variable (DESIGN.md §5): `serve` exits 2 with `configuration: VAR: …`, and `doctor`
/// reports it as a failed check rather than as a usage error.
#[derive(Debug, Clone)]
pub struct Parsed<T>(Result<T, String>);

impl<T: Clone> Parsed<T> {
    /// The value, or the configuration error that names `var`.
    pub fn get(&self, var: &'static str) -> Result<T, ConfigError> {
        self.0
            .clone()
            .map_err(|problem| ConfigError { var, problem })
    }
}

/// The `value_parser` of a duration setting of `serve` (see [`Parsed`]).
pub fn duration_setting(s: &str) -> Result<Parsed<Duration>, Infallible> {
    Ok(Parsed(parse_duration(s)))
}

/// A comma-separated list, blanks dropped: `a, b,,c` is `[a, b, c]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List(pub Vec<String>);

impl List {
    /// The `value_parser` of a list setting.
    pub fn parse(s: &str) -> Result<Self, Infallible> {
        Ok(Self(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }
}

/// The items of a list setting; none when it is unset.
pub fn list(l: &Option<List>) -> Vec<String> {
    l.clone().unwrap_or_default().0
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
    fn durations_take_units_and_errors_quote_the_input() {
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("240s"), Ok(Duration::from_secs(240)));
        let e = parse_duration("5x").unwrap_err();
        assert!(e.starts_with("\"5x\" is not a duration"), "{e}");
    }
}
