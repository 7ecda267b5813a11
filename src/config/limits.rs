//! How often and how long (DESIGN.md §4, §5): copy and callback attempts, the copy's time
//! limit, and the hold of a watch delivery within `copy-operations-push`'s ack deadline.

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
    /// How long one watch delivery may poll in-request (below COPY_OPERATIONS_ACK_DEADLINE).
    #[arg(long, env = "WATCH_HOLD", default_value = "240s", value_parser = duration_setting)]
    pub watch_hold: Parsed<Duration>,
    /// The ack deadline of copy-operations-push (10s to 600s): each watch delivery answers
    /// within it, counted from its arrival (Terraform passes the subscription's value).
    #[arg(
        long,
        env = "COPY_OPERATIONS_ACK_DEADLINE",
        default_value = "300s",
        value_parser = duration_setting
    )]
    pub operations_ack_deadline: Parsed<Duration>,
}

/// The checked durations.
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    pub max_duration: Duration,
    pub watch_hold: Duration,
    pub vertex_call_timeout: Duration,
    pub ack_deadline: Duration,
}

impl LimitArgs {
    /// Checks the durations, and `VERTEX_CALL_TIMEOUT` (`vertex_call_timeout`) among them.
    pub fn durations(
        &self,
        vertex_call_timeout: &Parsed<Duration>,
    ) -> Result<Durations, ConfigError> {
        let max_duration = self.copy_max_duration.get("COPY_MAX_DURATION")?;
        let watch_hold = self.watch_hold.get("WATCH_HOLD")?;
        let vertex_call_timeout = vertex_call_timeout.get("VERTEX_CALL_TIMEOUT")?;
        if vertex_call_timeout.is_zero() {
            return Err(err("VERTEX_CALL_TIMEOUT", "must be above zero"));
        }
        let ack_deadline = self
            .operations_ack_deadline
            .get("COPY_OPERATIONS_ACK_DEADLINE")?;
        if !(Duration::from_secs(10)..=Duration::from_secs(600)).contains(&ack_deadline) {
            return Err(err(
                "COPY_OPERATIONS_ACK_DEADLINE",
                format!(
                    "{}s is outside Pub/Sub's range of 10s to 600s; set it to copy-operations-push's ack deadline",
                    ack_deadline.as_secs()
                ),
            ));
        }
        if watch_hold >= ack_deadline {
            return Err(err(
                "WATCH_HOLD",
                format!(
                    "{}s must stay below the {}s ack deadline of copy-operations-push (COPY_OPERATIONS_ACK_DEADLINE)",
                    watch_hold.as_secs(),
                    ack_deadline.as_secs()
                ),
            ));
        }
        Ok(Durations {
            max_duration,
            watch_hold,
            vertex_call_timeout,
            ack_deadline,
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
