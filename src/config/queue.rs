//! The two Cloud Tasks queues (DESIGN.md §10): copy starts and polls, the URL their tasks call,
//! the account whose token they carry, and the upgrade drain of the previous release's watch
//! messages.

use std::time::Duration;

use clap::Args;

use super::auth::{PushAuthMode, is_email};
use super::{ConfigError, err};
use crate::clients::tasks::QueueOptions;

/// `COPY_START_QUEUE`, `COPY_POLL_QUEUE` and their companions.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// Cloud Tasks queue that paces copy starts (CopyModel) for the whole deployment,
    /// projects/P/locations/L/queues/copy-starts.
    #[arg(long, env = "COPY_START_QUEUE")]
    pub copy_start_queue: Option<String>,
    /// Cloud Tasks queue that paces the polls of running copies (GetOperation) for the whole
    /// deployment, projects/P/locations/L/queues/copy-polls.
    #[arg(long, env = "COPY_POLL_QUEUE")]
    pub copy_poll_queue: Option<String>,
    /// The worker's service URL, which both queues' tasks call; also the audience of their
    /// OIDC tokens.
    #[arg(long, env = "TASKS_URL")]
    pub tasks_url: Option<String>,
    /// The account whose OIDC token the tasks carry, and the only account the /tasks/ routes
    /// accept (required unless PUSH_AUTH=none).
    #[arg(long, env = "TASKS_SERVICE_ACCOUNT")]
    pub tasks_service_account: Option<String>,
    // `--help` text: a bare URL reads better there than a link.
    #[allow(rustdoc::bare_urls)]
    /// Base URL of the Cloud Tasks API (tests; default https://cloudtasks.googleapis.com).
    #[arg(long, env = "CLOUD_TASKS_ENDPOINT")]
    pub cloud_tasks_endpoint: Option<String>,
    /// Upgrade only: serve POST /pubsub/copy-operations, which turns the previous release's
    /// watch messages into tasks (docs/DESIGN.md, "Upgrading").
    #[arg(long, env = "COPY_OPERATIONS_DRAIN", default_value_t = false, action = clap::ArgAction::Set)]
    pub copy_operations_drain: bool,
}

/// The queues, checked: both named in full, the URL their tasks call, and (unless push
/// authentication is off) the account their tokens belong to.
pub fn queues(
    a: &QueueArgs,
    mode: PushAuthMode,
    call_timeout: Duration,
) -> Result<QueueOptions, ConfigError> {
    let starts = queue_name("COPY_START_QUEUE", &a.copy_start_queue, "copy-starts")?;
    let polls = queue_name("COPY_POLL_QUEUE", &a.copy_poll_queue, "copy-polls")?;
    let target_url = url("TASKS_URL", &a.tasks_url)?.ok_or_else(|| {
        err(
            "TASKS_URL",
            "is required: set it to this service's URL (https://…run.app), which the queues' tasks call",
        )
    })?;
    let endpoint = url("CLOUD_TASKS_ENDPOINT", &a.cloud_tasks_endpoint)?;
    let service_account = a.tasks_service_account.clone().filter(|s| !s.is_empty());
    match (&service_account, mode) {
        (Some(e), _) if !is_email(e) => {
            return Err(err(
                "TASKS_SERVICE_ACCOUNT",
                format!("{e:?} is not an email address"),
            ));
        }
        (None, PushAuthMode::Oidc | PushAuthMode::CloudRun) => {
            return Err(err(
                "TASKS_SERVICE_ACCOUNT",
                "is required unless PUSH_AUTH=none: the account whose OIDC token the queues' tasks carry, and the only one the /tasks/ routes accept",
            ));
        }
        _ => {}
    }
    Ok(QueueOptions {
        starts,
        polls,
        endpoint,
        target_url,
        service_account,
        call_timeout,
    })
}

/// A required full queue name.
fn queue_name(
    var: &'static str,
    v: &Option<String>,
    default_id: &str,
) -> Result<String, ConfigError> {
    let Some(queue) = v.clone().filter(|q| !q.is_empty()) else {
        return Err(err(
            var,
            format!(
                "is required: the full name of the {default_id} queue, projects/P/locations/L/queues/{default_id} (Terraform creates it)"
            ),
        ));
    };
    let parts: Vec<&str> = queue.split('/').collect();
    let shape = ["projects", "", "locations", "", "queues", ""];
    let well_formed = parts.len() == shape.len()
        && parts
            .iter()
            .zip(shape)
            .all(|(p, s)| !p.is_empty() && (s.is_empty() || *p == s));
    if !well_formed {
        return Err(err(
            var,
            format!("{queue:?} must be a full queue name, projects/P/locations/L/queues/Q"),
        ));
    }
    Ok(queue)
}

/// An `http(s)://` URL, when set.
fn url(var: &'static str, v: &Option<String>) -> Result<Option<String>, ConfigError> {
    match v.as_deref() {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => Ok(Some(u.to_owned())),
        Some(u) => Err(err(
            var,
            format!("{u:?} must be an http:// or https:// URL"),
        )),
        None => Ok(None),
    }
}
