//! Vertex AI (DESIGN.md §10): where it is reached, how long one call may take, and the
//! deployment's budget of calls, shared by its instances.

use std::time::Duration;

use clap::Args;

use super::flags::{Parsed, duration_setting};
use super::limits::at_least_one;
use super::{ConfigError, err};
use crate::pipeline::budget::Rates;

/// The endpoint, the call timeout and the rates.
#[derive(Debug, Clone, Args)]
pub struct VertexArgs {
    /// Base URL of the Vertex AI API (default: regional endpoint per request).
    #[arg(long, env = "VERTEX_ENDPOINT")]
    pub vertex_endpoint: Option<String>,
    /// Timeout of one attempt of one Vertex AI call.
    #[arg(long, env = "VERTEX_CALL_TIMEOUT", default_value = "30s", value_parser = duration_setting)]
    pub vertex_call_timeout: Parsed<Duration>,
    /// CopyModel calls a minute per destination region, for the whole deployment (half of
    /// Vertex AI's default quota of 60, which the project's other jobs share).
    #[arg(long, env = "VERTEX_COPY_RATE", default_value_t = 30.0)]
    pub vertex_copy_rate: f64,
    /// Vertex AI reads (GetOperation, GetModel, ListModelVersions) a minute per region, for
    /// the whole deployment (half of the default quota of 600).
    #[arg(long, env = "VERTEX_READ_RATE", default_value_t = 300.0)]
    pub vertex_read_rate: f64,
    /// How many instances share those rates: the service's maximum instance count (Terraform
    /// passes max_instances). Each instance takes rate / WORKER_INSTANCES.
    #[arg(long, env = "WORKER_INSTANCES", default_value_t = 1)]
    pub worker_instances: u32,
}

impl VertexArgs {
    /// The budget's rates, checked, with the benchmarks' `time_scale`.
    pub fn rates(&self, time_scale: f64) -> Result<Rates, ConfigError> {
        for (var, rate) in [
            ("VERTEX_COPY_RATE", self.vertex_copy_rate),
            ("VERTEX_READ_RATE", self.vertex_read_rate),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(err(
                    var,
                    format!("{rate} must be a positive number of calls a minute, e.g. 30"),
                ));
            }
        }
        if !(time_scale.is_finite() && time_scale >= 1.0) {
            return Err(err(
                "COPY_WORKER_TIME_SCALE",
                "must be a number of at least 1",
            ));
        }
        at_least_one(
            "WORKER_INSTANCES",
            self.worker_instances,
            "must be at least 1 (the service's maximum instance count)",
        )?;
        Ok(Rates {
            copies_per_minute: self.vertex_copy_rate,
            reads_per_minute: self.vertex_read_rate,
            instances: self.worker_instances,
            time_scale,
        })
    }

    /// `VERTEX_ENDPOINT`, when set: an `http(s)://` URL.
    pub fn endpoint(&self) -> Result<Option<String>, ConfigError> {
        if let Some(e) = &self.vertex_endpoint
            && !(e.starts_with("https://") || e.starts_with("http://"))
        {
            return Err(err(
                "VERTEX_ENDPOINT",
                format!("{e:?} must be an http:// or https:// URL"),
            ));
        }
        Ok(self.vertex_endpoint.clone().filter(|s| !s.is_empty()))
    }
}
