//! The copy-start queue (DESIGN.md §10): a Cloud Tasks queue that paces copy starts for the
//! whole deployment, the URL its tasks call and the account whose token they carry.

use std::time::Duration;

use clap::Args;

use super::auth::{Push, PushAuthMode, is_email};
use super::{ConfigError, err};
use crate::clients::tasks::QueueOptions;

/// `COPY_START_QUEUE` and its companions.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// Cloud Tasks queue that paces copy starts for the whole deployment,
    /// projects/P/locations/L/queues/Q (unset: each instance admits copies from its share).
    #[arg(long, env = "COPY_START_QUEUE")]
    pub copy_start_queue: Option<String>,
    /// The worker's service URL, which the copy-start tasks call (required with the queue).
    #[arg(long, env = "COPY_START_URL")]
    pub copy_start_url: Option<String>,
    /// The account whose OIDC token the queue attaches (default: the first of
    /// PUSH_SERVICE_ACCOUNTS).
    #[arg(long, env = "COPY_START_SERVICE_ACCOUNT")]
    pub copy_start_service_account: Option<String>,
    // `--help` text: a bare URL reads better there than a link.
    #[allow(rustdoc::bare_urls)]
    /// Base URL of the Cloud Tasks API (tests; default https://cloudtasks.googleapis.com).
    #[arg(long, env = "CLOUD_TASKS_ENDPOINT")]
    pub cloud_tasks_endpoint: Option<String>,
}

/// The queue, checked: it needs the URL its tasks call and an account for their token.
/// `None` without a queue.
pub fn start_queue(
    a: &QueueArgs,
    push_service_accounts: &[String],
    call_timeout: Duration,
) -> Result<Option<QueueOptions>, ConfigError> {
    let Some(queue) = queue_name(a)? else {
        return Ok(None);
    };
    let target_url = url("COPY_START_URL", &a.copy_start_url)?.ok_or_else(|| {
        err(
            "COPY_START_URL",
            "is required with COPY_START_QUEUE: set it to this service's URL, which the queue's tasks call",
        )
    })?;
    let endpoint = url("CLOUD_TASKS_ENDPOINT", &a.cloud_tasks_endpoint)?;
    let service_account = a
        .copy_start_service_account
        .clone()
        .or_else(|| push_service_accounts.first().cloned())
        .ok_or_else(|| {
            err(
                "COPY_START_SERVICE_ACCOUNT",
                "is required with COPY_START_QUEUE when PUSH_SERVICE_ACCOUNTS is empty: the account whose token the queue's tasks carry",
            )
        })?;
    if !is_email(&service_account) {
        return Err(err(
            "COPY_START_SERVICE_ACCOUNT",
            format!("{service_account:?} is not an email address"),
        ));
    }
    Ok(Some(QueueOptions {
        queue,
        endpoint,
        target_url,
        service_account,
        call_timeout,
    }))
}

/// `COPY_START_QUEUE`, when set: a full queue name.
fn queue_name(a: &QueueArgs) -> Result<Option<String>, ConfigError> {
    let Some(queue) = a.copy_start_queue.clone().filter(|q| !q.is_empty()) else {
        return Ok(None);
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
            "COPY_START_QUEUE",
            format!("{queue:?} must be a full queue name, projects/P/locations/L/queues/Q"),
        ));
    }
    Ok(Some(queue))
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

/// With push authentication on, the queue's tasks must pass it: otherwise every dispatch is
/// refused before the start stage runs, and the queue retries for ever with nothing
/// announced.
pub fn tasks_pass_push_auth(
    queue: Option<&QueueOptions>,
    mode: PushAuthMode,
    push: &Push,
) -> Result<(), ConfigError> {
    let Some(q) = queue.filter(|_| mode != PushAuthMode::None) else {
        return Ok(());
    };
    if !push
        .service_accounts
        .iter()
        .any(|e| e.eq_ignore_ascii_case(&q.service_account))
    {
        return Err(err(
            "COPY_START_SERVICE_ACCOUNT",
            format!(
                "{} must be one of PUSH_SERVICE_ACCOUNTS: the queue's tasks carry its token",
                q.service_account
            ),
        ));
    }
    if !push.audiences.contains(&q.target_url) {
        return Err(err(
            "COPY_START_URL",
            format!(
                "{} must be one of PUSH_AUDIENCE: it is the audience of the tasks' tokens",
                q.target_url
            ),
        ));
    }
    Ok(())
}
