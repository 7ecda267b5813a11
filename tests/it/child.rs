//! The worker as a child process (`copy-worker serve`), for signal and crash tests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::process::Child;

use crate::bin;
use crate::helpers::{POLL_QUEUE, START_QUEUE, emulator, fast_queue};

/// A `copy-worker serve` process behind a fixed front port (so push endpoints and the queues'
/// target survive restarts), with a Cloud Tasks fake of its own for both queues.
pub struct ChildWorker {
    /// The port push endpoints use: a front that forwards to `port`.
    pub front: u16,
    /// The queues' fake; its tasks call the front.
    pub tasks: testkit::TasksFake,
    pub child: Option<Child>,
    env: Vec<(String, String)>,
    pub log: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ChildWorker {
    /// Starts the worker with `PUSH_AUTH=none` against the shared emulator and `vertex` (empty:
    /// no `VERTEX_ENDPOINT`, so the regional endpoints, as in production).
    pub async fn start(project: &str, vertex: &str, extra: &[(&str, &str)]) -> ChildWorker {
        let port = free_port();
        let front = start_front(port).await;
        let tasks = testkit::TasksFake::start(None)
            .await
            .expect("cloud tasks fake");
        tasks.create_queue(START_QUEUE, fast_queue());
        tasks.create_queue(POLL_QUEUE, fast_queue());
        let mut env: Vec<(String, String)> = [
            ("PORT", port.to_string()),
            ("GOOGLE_CLOUD_PROJECT", project.to_owned()),
            ("PUSH_AUTH", "none".into()),
            ("PUBSUB_EMULATOR_HOST", emulator().host()),
            ("VERTEX_ENDPOINT", vertex.to_owned()),
            ("LOG_FORMAT", "json".into()),
            ("COPY_START_QUEUE", START_QUEUE.into()),
            ("COPY_POLL_QUEUE", POLL_QUEUE.into()),
            ("CLOUD_TASKS_ENDPOINT", tasks.endpoint()),
            ("TASKS_URL", format!("http://127.0.0.1:{front}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.retain(|(k, v)| !(k == "VERTEX_ENDPOINT" && v.is_empty()));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let log = std::env::temp_dir().join(format!("copy-worker-it-{project}.log"));
        let mut w = ChildWorker {
            front,
            tasks,
            child: None,
            env,
            log,
        };
        w.restart().await;
        w
    }

    /// The URL clients and push subscriptions use (the front).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.front)
    }

    /// (Re)starts the process and waits until `/healthz` answers.
    pub async fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = bin::command(["serve"])
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn copy-worker");
        self.child = Some(child);
        let t0 = Instant::now();
        let client = reqwest::Client::new();
        while t0.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = client
                .get(format!("{}/healthz", self.base_url()))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("worker did not answer /healthz; log:\n{}", self.log_text());
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().and_then(Child::id).expect("running") as i32
    }

    pub fn signal(&self, sig: &str) {
        bin::signal(self.pid() as u32, sig);
    }

    /// SIGKILL, and reap.
    pub async fn kill(&mut self) {
        self.signal("KILL");
        let _ = self.child.take().unwrap().wait().await;
    }

    /// Waits for the exit; returns the code and the time it took.
    pub async fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let t0 = Instant::now();
        let status = tokio::time::timeout(limit, self.child.as_mut().unwrap().wait())
            .await
            .unwrap_or_else(|_| panic!("no exit within {limit:?}; log:\n{}", self.log_text()))
            .unwrap();
        self.child = None;
        (status.code(), t0.elapsed())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A front like Cloud Run's: it forwards each connection to the worker, and while no
/// instance is listening it holds the connection until one is (a cold start), for up to
/// 15 s. The emulator stops pushing to an endpoint that fails fast for seconds, which real
/// Pub/Sub does not do (docs/reliability.md); the front keeps the test about the worker.
async fn start_front(backend: u16) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(15) {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
    });
    port
}

/// A push envelope as Pub/Sub sends it.
pub fn envelope(message_id: &str, data: &[u8], attributes: &[(&str, &str)]) -> String {
    let attrs: serde_json::Map<String, serde_json::Value> = attributes
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    serde_json::json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "attributes": attrs,
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2026-11-22T10:00:00Z",
        },
        "subscription": "projects/p/subscriptions/s",
    })
    .to_string()
}
