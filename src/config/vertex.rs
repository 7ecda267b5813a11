//! Vertex AI (DESIGN.md §10): where it is reached, and how long one call may take. How often
//! it is called is the two task queues' business (their rates), not the worker's.

use std::time::Duration;

use clap::Args;

use super::flags::{Parsed, duration_setting};
use super::{ConfigError, err};

/// The endpoint and the call timeout.
#[derive(Debug, Clone, Args)]
pub struct VertexArgs {
    /// Base URL of the Vertex AI API (default: regional endpoint per request).
    #[arg(long, env = "VERTEX_ENDPOINT")]
    pub vertex_endpoint: Option<String>,
    /// Timeout of one attempt of one Vertex AI call.
    #[arg(long, env = "VERTEX_CALL_TIMEOUT", default_value = "30s", value_parser = duration_setting)]
    pub vertex_call_timeout: Parsed<Duration>,
}

impl VertexArgs {
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
