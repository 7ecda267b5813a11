//! testkit's Cloud Tasks fake on its own, for local work against `copy-worker serve`:
//!
//! ```sh
//! cargo run --example fake-tasks -- --port 9191 \
//!   --queue projects/p/locations/europe-west4/queues/copy-starts=0.5 \
//!   --queue projects/p/locations/europe-west4/queues/copy-polls=3.5
//! CLOUD_TASKS_ENDPOINT=http://127.0.0.1:9191 PUSH_JWKS_URL=… copy-worker serve ...
//! ```
//!
//! It speaks the REST JSON of the official `google-cloud-tasks-v2` client (CreateTask,
//! GetTask, DeleteTask, ListTasks, GetQueue, PauseQueue, ResumeQueue), dispatches each queue's
//! tasks at its rate with the documented retries and `X-CloudTasks-*` headers, signs the
//! OIDC tokens of tasks with an `oidcToken` with a local JWKS, prints every dispatch, and runs
//! until Ctrl-C. State lives in memory only.

use std::time::Duration;

use clap::Parser;
use testkit::tasks::check_queue_name;
use testkit::{OidcIssuer, QueueConfig, TasksFake};

/// The Cloud Tasks fake of testkit, on a fixed port.
#[derive(Parser)]
#[command(
    name = "fake-tasks",
    after_help = "\
Examples:
  cargo run --example fake-tasks -- --port 9191 \\
    --queue projects/p/locations/europe-west4/queues/copy-starts=0.5 \\
    --queue projects/p/locations/europe-west4/queues/copy-polls=3.5
  cargo run --example fake-tasks -- --port 9191 --jwks-port 9192 --duplicate-rate 0.1 \\
    --queue projects/p/locations/europe-west4/queues/copy-polls=3.5

Point the worker at it with CLOUD_TASKS_ENDPOINT=http://127.0.0.1:PORT, and let it verify
the tasks' OIDC tokens with PUSH_JWKS_URL set to the JWKS URL printed at start."
)]
struct Args {
    /// Port on 127.0.0.1 for the Cloud Tasks API.
    #[arg(long, default_value_t = 9191)]
    port: u16,
    /// A queue, projects/P/locations/L/queues/Q, and its max dispatches per second, joined by
    /// `=` (repeatable; other settings are a new queue's defaults).
    #[arg(long = "queue", value_name = "NAME=RATE", required = true, value_parser = parse_queue)]
    queues: Vec<(String, f64)>,
    /// Port on 127.0.0.1 for the JWKS that verifies the tasks' OIDC tokens (0: a free one).
    #[arg(long, default_value_t = 0)]
    jwks_port: u16,
    /// The share of attempts delivered twice, from 0 to 1 (Cloud Tasks delivers at least once).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    duplicate_rate: f64,
}

/// `NAME=RATE`: a queue name and a rate Cloud Tasks accepts (more than 0, at most 500).
fn parse_queue(s: &str) -> Result<(String, f64), String> {
    let (name, rate) = s.rsplit_once('=').ok_or_else(|| {
        format!("{s:?} has no rate: write NAME=RATE, e.g. projects/p/locations/l/queues/q=3.5")
    })?;
    check_queue_name(name)?;
    let rate: f64 = rate
        .parse()
        .map_err(|_| format!("rate {rate:?} is not a number of dispatches per second"))?;
    QueueConfig::with_rate(rate).check()?;
    Ok((name.to_string(), rate))
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!(
            "{s:?} is not a share from 0 to 1 (0.1 is one attempt in ten)"
        )),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let issuer = OidcIssuer::start_on(args.jwks_port, "unused", "unused@example.com").await?;
    let fake = TasksFake::start_on(args.port, Some(issuer.keys())).await?;
    fake.set_duplicate_rate(args.duplicate_rate);
    for (name, rate) in &args.queues {
        fake.create_queue(name, QueueConfig::with_rate(*rate));
        println!("queue {name} ({rate} dispatches/s)");
    }
    println!("Cloud Tasks fake on {}", fake.endpoint());
    println!("export CLOUD_TASKS_ENDPOINT={}", fake.endpoint());
    println!("export PUSH_JWKS_URL={}", issuer.jwks_url());
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    let mut shown = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticks.tick() => show_dispatches(&fake, &mut shown),
        }
    }
    println!("stopped");
    Ok(())
}

/// Prints each delivery once it has started and again once it is answered; `shown` holds the
/// status last printed for each row.
fn show_dispatches(fake: &TasksFake, shown: &mut Vec<Option<u16>>) {
    for (i, d) in fake.dispatches().iter().enumerate() {
        if i == shown.len() {
            let twice = if d.duplicate { " (duplicate)" } else { "" };
            println!("dispatch {} attempt {}{twice}", d.task, d.attempt);
            shown.push(None);
        }
        if d.status != 0 && shown[i] != Some(d.status) {
            println!("answered {} attempt {}: {}", d.task, d.attempt, d.status);
            shown[i] = Some(d.status);
        }
    }
}
