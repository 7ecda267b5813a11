//! How often and how long (DESIGN.md §4, §5): copy and callback attempts, and the copy's time
//! limit.

use std::time::Duration;

use clap::Args;

use super::flags::{Parsed, duration_setting};
use super::{ConfigError, err};

/// Attempts and durations.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Copy attempts for transient operation failures.
    #[arg(long, env = "COPY_MAX_ATTEMPTS", default_value_t = 3)]
    pub copy_max_attempts: u32,
    /// Deliveries of one webhook callback before it is dead-lettered with the receiver's last
    /// answer (counted by Pub/Sub's deliveryAttempt; keep it at or below the max delivery
    /// attempts of copy-callbacks-push, which dead-letters on its own as a backstop).
    #[arg(long, env = "CALLBACK_MAX_ATTEMPTS", default_value_t = 10)]
    pub callback_max_attempts: u32,
    /// Give up on an operation after this long (e.g. 24h, 90m).
    #[arg(long, env = "COPY_MAX_DURATION", default_value = "24h", value_parser = duration_setting)]
    pub copy_max_duration: Parsed<Duration>,
}

/// The checked durations.
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    pub max_duration: Duration,
    pub vertex_call_timeout: Duration,
}

impl LimitArgs {
    /// Checks the durations, and `VERTEX_CALL_TIMEOUT` (`vertex_call_timeout`) among them.
    pub fn durations(
        &self,
        vertex_call_timeout: &Parsed<Duration>,
    ) -> Result<Durations, ConfigError> {
        let max_duration = self.copy_max_duration.get("COPY_MAX_DURATION")?;
        let vertex_call_timeout = vertex_call_timeout.get("VERTEX_CALL_TIMEOUT")?;
        if vertex_call_timeout.is_zero() {
            return Err(err("VERTEX_CALL_TIMEOUT", "must be above zero"));
        }
        if max_duration.is_zero() {
            return Err(err(
                "COPY_MAX_DURATION",
                "must be above zero (e.g. 24h): every copy would fail before its first poll",
            ));
        }
        Ok(Durations {
            max_duration,
            vertex_call_timeout,
        })
    }
}

/// A count that must be at least 1; `problem` says so, naming what it counts if need be.
pub fn at_least_one(var: &'static str, n: u32, problem: &str) -> Result<(), ConfigError> {
    if n == 0 {
        return Err(err(var, problem));
    }
    Ok(())
}
