//! `spawn_app()`: a worker on a free port, wired to the shared emulator, a Vertex fake and a
//! Cloud Tasks fake with both queues (copy starts and polls).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use clap::Parser;
use copy_worker::app::build_state;
use copy_worker::config::{Config, ServeArgs};
use copy_worker::http::PushMessage;
use copy_worker::http::{AppState, app};
use testkit::emulator::Emulator;
use testkit::oidc::{DEFAULT_EMAIL, OidcIssuer};
use testkit::pubsub::{Inbox, Topology, TopologyOptions};
use testkit::vertex::VertexFake;
use testkit::{CloudRunFront, CloudRunIam, QueueConfig, TasksFake};

/// `args_override_self`: a flag given twice takes its last value, so `Knobs::extra_args` can
/// override the defaults below (e.g. `--push-auth oidc`).
#[derive(Parser)]
#[command(args_override_self = true)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
}

/// Test knobs: short backoffs so Pub/Sub redelivery happens within seconds.
pub struct Knobs {
    pub extra_args: Vec<String>,
    pub topology: TopologyOptions,
    /// Deploy as on Cloud Run: a [`CloudRunFront`] (IAM invoker check, signature removed)
    /// between the emulator's pushes and a worker with `PUSH_AUTH=cloud-run`.
    pub cloud_run: bool,
    /// The copy-start queue ([`START_QUEUE`]) of testkit's Cloud Tasks fake.
    pub start_queue: QueueConfig,
    /// The poll queue ([`POLL_QUEUE`]).
    pub poll_queue: QueueConfig,
    /// With push authentication on outside Cloud Run: the issuer whose keys sign the tasks'
    /// tokens (for [`TASKS_ACCOUNT`], audience the worker's URL).
    pub tasks_keys: Option<testkit::oidc::IssuerKeys>,
    /// With `cloud_run`: hold the verifiers to this service's invoker check, read from a
    /// Cloud Run Admin endpoint, as `copy-worker serve` does (`app::anchor_to_service`).
    pub worker_service: Option<copy_worker::app::WorkerService>,
}

/// The copy-start queue of every test deployment.
pub const START_QUEUE: &str = "projects/it-project/locations/us-central1/queues/copy-starts";
/// The poll queue of every test deployment.
pub const POLL_QUEUE: &str = "projects/it-project/locations/us-central1/queues/copy-polls";
/// The account whose OIDC token the queues' tasks carry in a [`Knobs::cloud_run`] deployment.
pub const TASKS_ACCOUNT: &str = "copy-worker-tasks@it-project.iam.gserviceaccount.com";

/// A queue that dispatches at once and retries after a second: tests see in seconds what
/// the real queues do in minutes.
pub fn fast_queue() -> QueueConfig {
    QueueConfig {
        max_dispatches_per_second: 500.0,
        min_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        max_attempts: -1,
        ..QueueConfig::default()
    }
}

impl Knobs {
    /// The defaults, deployed behind a Cloud Run front.
    pub fn cloud_run() -> Self {
        Self {
            cloud_run: true,
            ..Self::default()
        }
    }
}

/// The direct caller of `POST /v1/models/copy` that holds `roles/run.invoker` in a
/// [`Knobs::cloud_run`] deployment.
pub const INVOKER: &str = "ec2-pipeline@it-project.iam.gserviceaccount.com";

/// Google's side of a [`Knobs::cloud_run`] deployment.
pub struct CloudRun {
    pub front: CloudRunFront,
    pub issuer: OidcIssuer,
}

impl CloudRun {
    /// An issuer and a front before the worker at `worker_url`, and the worker's flags.
    async fn start(worker_url: &str) -> (CloudRun, Vec<String>) {
        let issuer = OidcIssuer::start("set-per-token", DEFAULT_EMAIL)
            .await
            .expect("issuer");
        let iam = CloudRunIam {
            keys: issuer.keys(),
            custom_audiences: vec![],
            invokers: vec![DEFAULT_EMAIL.into(), INVOKER.into(), TASKS_ACCOUNT.into()],
            push_account: DEFAULT_EMAIL.into(),
            push_audience: None,
        };
        let front = CloudRunFront::start(worker_url, iam)
            .await
            .expect("cloud run front");
        let args = [
            "--push-auth",
            "cloud-run",
            "--cloud-run-service",
            "copy-worker",
            "--push-audience",
            &front.url(),
            "--push-service-accounts",
            DEFAULT_EMAIL,
            "--invoker-service-accounts",
            INVOKER,
            "--push-jwks-url",
            &issuer.jwks_url(),
        ];
        let args = args.iter().map(|s| s.to_string()).collect();
        (CloudRun { front, issuer }, args)
    }
}

/// Testkit's Cloud Tasks fake with both queues, and the worker's flags for it: the tasks call
/// `url`, and carry a token of [`TASKS_ACCOUNT`] when `keys` can mint one.
pub async fn start_tasks(
    url: &str,
    keys: Option<testkit::oidc::IssuerKeys>,
    knobs: &Knobs,
) -> (TasksFake, Vec<String>) {
    let signed = keys.is_some();
    let tasks = TasksFake::start(keys).await.expect("cloud tasks fake");
    tasks.create_queue(START_QUEUE, knobs.start_queue.clone());
    tasks.create_queue(POLL_QUEUE, knobs.poll_queue.clone());
    let mut args: Vec<String> = [
        "--copy-start-queue",
        START_QUEUE,
        "--copy-poll-queue",
        POLL_QUEUE,
        "--cloud-tasks-endpoint",
        &tasks.endpoint(),
        "--tasks-url",
        url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if signed {
        args.extend([
            "--tasks-service-account".to_owned(),
            TASKS_ACCOUNT.to_owned(),
        ]);
    }
    (tasks, args)
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            extra_args: vec![],
            cloud_run: false,
            start_queue: fast_queue(),
            poll_queue: fast_queue(),
            tasks_keys: None,
            worker_service: None,
            topology: TopologyOptions {
                request_backoff: (Duration::from_secs(1), Duration::from_secs(3)),
                request_ack_deadline: Duration::from_secs(60),
                ..TopologyOptions::default()
            },
        }
    }
}

pub struct TestApp {
    pub base_url: String,
    /// The emulator project of this test's topics.
    pub project: String,
    extra_args: Vec<String>,
    pub topology: Topology,
    pub vertex: VertexFake,
    /// The Cloud Tasks fake with [`START_QUEUE`] and [`POLL_QUEUE`].
    pub tasks: TasksFake,
    /// Google's side of a [`Knobs::cloud_run`] deployment.
    pub cloud_run: Option<CloudRun>,
    pub completions: Option<Inbox>,
    pub dead_letters: Inbox,
}

pub const SRC: &str = "projects/src-proj/locations/us-central1/models/1001";

pub fn emulator() -> &'static Emulator {
    Emulator::shared().unwrap_or_else(|e| {
        panic!("the Pub/Sub emulator is required for the integration tests: {e:#}")
    })
}

pub fn fresh_project(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "it-{}-{}-{}",
        name,
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The worker configuration of the tests: emulator, Vertex fake, no push auth.
pub fn test_config(project: &str, vertex: &str, extra_args: Vec<String>) -> Config {
    let emu = emulator();
    let mut argv: Vec<String> = [
        "t",
        "--project",
        project,
        "--push-auth",
        "none",
        "--pubsub-emulator-host",
        &emu.host(),
        "--vertex-endpoint",
        vertex,
        "--source-project",
        "src-proj",
        "--target-project",
        "dst-proj",
        "--location",
        "us-central1",
        // Queues no test uses unless it starts a Cloud Tasks fake (`start_tasks`), whose
        // flags come later and win.
        "--copy-start-queue",
        START_QUEUE,
        "--copy-poll-queue",
        POLL_QUEUE,
        "--tasks-url",
        "http://127.0.0.1:9",
        "--cloud-tasks-endpoint",
        "http://127.0.0.1:9",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(extra_args);
    let args = Args::try_parse_from(argv).expect("test args parse");
    Config::from_args(&args.serve).expect("test config")
}

/// Serves the worker built from `cfg` on `listener`, anchored to `worker_service` when the
/// test names one.
async fn serve_worker(
    listener: tokio::net::TcpListener,
    cfg: &Config,
    worker_service: Option<&copy_worker::app::WorkerService>,
) {
    let (state, _topics) = build_state(cfg).await.expect("app state");
    let state = match worker_service {
        Some(svc) => {
            let (state, refresh) = copy_worker::app::anchor_to_service(state, svc)
                .await
                .expect("anchored");
            tokio::spawn(refresh);
            state
        }
        None => state,
    };
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
}

/// The test's inboxes: every completion (when the topology has the topic) and every dead
/// letter.
async fn inboxes(topology: &Topology, completions: bool) -> (Option<Inbox>, Inbox) {
    let completions = if completions {
        Some(Inbox::open(topology, "copy-completions-all").await.unwrap())
    } else {
        None
    };
    topology
        .create_pull_subscription("dead-letter-all", "copy-dead-letter")
        .await
        .unwrap();
    let dead_letters = Inbox::open(topology, "dead-letter-all").await.unwrap();
    (completions, dead_letters)
}

pub async fn spawn_app(name: &str, knobs: Knobs) -> TestApp {
    let emu = emulator();
    let vertex = VertexFake::start().await.expect("vertex fake");
    vertex.add_model(SRC);
    let project = fresh_project(name);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let (cloud_run, mut extra_args) = if knobs.cloud_run {
        let (cloud_run, args) = CloudRun::start(&base_url).await;
        (Some(cloud_run), args)
    } else {
        (None, vec![])
    };
    let (tasks, task_args) = match &cloud_run {
        Some(c) => start_tasks(&c.front.url(), Some(c.issuer.keys()), &knobs).await,
        None => start_tasks(&base_url, knobs.tasks_keys.clone(), &knobs).await,
    };
    extra_args.extend(task_args);
    // The test's own flags come last, so they win.
    extra_args.extend(knobs.extra_args);

    let cfg = test_config(&project, &vertex.endpoint(), extra_args.clone());
    serve_worker(listener, &cfg, knobs.worker_service.as_ref()).await;

    let mut opts = knobs.topology;
    opts.push_base_url = match &cloud_run {
        Some(c) => c.front.push_url(),
        None => base_url.clone(),
    };
    let topology = Topology::create(&emu.endpoint(), &project, &opts)
        .await
        .expect("topology");
    let (completions, dead_letters) = inboxes(&topology, opts.create_completions_topic).await;
    TestApp {
        base_url,
        project,
        extra_args,
        topology,
        vertex,
        tasks,
        cloud_run,
        completions,
        dead_letters,
    }
}

impl TestApp {
    /// The subscriptions of the test's project, from the emulator's REST API.
    pub async fn subscriptions(&self) -> Vec<String> {
        let url = format!(
            "{}/v1/projects/{}/subscriptions",
            emulator().endpoint(),
            self.topology.project
        );
        let body: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        body["subscriptions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Copies of [`SRC`] take `d` to finish.
    pub fn copies_take(&self, d: Duration) {
        self.vertex.script(
            SRC,
            testkit::CopyScript {
                duration: d,
                ..Default::default()
            },
        );
    }

    /// Another worker instance of the same deployment (same topics, same fakes), which no
    /// push subscription or queue targets: tests hand it deliveries directly, as Cloud Run
    /// would route some pushes to a second instance.
    pub async fn second_instance(&self) -> AppState {
        let cfg = test_config(
            &self.project,
            &self.vertex.endpoint(),
            self.extra_args.clone(),
        );
        build_state(&cfg).await.expect("app state").0
    }

    pub async fn publish(&self, data: &str) -> String {
        self.topology
            .publish("copy-requests", data.as_bytes(), &[])
            .await
            .expect("publish request")
    }

    pub fn completions(&self) -> &Inbox {
        self.completions.as_ref().expect("completions inbox")
    }

    /// Waits for `n` completion events of `request_id`.
    pub async fn completion_of(
        &self,
        request_id: &str,
        n: usize,
        secs: u64,
    ) -> Vec<testkit::pubsub::Received> {
        self.completions()
            .of_request(request_id, n, Duration::from_secs(secs))
            .await
            .unwrap_or_else(|e| panic!("completion of {request_id}: {e:#}"))
    }

    pub async fn dead_letter_of(&self, request_id: &str, secs: u64) -> testkit::pubsub::Received {
        self.dead_letters
            .of_request(request_id, 1, Duration::from_secs(secs))
            .await
            .unwrap_or_else(|e| panic!("dead letter of {request_id}: {e:#}"))
            .remove(0)
    }

    /// Calls to the Vertex fake whose path contains `needle`.
    pub fn vertex_calls(&self, needle: &str) -> usize {
        self.vertex
            .calls()
            .iter()
            .filter(|c| c.path.contains(needle))
            .count()
    }
}

pub fn request(id: &str, model_id: &str) -> String {
    format!(
        r#"{{"request_id":"{id}","source_model":"{SRC}","destination":{{"project":"dst-proj","location":"europe-west4","model_id":"{model_id}"}},"context":{{"pipeline":"it"}}}}"#
    )
}

/// A push delivery as the worker's envelope parser would produce it.
pub fn push_message(id: &str, data: &str, attributes: &[(&str, &str)]) -> PushMessage {
    PushMessage {
        message_id: id.to_owned(),
        data: data.as_bytes().to_vec(),
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        publish_time: Some(chrono::Utc::now().to_rfc3339()),
        ordering_key: None,
        subscription: None,
        delivery_attempt: Some(1),
    }
}
