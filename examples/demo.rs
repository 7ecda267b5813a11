//! The local stack in one command: `cargo run --release --example demo`.
//!
//! Starts the official Pub/Sub emulator, the Vertex AI fake and the worker; creates the
//! topology of DESIGN.md §2 with push endpoints on localhost; publishes three sample
//! requests (one success, one failure, one rejection); prints each completion event as it
//! arrives and the signed webhook callback of the success; ends with a summary of the dead
//! letters, `replay --dry-run`, `events` and `doctor`; and stops everything it started.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use copy_worker::app::build_state;
use copy_worker::config::{Config, ServeArgs};
use copy_worker::http::app;
use copy_worker::telemetry;
use copy_worker::telemetry::LogFormat;
use testkit::{CopyScript, Emulator, Inbox, Topology, TopologyOptions, VertexFake};

/// The emulator project of the demo's topics (any valid project id: the emulator needs none).
const PROJECT: &str = "copy-worker-demo";
const SOURCE: &str = "projects/ml-finetune/locations/us-central1/models/7704127342733426688";
/// The demo's callback signing secret (a Standard Webhooks `whsec_` secret).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A webhook receiver on localhost: each POST's headers and body go to the channel.
async fn start_receiver() -> anyhow::Result<(
    String,
    tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, Vec<u8>)>,
)> {
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

#[derive(Parser)]
struct ReplayCli {
    #[command(flatten)]
    args: copy_worker::cli::replay::ReplayArgs,
}

#[derive(Parser)]
struct EventsCli {
    #[command(flatten)]
    args: copy_worker::cli::events::EventsArgs,
}

#[derive(Parser)]
struct DoctorCli {
    #[command(flatten)]
    args: copy_worker::cli::doctor::DoctorArgs,
}

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
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

/// `--keep`: prints the environment of the running stack, then waits for Ctrl-C.
async fn keep_running(emulator: &Emulator, vertex: &VertexFake) -> anyhow::Result<()> {
    println!("\nThe stack keeps running; Ctrl-C stops it. In another terminal, run this line:");
    // One line, so it can be pasted (and parsed by the README test) as it is.
    println!(
        "export PUBSUB_EMULATOR_HOST={} GOOGLE_CLOUD_PROJECT={PROJECT} VERTEX_ENDPOINT={} PUSH_AUTH=none SOURCE_PROJECT=ml-finetune TARGET_PROJECT=ml-serving LOCATION=us-central1",
        emulator.host(),
        vertex.endpoint()
    );
    println!("It has source model {SOURCE} (version 1; copies take 5 s).");
    use std::io::Write as _;
    std::io::stdout().flush()?;
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
    let vertex = VertexFake::start().await?;
    vertex.add_model(SOURCE);
    vertex.script(
        SOURCE,
        CopyScript {
            duration: Duration::from_secs(5),
            ..Default::default()
        },
    );
    println!("  Vertex AI fake on {}", vertex.endpoint());

    let log_path = std::env::temp_dir().join("copy-worker-demo.log");
    let log_file = std::fs::File::create(&log_path)?;
    telemetry::init(LogFormat::Json, "demo", Arc::new(Mutex::new(log_file)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let argv = [
        "demo",
        "--project",
        PROJECT,
        "--push-auth",
        "none",
        "--pubsub-emulator-host",
        &emulator.host(),
        "--vertex-endpoint",
        &vertex.endpoint(),
        "--source-project",
        "ml-finetune",
        "--target-project",
        "ml-serving",
        "--location",
        "us-central1",
        "--callback-allowed-hosts",
        "hooks.example.com",
        "--callback-allow-http-loopback",
        "--callback-signing-secret",
        SECRET,
    ];
    let cfg = Config::from_args(&Args::try_parse_from(argv)?.serve)?;
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let (state, _) = build_state(&cfg, stop_rx).await?;
    let server = tokio::spawn(async move { axum::serve(listener, app(state)).await });
    println!(
        "  worker on {base_url} (JSON logs in {})",
        log_path.display()
    );

    let opts = TopologyOptions {
        push_base_url: base_url,
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
        "  topology: copy-requests → copy-requests-push, copy-operations → copy-operations-push, copy-callbacks → copy-callbacks-push, copy-completions, copy-dead-letter"
    );

    // `copy-worker events` sees what is published after it starts: start it first.
    let events = EventsCli::try_parse_from([
        "events",
        "--format",
        "table",
        "--idle-timeout",
        "8s",
        "--project",
        PROJECT,
        "--pubsub-emulator-host",
        &emulator.host(),
    ])?;
    let events = tokio::spawn(async move {
        let mut out = Vec::new();
        let code = copy_worker::cli::events::tail(events.args, &mut out).await;
        (code, out)
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (callback_url, mut callbacks) = start_receiver().await?;
    println!("  webhook receiver on {callback_url}\n");
    for (what, body) in samples(&callback_url) {
        let id = topology
            .publish("copy-requests", body.as_bytes(), &[])
            .await?;
        println!("published {what}: message {id}");
    }
    println!("\nwaiting for completion events...");
    let t0 = Instant::now();
    let mut shown = 0;
    while shown < 3 && t0.elapsed() < Duration::from_secs(90) {
        for ev in completions.snapshot().iter().skip(shown) {
            let j = ev.json();
            println!(
                "\n[{:>5.1} s] {} {}\n{}",
                t0.elapsed().as_secs_f64(),
                ev.attribute("ce-type").unwrap_or("?"),
                ev.attribute("ce-id").unwrap_or("?"),
                serde_json::to_string_pretty(&j)?
            );
            shown += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(
        shown == 3,
        "only {shown} of 3 completion events arrived within 90 s"
    );

    // The callback is its own push delivery on copy-callbacks: it follows the event.
    let (headers, body) = tokio::time::timeout(Duration::from_secs(30), callbacks.recv())
        .await
        .context("no webhook callback within 30 s")?
        .context("the webhook receiver stopped")?;
    standardwebhooks::Webhook::new(SECRET)?
        .verify(&body, &headers)
        .context("the callback's signature does not verify")?;
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_owned()
    };
    println!(
        "\ncallback POSTed to {callback_url}: webhook-id {}, {} bytes of event JSON, signature verified with the Standard Webhooks library",
        header("webhook-id"),
        body.len()
    );

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
    if keep {
        // The emulator keeps a closed streaming pull alive and goes on handing it the
        // subscription's messages (docs/reliability.md), so a dry-run here would hide the
        // dead letters of the README's next steps from the reader that follows it.
        println!(
            "\n(replay --dry-run skipped with --keep: the dead-letter subscription is left to your commands)"
        );
    } else {
        println!(
            "\n$ copy-worker replay --dry-run   (what a replay would move back; nothing is acked)"
        );
        let replay = ReplayCli::try_parse_from([
            "replay",
            "--dry-run",
            "--project",
            PROJECT,
            "--idle-timeout",
            "3s",
            "--pubsub-emulator-host",
            &emulator.host(),
        ])?;
        let code = copy_worker::cli::replay::run(replay.args).await;
        anyhow::ensure!(code == 0, "replay --dry-run exited {code}");
    }
    println!("\n$ copy-worker events --format table   (started before the samples were published)");
    let (code, out) = events.await?;
    anyhow::ensure!(code == 0, "events exited {code}");
    let shown = String::from_utf8_lossy(&out)
        .lines()
        .count()
        .saturating_sub(1);
    anyhow::ensure!(shown == 3, "events showed {shown} of the 3 outcomes");
    print!("{}", String::from_utf8_lossy(&out));
    // The same configuration the worker runs with: what `doctor` would say before a deploy.
    println!("\n$ copy-worker doctor   (with the worker's configuration)");
    let doctor =
        DoctorCli::try_parse_from(std::iter::once("doctor").chain(argv[1..].iter().copied()))?;
    let report = copy_worker::cli::doctor::diagnose(&doctor.args).await;
    print!("{}", report.text());
    anyhow::ensure!(
        report.passed(),
        "doctor found failures in the demo's own stack"
    );
    if keep {
        keep_running(emulator, &vertex).await?;
    }
    server.abort();
    Ok(())
}
