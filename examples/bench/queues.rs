//! The two Cloud Tasks queues of a bench deployment (DESIGN.md §2, §10) on testkit's fake, at
//! the rates Terraform derives from the default `vertex_copy_rate` and `vertex_read_rate`,
//! time-compressed with the rest of a row.

use std::time::Duration;

use copy_worker::topology::poll_rate_per_minute;
use testkit::{QueueConfig, TasksFake};

/// Terraform's default `vertex_copy_rate`: CopyModel calls a minute for the deployment.
pub const COPY_RATE: f64 = 30.0;
/// Terraform's default `vertex_read_rate`: Vertex AI reads a minute for the deployment.
pub const READ_RATE: f64 = 300.0;

/// The poll queue's rate a minute: the reads the starts leave (300 − 3 × 30 = 210).
pub fn poll_rate() -> f64 {
    poll_rate_per_minute(READ_RATE, COPY_RATE).expect("the defaults leave reads for polls")
}

/// testkit's Cloud Tasks fake with `copy-starts` and `copy-polls` of one project.
pub struct Queues {
    pub fake: TasksFake,
    pub starts: String,
    pub polls: String,
}

impl Queues {
    /// Both queues at the default rates × `scale`, with the module's retry settings
    /// (unlimited attempts, backoff 10–300 s) ÷ `scale`.
    pub async fn start(project: &str, scale: f64) -> anyhow::Result<Queues> {
        let fake = TasksFake::start(None).await?;
        let name = |q: &str| format!("projects/{project}/locations/us-central1/queues/{q}");
        let (starts, polls) = (name("copy-starts"), name("copy-polls"));
        fake.create_queue(
            &starts,
            QueueConfig {
                // Terraform's copy_start_queue.max_concurrent_dispatches default.
                max_concurrent_dispatches: 20,
                ..queue(COPY_RATE, scale)
            },
        );
        fake.create_queue(&polls, queue(poll_rate(), scale));
        Ok(Queues {
            fake,
            starts,
            polls,
        })
    }

    /// The worker's variables for these queues; their tasks call `tasks_url`.
    pub fn env(&self, tasks_url: &str) -> Vec<(String, String)> {
        [
            ("COPY_START_QUEUE", self.starts.clone()),
            ("COPY_POLL_QUEUE", self.polls.clone()),
            ("CLOUD_TASKS_ENDPOINT", self.fake.endpoint()),
            ("TASKS_URL", tasks_url.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// A queue of `per_minute` dispatches, compressed `scale` times.
fn queue(per_minute: f64, scale: f64) -> QueueConfig {
    let unscaled = QueueConfig::with_rate(per_minute / 60.0);
    QueueConfig {
        max_dispatches_per_second: per_minute / 60.0 * scale,
        min_backoff: Duration::from_secs_f64(10.0 / scale),
        max_backoff: Duration::from_secs_f64(300.0 / scale),
        max_attempts: -1,
        // A token is one dispatch whatever the time scale: the bucket holds what the
        // uncompressed queue's holds (1 for the starts, 4 for the polls), else compression
        // alone would allow bursts of `scale` times more.
        max_burst_size: Some(unscaled.burst_size()),
        ..QueueConfig::default()
    }
}
