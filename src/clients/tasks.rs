//! Cloud Tasks: the queue that paces copy starts for the whole deployment
//! (docs/DESIGN.md §10, "Quotas"; `COPY_START_QUEUE`).
//!
//! Vertex AI's CopyModel quota is per project and region, while Cloud Run runs as many
//! instances as its load asks for: a rate split per instance is either too slow (most copies
//! land on one instance) or too fast (more instances than planned). A Cloud Tasks queue's rate
//! limit (`rateLimits.maxDispatchesPerSecond`) holds for the queue, whatever dispatches it, so
//! the request stage queues a *copy-start task* and the queue posts it back to the worker at
//! the deployment's rate (`POST /tasks/copy-starts`), where the copy starts.
//!
//! The task's body is a Pub/Sub push envelope around the same message a pending watch would
//! carry (the request, `attempt`, `accepted_at` and the caller's attributes), so one parser
//! and one set of checks serve both. Its name is derived from the Pub/Sub message it comes
//! from: a redelivered request names the same task, and Cloud Tasks refuses a second task of
//! one name with ALREADY_EXISTS (cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create:
//! "… another task with the same name can't be created for ~1 hour after the original task
//! was deleted or executed"), which counts as queued.

use async_trait::async_trait;
use base64::Engine as _;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::options::RequestOptionsBuilder as _;
use google_cloud_tasks_v2::client::CloudTasks;
use google_cloud_tasks_v2::model::{HttpMethod, HttpRequest, OidcToken, Task};
use tokio::sync::OnceCell;

use crate::contract::OutMessage;
use crate::domain::sha256_hex;
use crate::retry::{Failure, classify};

/// The worker's route that copy-start tasks are posted to.
pub const START_PATH: &str = crate::topology::COPY_STARTS_ROUTE;

/// How long Cloud Tasks waits for the worker's answer to one dispatch: the start stage
/// answers within its 45 s budget.
const DISPATCH_DEADLINE_SECS: i64 = 60;

/// Queues copy starts. A seam: tests swap the endpoint (testkit's Cloud Tasks fake).
#[async_trait]
pub trait StartQueue: Send + Sync {
    /// Queues `message` as the task `task_id` (see [`task_id`]); `Ok` too when a task of
    /// that name exists already (a redelivery queued it before).
    async fn enqueue(
        &self,
        task_id: &str,
        message_id: &str,
        message: &OutMessage,
    ) -> Result<(), Failure>;
}

/// The task id for the start of `attempt` from Pub/Sub message `message_id`.
pub fn task_id(message_id: &str, attempt: u32) -> String {
    let hash = sha256_hex(format!("{message_id}:{attempt}").as_bytes());
    format!("start-{}", &hash[..32])
}

/// Where the queue is and what its tasks call.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// `COPY_START_QUEUE`: `projects/P/locations/L/queues/Q`.
    pub queue: String,
    /// `CLOUD_TASKS_ENDPOINT`; `None` for `https://cloudtasks.googleapis.com`. A plain
    /// `http://` endpoint (the local fake) is used anonymously.
    pub endpoint: Option<String>,
    /// `COPY_START_URL`: the worker's service URL, also the token's audience.
    pub target_url: String,
    /// The account whose OIDC token the queue attaches (a push account).
    pub service_account: String,
    /// Limit on one attempt of the CreateTask call.
    pub call_timeout: std::time::Duration,
}

/// [`StartQueue`] over the official `google-cloud-tasks-v2` client.
pub struct CloudTasksQueue {
    opts: QueueOptions,
    client: OnceCell<CloudTasks>,
}

impl CloudTasksQueue {
    pub fn new(opts: QueueOptions) -> Self {
        Self {
            opts,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&CloudTasks, Failure> {
        self.client
            .get_or_try_init(|| async {
                let mut b = CloudTasks::builder();
                if let Some(e) = &self.opts.endpoint {
                    b = b.with_endpoint(e.trim_end_matches('/'));
                    // Credentials are never sent over plain HTTP.
                    if e.starts_with("http://") {
                        b = b.with_credentials(
                            google_cloud_auth::credentials::anonymous::Builder::new().build(),
                        );
                    }
                }
                b.build().await.map_err(|e| {
                    Failure::new(
                        Code::Unavailable,
                        format!("cannot build the Cloud Tasks client: {e}"),
                    )
                })
            })
            .await
    }

    fn task(&self, task_id: &str, message_id: &str, message: &OutMessage) -> Task {
        let b64 = base64::engine::general_purpose::STANDARD;
        let envelope = serde_json::json!({
            "subscription": self.opts.queue,
            "message": {
                "data": b64.encode(&message.data),
                "attributes": message.attributes,
                "messageId": message_id,
                "publishTime": crate::contract::rfc3339(chrono::Utc::now()),
            },
        });
        let url = format!("{}{START_PATH}", self.opts.target_url.trim_end_matches('/'));
        let request = HttpRequest::new()
            .set_url(url)
            .set_http_method(HttpMethod::Post)
            .set_headers([("content-type", "application/json")])
            .set_body(envelope.to_string().into_bytes())
            .set_oidc_token(
                OidcToken::new()
                    .set_service_account_email(&self.opts.service_account)
                    .set_audience(&self.opts.target_url),
            );
        Task::new()
            .set_name(format!("{}/tasks/{task_id}", self.opts.queue))
            .set_dispatch_deadline(google_cloud_wkt::Duration::clamp(DISPATCH_DEADLINE_SECS, 0))
            .set_http_request(request)
    }
}

#[async_trait]
impl StartQueue for CloudTasksQueue {
    async fn enqueue(
        &self,
        task_id: &str,
        message_id: &str,
        message: &OutMessage,
    ) -> Result<(), Failure> {
        let client = self.client().await?;
        let sent = client
            .create_task()
            .set_parent(&self.opts.queue)
            .set_task(self.task(task_id, message_id, message))
            .with_attempt_timeout(self.opts.call_timeout)
            .send()
            .await;
        match sent.map_err(|e| classify(&e)) {
            Ok(_) => Ok(()),
            Err(f) if f.code == Code::AlreadyExists => {
                tracing::info!(task = task_id, "copy start was queued before");
                Ok(())
            }
            Err(f) => Err(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redelivery_names_the_same_task_and_a_new_attempt_another() {
        assert_eq!(task_id("m-1", 1), task_id("m-1", 1));
        assert_ne!(task_id("m-1", 1), task_id("m-1", 2));
        assert_ne!(task_id("m-1", 1), task_id("m-2", 1));
        // Task ids: letters, digits, hyphens and underscores, at most 500 characters.
        let id = task_id("m-1", 1);
        assert!(id.len() <= 500 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }
}
