//! One local deployment of the poll-chain design (DESIGN.md §2) for the isolated-copy and
//! burst rows: a Vertex AI fake copying one source, testkit's Cloud Tasks fake with both
//! queues, N `copy-worker serve` processes behind a [`Meter`], the Pub/Sub topology pushing
//! to the meter (through a push-window front when asked), and the completion events with the
//! instant each arrived.
//!
//! Time compression: `scale` divides the fake's copy time and quota window, the queues'
//! rates and backoffs, the subscriptions' backoffs and the worker's own schedule
//! (`COPY_WORKER_TIME_SCALE`). Ack deadlines (the emulator's minimum is 10 s) and the
//! stages' 45 s budget do not shrink; they bound worst cases, not the steady state.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use google_cloud_pubsub::client::Subscriber;
use testkit::vertex::Quotas;
use testkit::{Emulator, PushFront, PushWindow, Topology, TopologyOptions, VertexFake};

use crate::meter::Meter;
use crate::proc::{self, Worker};
use crate::queues::Queues;

pub const SOURCE: &str = "projects/bench-src/locations/us-central1/models/1500";

/// What to deploy.
pub struct Plan {
    pub project: String,
    /// The copy's uncompressed length.
    pub copy: Duration,
    pub scale: f64,
    pub instances: usize,
    /// Enforce Vertex AI's default quotas in the fake (compressed).
    pub quotas: bool,
    /// Put a push-window front (Pub/Sub's flow control) before the meter.
    pub push_window: bool,
    pub rust_log: &'static str,
}

pub struct Deployment {
    pub scale: f64,
    pub vertex: VertexFake,
    /// Held for the deployment's life: the queues and the push front stop when dropped.
    pub _queues: Queues,
    pub meter: Meter,
    pub _push: Option<PushFront>,
    pub workers: Vec<Worker>,
    pub topology: Topology,
    pub events: Arrivals,
    pub dead_letters: Arrivals,
}

impl Deployment {
    pub async fn start(emu: &Emulator, plan: &Plan) -> anyhow::Result<Deployment> {
        let s = |d: Duration| d.div_f64(plan.scale);
        let vertex = VertexFake::start().await?;
        vertex.add_model(SOURCE);
        let script = testkit::CopyScript {
            duration: s(plan.copy),
            ..Default::default()
        };
        vertex.script(SOURCE, script);
        if plan.quotas {
            vertex.set_quotas(Quotas {
                window: s(Duration::from_secs(60)),
                ..Quotas::VERTEX_DEFAULTS
            });
        }
        let queues = Queues::start(&plan.project, plan.scale).await?;
        let meter = Meter::start(&[]).await?;
        let mut env = proc::base_env(&plan.project, &emu.host(), &vertex.endpoint());
        env.extend(queues.env(&meter.url()));
        proc::set_env(&mut env, "COPY_WORKER_TIME_SCALE", &plan.scale.to_string());
        proc::set_env(&mut env, "RUST_LOG", plan.rust_log);
        let client = reqwest::Client::new();
        let mut workers = Vec::new();
        for i in 0..plan.instances {
            let log = format!("copy-worker-bench-{}-{i}.log", plan.project);
            let w = Worker::spawn(&env, &log, None)?;
            w.wait_healthy(&client).await?;
            meter.add_target(&w.base_url());
            workers.push(w);
        }
        let push = match plan.push_window {
            true => Some(PushFront::start(&meter.url(), PushWindow::default()).await?),
            false => None,
        };
        // The Terraform module's subscription settings, backoffs compressed.
        let opts = TopologyOptions {
            push_base_url: push.as_ref().map_or(meter.url(), PushFront::url),
            request_backoff: (s(Duration::from_secs(10)), s(Duration::from_secs(600))),
            ..TopologyOptions::default()
        };
        let topology = Topology::create(&emu.endpoint(), &plan.project, &opts).await?;
        topology
            .create_pull_subscription("bench-dead-letters", "copy-dead-letter")
            .await?;
        let events = Arrivals::open(&topology, "copy-completions-all").await?;
        let dead_letters = Arrivals::open(&topology, "bench-dead-letters").await?;
        Ok(Deployment {
            scale: plan.scale,
            vertex,
            _queues: queues,
            meter,
            _push: push,
            workers,
            topology,
            events,
            dead_letters,
        })
    }

    /// Publishes copy request `id` into destination model `id`.
    pub async fn publish(&self, id: &str) -> anyhow::Result<()> {
        let body = format!(
            r#"{{"request_id":"{id}","source_model":"{SOURCE}@1","destination":{{"project":"bench-dst","location":"us-central1","model_id":"{id}"}}}}"#
        );
        self.topology
            .publish("copy-requests", body.as_bytes(), &[])
            .await?;
        Ok(())
    }

    pub async fn stop(self) {
        for w in self.workers {
            w.stop().await;
        }
    }
}

/// A message as it arrived on a pull subscription.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub at: Instant,
    pub request_id: String,
    pub status: String,
    /// The event's `operation`, when it names one.
    pub operation: Option<String>,
}

/// Every message of a pull subscription with the instant it arrived (a streaming pull of its
/// own, acking as it goes). The stream stops when this is dropped.
pub struct Arrivals {
    seen: Arc<Mutex<Vec<Arrival>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Arrivals {
    pub async fn open(topology: &Topology, short: &str) -> anyhow::Result<Arrivals> {
        let subscriber = Subscriber::builder()
            .with_endpoint(&topology.endpoint)
            .with_credentials(testkit::pubsub::anonymous())
            .build()
            .await?;
        let mut stream = subscriber.subscribe(topology.subscription(short)).build();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let _subscriber = subscriber;
            while let Some(Ok((m, handler))) = stream.next().await {
                let at = Instant::now();
                let json: serde_json::Value = serde_json::from_slice(&m.data).unwrap_or_default();
                let attr = |k: &str| m.attributes.get(k).cloned().unwrap_or_default();
                let arrival = Arrival {
                    at,
                    request_id: attr("request_id"),
                    status: attr("status"),
                    operation: json["operation"].as_str().map(str::to_owned),
                };
                handler.ack();
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(arrival);
            }
        });
        Ok(Arrivals { seen, task })
    }

    pub fn all(&self) -> Vec<Arrival> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// How many request ids arrived (a redelivery counts once).
    pub fn distinct(&self) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let ids: std::collections::HashSet<&str> =
            seen.iter().map(|a| a.request_id.as_str()).collect();
        ids.len()
    }

    /// The first arrival for `request_id`.
    pub fn of(&self, request_id: &str) -> Option<Arrival> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter().find(|a| a.request_id == request_id).cloned()
    }
}

impl Drop for Arrivals {
    fn drop(&mut self) {
        self.task.abort();
    }
}
