//! Cloud Tasks: the two queues that pace every Vertex AI call for the whole deployment
//! (docs/DESIGN.md §10; `COPY_START_QUEUE`, `COPY_POLL_QUEUE`).
//!
//! Vertex AI's quotas are per project and region, while Cloud Run runs as many instances as its
//! load asks for: a rate split per instance is either too slow or too fast. A Cloud Tasks
//! queue's rate limit (`rateLimits.maxDispatchesPerSecond`) holds for the queue, whatever
//! dispatches it. So the request stage queues a *copy-start task* (one CopyModel call), and
//! each running copy is followed by a chain of *poll tasks* (one GetOperation each), each
//! scheduled (`scheduleTime`) by the copy's age. No request is held open while a copy runs.
//!
//! Task names are derived, never random: a redelivered request, or a retried or duplicated
//! dispatch, names the same next task, and Cloud Tasks refuses a second task of one name with
//! ALREADY_EXISTS ("… another task with the same name can't be created for ~1 hour after the
//! original task was deleted or executed",
//! cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create),
//! which counts as created. A chain therefore never forks.

use async_trait::async_trait;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::options::RequestOptionsBuilder as _;
use google_cloud_tasks_v2::client::CloudTasks;
use google_cloud_tasks_v2::model::{HttpMethod, HttpRequest, OidcToken, Task};
use tokio::sync::OnceCell;

use crate::domain::sha256_hex;
use crate::retry::{Failure, classify};
use crate::topology::{DISPATCH_DEADLINE, POLLS_QUEUE, STARTS_QUEUE, TaskQueue};

/// Which of the two queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// `copy-starts`: one CopyModel call per task.
    Starts,
    /// `copy-polls`: one GetOperation per task.
    Polls,
}

impl Queue {
    fn topology(self) -> TaskQueue {
        match self {
            Queue::Starts => STARTS_QUEUE,
            Queue::Polls => POLLS_QUEUE,
        }
    }
}

/// One task to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    pub queue: Queue,
    /// The task id ([`start_task_id`], [`poll_task_id`]).
    pub id: String,
    /// The JSON body (`contract::task::CopyTask`).
    pub body: Vec<u8>,
    /// Not dispatched before this time; `None` for now.
    pub schedule: Option<chrono::DateTime<chrono::Utc>>,
}

/// Creates copy tasks. A seam: tests point it at testkit's Cloud Tasks fake.
#[async_trait]
pub trait TaskQueues: Send + Sync {
    /// Creates `task`; `Ok` too when a task of that name exists already or ran recently (a
    /// redelivery or a duplicated dispatch created it before).
    async fn create(&self, task: NewTask) -> Result<(), Failure>;
}

/// The id of the start task number `seq` of attempt `attempt` of request `request_id`'s chain
/// from `origin` (the Pub/Sub message that carried it, or the operation a restart follows).
pub fn start_task_id(origin: &str, request_id: &str, attempt: u32, seq: u32) -> String {
    let hash = sha256_hex(format!("{origin}:{request_id}:{attempt}:{seq}").as_bytes());
    format!("start-{}", &hash[..32])
}

/// The id of poll number `seq` of `operation`.
pub fn poll_task_id(operation: &str, seq: u32) -> String {
    let hash = sha256_hex(format!("{operation}:{seq}").as_bytes());
    format!("poll-{}", &hash[..32])
}

/// Where the queues are and what their tasks call.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// `COPY_START_QUEUE`: `projects/P/locations/L/queues/Q`.
    pub starts: String,
    /// `COPY_POLL_QUEUE`.
    pub polls: String,
    /// `CLOUD_TASKS_ENDPOINT`; `None` for `https://cloudtasks.googleapis.com`. A plain
    /// `http://` endpoint (the local fake) is used anonymously.
    pub endpoint: Option<String>,
    /// `TASKS_URL`: the worker's service URL, also the audience of the tasks' tokens.
    pub target_url: String,
    /// `TASKS_SERVICE_ACCOUNT`: the account whose OIDC token the tasks carry; `None` sends
    /// none (`PUSH_AUTH=none`, local tests).
    pub service_account: Option<String>,
    /// Limit on one attempt of the CreateTask call.
    pub call_timeout: std::time::Duration,
}

impl QueueOptions {
    fn queue(&self, q: Queue) -> &str {
        match q {
            Queue::Starts => &self.starts,
            Queue::Polls => &self.polls,
        }
    }
}

/// [`TaskQueues`] over the official `google-cloud-tasks-v2` client.
pub struct CloudTasksQueues {
    opts: QueueOptions,
    client: OnceCell<CloudTasks>,
}

impl CloudTasksQueues {
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

    fn task(&self, t: NewTask) -> Task {
        let url = format!(
            "{}{}",
            self.opts.target_url.trim_end_matches('/'),
            t.queue.topology().route
        );
        let mut request = HttpRequest::new()
            .set_url(url)
            .set_http_method(HttpMethod::Post)
            .set_headers([("content-type", "application/json")])
            .set_body(t.body);
        if let Some(account) = &self.opts.service_account {
            request = request.set_oidc_token(
                OidcToken::new()
                    .set_service_account_email(account)
                    .set_audience(&self.opts.target_url),
            );
        }
        let deadline = DISPATCH_DEADLINE.as_secs() as i64;
        let mut task = Task::new()
            .set_name(format!("{}/tasks/{}", self.opts.queue(t.queue), t.id))
            .set_dispatch_deadline(google_cloud_wkt::Duration::clamp(deadline, 0))
            .set_http_request(request);
        if let Some(at) = t.schedule {
            task = task.set_schedule_time(google_cloud_wkt::Timestamp::clamp(
                at.timestamp(),
                at.timestamp_subsec_nanos() as i32,
            ));
        }
        task
    }
}

/// The two queues' rates, as Cloud Tasks reports them (`rateLimits.maxDispatchesPerSecond`,
/// here a minute), for `doctor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueRates {
    pub starts_per_minute: f64,
    pub polls_per_minute: f64,
}

impl CloudTasksQueues {
    /// Reads both queues (GetQueue; `cloudtasks.queues.get`).
    pub async fn rates(&self) -> Result<QueueRates, Failure> {
        let client = self.client().await?;
        let mut per_minute = [0.0; 2];
        for (i, q) in [Queue::Starts, Queue::Polls].into_iter().enumerate() {
            let queue = client
                .get_queue()
                .set_name(self.opts.queue(q))
                .with_attempt_timeout(self.opts.call_timeout)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            let rate = queue
                .rate_limits
                .map_or(0.0, |r| r.max_dispatches_per_second);
            per_minute[i] = rate * 60.0;
        }
        Ok(QueueRates {
            starts_per_minute: per_minute[0],
            polls_per_minute: per_minute[1],
        })
    }
}

#[async_trait]
impl TaskQueues for CloudTasksQueues {
    async fn create(&self, t: NewTask) -> Result<(), Failure> {
        let client = self.client().await?;
        let parent = self.opts.queue(t.queue).to_owned();
        let task_id = t.id.clone();
        let sent = client
            .create_task()
            .set_parent(parent)
            .set_task(self.task(t))
            .with_attempt_timeout(self.opts.call_timeout)
            .send()
            .await;
        match sent.map_err(|e| classify(&e)) {
            Ok(_) => Ok(()),
            Err(f) if f.code == Code::AlreadyExists => {
                tracing::info!(
                    task = task_id,
                    "the task was created before; not created again"
                );
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
    fn a_redelivery_names_the_same_task_and_the_next_step_another() {
        let id = |origin, request, attempt, seq| start_task_id(origin, request, attempt, seq);
        assert_eq!(id("m-1", "r", 1, 0), id("m-1", "r", 1, 0));
        assert_ne!(id("m-1", "r", 1, 0), id("m-1", "r", 2, 0));
        assert_ne!(id("m-1", "r", 1, 0), id("m-1", "r", 1, 1));
        assert_ne!(id("m-1", "r", 1, 0), id("m-2", "r", 1, 0));
        assert_ne!(id("m-1", "r", 1, 0), id("m-1", "s", 1, 0));
        let op = "projects/1/locations/us-central1/operations/7";
        assert_eq!(poll_task_id(op, 4), poll_task_id(op, 4));
        assert_ne!(poll_task_id(op, 4), poll_task_id(op, 5));
        // Task ids: letters, digits, hyphens and underscores, at most 500 characters
        // (Task.name, cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks).
        for id in [start_task_id("m-1", "r", 1, 0), poll_task_id(op, 1)] {
            assert!(id.len() <= 500 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        }
    }
}
