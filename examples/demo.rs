//! The local stack in one command: `cargo run --release --example demo`.
//!
//! Starts the official Pub/Sub emulator, the Vertex AI fake, testkit's Cloud Tasks fake with
//! the `copy-starts` and `copy-polls` queues (at Terraform's default rates) and the worker;
//! creates the topology of DESIGN.md §2 with push endpoints on localhost; publishes three sample
//! requests (one success, one failure, one rejection); prints each completion event as it
//! arrives and the signed webhook callback of the success; ends with a summary of the dead
//! letters, `replay --dry-run`, `events` and `doctor` (which reads the queues' rates); and
//! stops everything it started.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use copy_worker::app::build_state;
use copy_worker::cli::{DoctorArgs, EventsArgs, ReplayArgs};
use copy_worker::config::{Config, ServeArgs};
use copy_worker::http::app;
use copy_worker::telemetry;
use copy_worker::telemetry::LogFormat;
use copy_worker::topology::poll_rate_per_minute;
use testkit::{
    CopyScript, Emulator, Inbox, QueueConfig, TasksFake, Topology, TopologyOptions, VertexFake,
};

/// The emulator project of the demo's topics (any valid project id: the emulator needs none).
const PROJECT: &str = "copy-worker-demo";
const SOURCE: &str = "projects/ml-finetune/locations/us-central1/models/7704127342733426688";
/// Terraform's default `vertex_copy_rate` and `vertex_read_rate`, from which it derives the
/// queues' rates (DESIGN.md §10).
const COPY_RATE: f64 = 30.0;
const READ_RATE: f64 = 300.0;
const STARTS: &str = "projects/copy-worker-demo/locations/us-central1/queues/copy-starts";
const POLLS: &str = "projects/copy-worker-demo/locations/us-central1/queues/copy-polls";
/// The demo's callback signing secret (a Standard Webhooks `whsec_` secret).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The callbacks a webhook receiver got: headers and body.
type Hooks = tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, Vec<u8>)>;

/// A webhook receiver on localhost: each POST's headers and body go to the channel.
async fn start_receiver() -> anyhow::Result<(String, Hooks)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let hook = axum::routing::post(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body.to_vec()));
                axum::http::StatusCode::NO_CONTENT
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(
        async move { axum::serve(listener, axum::Router::new().route("/hook", hook)).await },
    );
    Ok((url, rx))
}

/// One command's flags, parsed as `copy-worker` parses them.
#[derive(Parser)]
struct Cmd<T: clap::Args> {
    #[command(flatten)]
    args: T,
}

fn samples(callback_url: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "a copy that succeeds (5 s on the fake), with a webhook callback",
            format!(
                r#"{{"request_id":"demo-success","source_model":"{SOURCE}@1","destination":{{"project":"ml-serving","location":"europe-west4","model_id":"demo-target"}},"context":{{"pipeline":"demo"}},"callback_url":"{callback_url}"}}"#
            ),
        ),
        (
            "a copy whose source model does not exist",
            r#"{"request_id":"demo-failure","source_model":"projects/ml-finetune/locations/us-central1/models/404","destination":{"project":"ml-serving","model_id":"demo-missing"}}"#.into(),
        ),
        (
            "a request with an invalid destination model id",
            r#"{"request_id":"demo-rejected","source_model":"projects/ml-finetune/locations/us-central1/models/1","destination":{"model_id":"Not_Valid!"}}"#.into(),
        ),
    ]
}

/// The Vertex AI fake, holding the demo's source model, whose copies take 5 s.
async fn start_vertex() -> anyhow::Result<VertexFake> {
    let vertex = VertexFake::start().await?;
    vertex.add_model(SOURCE);
    let script = CopyScript {
        duration: Duration::from_secs(5),
        ..Default::default()
    };
    vertex.script(SOURCE, script);
    println!("  Vertex AI fake on {}", vertex.endpoint());
    Ok(vertex)
}

/// The demo's two queues on testkit's Cloud Tasks fake, as Terraform creates them (§2).
async fn start_queues() -> anyhow::Result<TasksFake> {
    let fake = TasksFake::start(None).await?;
    let polls = poll_rate_per_minute(READ_RATE, COPY_RATE).context("no reads left for polls")?;
    for (name, per_minute, concurrent) in [(STARTS, COPY_RATE, 20), (POLLS, polls, 1000)] {
        let queue = QueueConfig {
            max_dispatches_per_second: per_minute / 60.0,
            max_concurrent_dispatches: concurrent,
            min_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(300),
            max_attempts: -1,
            ..QueueConfig::default()
        };
        fake.create_queue(name, queue);
        println!("  queue {name}: {per_minute}/min");
    }
    Ok(fake)
}

/// `--keep`: prints the environment of the running stack, then waits for Ctrl-C.
async fn keep_running(emulator: &Emulator, stack: &Running) -> anyhow::Result<()> {
    println!("\nThe stack keeps running; Ctrl-C stops it. In another terminal, run this line:");
    // One line, so it can be pasted (and parsed by the README test) as it is.
    println!(
        "export PUBSUB_EMULATOR_HOST={} GOOGLE_CLOUD_PROJECT={PROJECT} VERTEX_ENDPOINT={} PUSH_AUTH=none SOURCE_PROJECT=ml-finetune TARGET_PROJECT=ml-serving LOCATION=us-central1 COPY_START_QUEUE={STARTS} COPY_POLL_QUEUE={POLLS} CLOUD_TASKS_ENDPOINT={} TASKS_URL={}",
        emulator.host(),
        stack.vertex.endpoint(),
        stack.tasks.endpoint(),
        stack.base_url,
    );
    println!("It has source model {SOURCE} (version 1; copies take 5 s).");
    std::io::Write::flush(&mut std::io::stdout())?;
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// The local stack, three sample requests, and the CLI against them.
#[derive(Parser)]
#[command(
    name = "demo",
    after_help = "\
Examples:
  cargo run --release --example demo
  cargo run --release --example demo -- --keep   # then, in another terminal, the printed export line"
)]
struct DemoArgs {
    /// Leave the stack running after the demo (until Ctrl-C), and print the environment
    /// that points `copy-worker publish`, `replay`, `events`, `doctor` and `serve` at it.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let demo = DemoArgs::parse();
    let started = Instant::now();
    println!("copy-worker demo: starting the Pub/Sub emulator (a JVM; takes a few seconds)...");
    let mut emulator = Emulator::start().await?;
    let result = run(&emulator, demo.keep).await;
    emulator.stop();
    println!(
        "\nstopped the emulator, the Vertex AI fake and the worker ({:.1} s in all)",
        started.elapsed().as_secs_f64()
    );
    result
}

async fn run(emulator: &Emulator, keep: bool) -> anyhow::Result<()> {
    println!("  emulator on {}", emulator.host());
    let stack = Running::start(emulator).await?;
    // `copy-worker events` sees what is published after it starts: start it first. Its idle
    // timeout outlasts the gap between events: the copy-start queue spaces starts 2 s apart.
    let events = start_events(emulator)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (callback_url, callbacks) = start_receiver().await?;
    println!("  webhook receiver on {callback_url}\n");
    let topology = &stack.topology;
    for (what, body) in samples(&callback_url) {
        let id = topology
            .publish("copy-requests", body.as_bytes(), &[])
            .await?;
        println!("published {what}: message {id}");
    }
    show_completions(&stack.completions).await?;
    show_callback(callbacks, &callback_url).await?;
    show_dead_letters(&stack.dead_letters).await?;
    if keep {
        // The emulator keeps a closed streaming pull alive and goes on handing it the
        // subscription's messages (docs/reliability.md), so a dry-run here would hide the
        // dead letters of the README's next steps from the reader that follows it.
        println!(
            "\n(replay --dry-run skipped with --keep: the dead-letter subscription is left to your commands)"
        );
    } else {
        show_replay_dry_run(emulator).await?;
    }
    show_events_table(events).await?;
    show_doctor(&stack.argv).await?;
    if keep {
        keep_running(emulator, &stack).await?;
    }
    stack.server.abort();
    Ok(())
}

/// The fakes, the worker (in this process) and the topology, up and wired together.
struct Running {
    vertex: VertexFake,
    tasks: TasksFake,
    base_url: String,
    /// The worker's flags; `doctor` gets the same.
    argv: Vec<String>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    topology: Topology,
    completions: Inbox,
    dead_letters: Inbox,
}

impl Running {
    async fn start(emulator: &Emulator) -> anyhow::Result<Running> {
        let vertex = start_vertex().await?;
        let tasks = start_queues().await?;
        println!("  Cloud Tasks fake on {}", tasks.endpoint());
        let log = std::env::temp_dir().join("copy-worker-demo.log");
        let log_file = std::fs::File::create(&log)?;
        telemetry::init(LogFormat::Json, "demo", Arc::new(Mutex::new(log_file)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let argv = worker_argv(emulator, &vertex, &tasks, &base_url);
        let cfg = Config::from_args(&Cmd::<ServeArgs>::try_parse_from(&argv)?.args)?;
        let (state, _) = build_state(&cfg).await?;
        let server = tokio::spawn(async move { axum::serve(listener, app(state)).await });
        println!("  worker on {base_url} (JSON logs in {})", log.display());
        let opts = TopologyOptions {
            push_base_url: base_url.clone(),
            // As Terraform's: `status` and `wait` find the events published before they start.
            completions_retention: Some(copy_worker::topology::RETENTION),
            ..TopologyOptions::default()
        };
        let topology = Topology::create(&emulator.endpoint(), PROJECT, &opts)
            .await
            .context("creating the topology")?;
        topology
            .create_pull_subscription("demo-dead-letter-view", "copy-dead-letter")
            .await?;
        let completions = Inbox::open(&topology, "copy-completions-all").await?;
        let dead_letters = Inbox::open(&topology, "demo-dead-letter-view").await?;
        println!(
            "  topology: copy-requests → copy-requests-push, copy-callbacks → copy-callbacks-push, copy-completions, copy-dead-letter; tasks call {base_url}/tasks/copy-starts and /tasks/copy-polls"
        );
        Ok(Running {
            vertex,
            tasks,
            base_url,
            argv,
            server,
            topology,
            completions,
            dead_letters,
        })
    }
}

/// The worker's command line against the local stack (`serve …`: the first word stands
/// for the program's name). No value holds a space.
fn worker_argv(
    emulator: &Emulator,
    vertex: &VertexFake,
    tasks: &TasksFake,
    url: &str,
) -> Vec<String> {
    format!(
        "serve --project {PROJECT} --push-auth none --pubsub-emulator-host {} \
         --vertex-endpoint {} --source-project ml-finetune --target-project ml-serving \
         --location us-central1 --copy-start-queue {STARTS} --copy-poll-queue {POLLS} \
         --cloud-tasks-endpoint {} --tasks-url {url} --callback-allowed-hosts hooks.example.com \
         --callback-allow-http-loopback --callback-signing-secret {SECRET}",
        emulator.host(),
        vertex.endpoint(),
        tasks.endpoint(),
    )
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

type EventsRun = tokio::task::JoinHandle<(u8, Vec<u8>)>;

fn start_events(emulator: &Emulator) -> anyhow::Result<EventsRun> {
    let argv = format!(
        "events --format table --idle-timeout 15s --project {PROJECT} --pubsub-emulator-host {}",
        emulator.host()
    );
    let args = Cmd::<EventsArgs>::try_parse_from(argv.split(' '))?.args;
    Ok(tokio::spawn(async move {
        let mut out = Vec::new();
        let code = copy_worker::cli::tail(args, &mut out).await;
        (code, out)
    }))
}

async fn show_completions(completions: &Inbox) -> anyhow::Result<()> {
    println!("\nwaiting for completion events...");
    let t0 = Instant::now();
    let mut shown = 0;
    while shown < 3 && t0.elapsed() < Duration::from_secs(90) {
        for ev in completions.snapshot().iter().skip(shown) {
            println!(
                "\n[{:>5.1} s] {} {}\n{}",
                t0.elapsed().as_secs_f64(),
                ev.attribute("ce-type").unwrap_or("?"),
                ev.attribute("ce-id").unwrap_or("?"),
                serde_json::to_string_pretty(&ev.json())?
            );
            shown += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(shown == 3, "{shown} of 3 completion events within 90 s");
    Ok(())
}

/// The callback is its own push delivery on copy-callbacks: it follows the event.
async fn show_callback(mut callbacks: Hooks, url: &str) -> anyhow::Result<()> {
    let (headers, body) = tokio::time::timeout(Duration::from_secs(30), callbacks.recv())
        .await
        .context("no webhook callback within 30 s")?
        .context("the webhook receiver stopped")?;
    standardwebhooks::Webhook::new(SECRET)?
        .verify(&body, &headers)
        .context("the callback's signature does not verify")?;
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    println!(
        "\ncallback POSTed to {url}: webhook-id {id}, {} bytes of event JSON, signature verified with the Standard Webhooks library",
        body.len()
    );
    Ok(())
}

async fn show_dead_letters(dead_letters: &Inbox) -> anyhow::Result<()> {
    let dls = dead_letters
        .wait_for(2, Duration::from_secs(30), |_| true)
        .await?;
    let mut by_code: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &dls {
        by_code
            .entry(d.attribute("error_code").unwrap_or("?").to_owned())
            .or_default()
            .push(d.attribute("request_id").unwrap_or("?").to_owned());
    }
    println!("\ndead letters on copy-dead-letter:");
    for (code, ids) in by_code {
        println!("  {code:<16} {} message(s): {}", ids.len(), ids.join(", "));
    }
    Ok(())
}

async fn show_replay_dry_run(emulator: &Emulator) -> anyhow::Result<()> {
    println!("\n$ copy-worker replay --dry-run   (what a replay would move; nothing is acked)");
    let argv = format!(
        "replay --dry-run --project {PROJECT} --idle-timeout 3s --pubsub-emulator-host {}",
        emulator.host()
    );
    let args = Cmd::<ReplayArgs>::try_parse_from(argv.split(' '))?.args;
    // The run itself, not `replay::run`, which takes over Ctrl-C for the rest of the process.
    let plan = args.plan().map_err(anyhow::Error::msg)?;
    let (summary, result) = copy_worker::cli::execute_replay(plan).await;
    println!("{}", summary.to_json());
    result.context("replay --dry-run")
}

async fn show_events_table(events: EventsRun) -> anyhow::Result<()> {
    println!("\n$ copy-worker events --format table   (started before the samples were published)");
    let (code, out) = events.await?;
    anyhow::ensure!(code == 0, "events exited {code}");
    let text = String::from_utf8_lossy(&out);
    let shown = text.lines().count().saturating_sub(1);
    anyhow::ensure!(shown == 3, "events showed {shown} of the 3 outcomes");
    print!("{text}");
    Ok(())
}

/// The same configuration the worker runs with: what `doctor` would say before a deploy. It
/// reads the queues' rates from the Cloud Tasks fake (GetQueue).
async fn show_doctor(argv: &[String]) -> anyhow::Result<()> {
    println!("\n$ copy-worker doctor   (with the worker's configuration)");
    let args = std::iter::once("doctor").chain(argv[1..].iter().map(String::as_str));
    let args = Cmd::<DoctorArgs>::try_parse_from(args)?.args;
    let report = copy_worker::cli::diagnose(&args).await;
    print!("{}", report.text());
    anyhow::ensure!(
        report.passed(),
        "doctor found failures in the demo's own stack"
    );
    Ok(())
}
