//! testkit's Vertex AI fake on its own, for local work against `copy-worker serve`:
//!
//! ```sh
//! cargo run --example fake-vertex -- --port 9090 \
//!   --model projects/ml-finetune/locations/us-central1/models/7704127342733426688 --copy-time 5s
//! VERTEX_ENDPOINT=http://127.0.0.1:9090 copy-worker serve ...
//! ```
//!
//! It speaks the REST JSON of the official `google-cloud-aiplatform-v1` client (CopyModel,
//! GetOperation, GetModel, ListModelVersions, ListModels), names projects by number as the
//! real service does, and runs until Ctrl-C. State lives in memory only.

use std::time::Duration;

use clap::Parser;
use testkit::{CopyScript, VertexFake};

/// The Vertex AI fake of testkit, on a fixed port.
#[derive(Parser)]
#[command(
    name = "fake-vertex",
    after_help = "\
Examples:
  cargo run --example fake-vertex -- --port 9090
  cargo run --example fake-vertex -- --port 9090 --copy-time 60s \\
    --model projects/ml-finetune/locations/us-central1/models/7704127342733426688

Point the worker (or doctor) at it with VERTEX_ENDPOINT=http://127.0.0.1:PORT."
)]
struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 9090)]
    port: u16,
    /// Source models to create, each with version 1 (repeatable).
    #[arg(
        long = "model",
        value_name = "NAME",
        default_value = "projects/ml-finetune/locations/us-central1/models/7704127342733426688"
    )]
    models: Vec<String>,
    /// How long each copy of these models runs before it succeeds.
    #[arg(long, default_value = "5s", value_parser = copy_worker::cli::parse_duration)]
    copy_time: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fake = VertexFake::start_on(args.port).await?;
    for m in &args.models {
        fake.add_model(m);
        fake.script(
            m,
            CopyScript {
                duration: args.copy_time,
                ..Default::default()
            },
        );
        println!("model {m} (version 1; copies take {:?})", args.copy_time);
    }
    println!("Vertex AI fake on {}", fake.endpoint());
    println!("export VERTEX_ENDPOINT={}", fake.endpoint());
    tokio::signal::ctrl_c().await?;
    println!("stopped");
    Ok(())
}
