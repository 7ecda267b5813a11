//! Flags every subcommand shares, declared once and flattened into each (`#[command(flatten)]`),
//! and the one duration parser.

use std::time::Duration;

use clap::Args;

use crate::clients::pubsub::Connection;

/// The project of short topic and subscription names, and the Pub/Sub emulator.
#[derive(Debug, Clone, Default, Args)]
pub struct PubSubArgs {
    /// Project of short topic and subscription names.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
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

    /// How to reach Pub/Sub: the emulator anonymously, or the service with ADC.
    pub fn connection(&self) -> Connection {
        Connection {
            emulator_host: self.emulator_host(),
        }
    }
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
    fn durations_take_units_and_errors_quote_the_input() {
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("240s"), Ok(Duration::from_secs(240)));
        let e = parse_duration("5x").unwrap_err();
        assert!(e.starts_with("\"5x\" is not a duration"), "{e}");
    }
}
