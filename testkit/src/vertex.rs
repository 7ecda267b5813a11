//! A faithful fake of the Vertex AI ModelService REST surface that the official Rust client
//! (`google-cloud-aiplatform-v1`, HTTP/JSON transport) uses for copies (DESIGN.md §9).
//!
//! # Surface
//! - `POST /v1/{parent}/models:copy` → a google.longrunning.Operation, `done: false`.
//! - `GET /ui/{operation}` (the binding the Rust client calls) and `GET /v1/{operation}`.
//! - `GET /v1/{model}` with or without `@version` (an id, `default` or another alias).
//! - `GET /v1/{model}:listVersions` with `pageSize`/`pageToken`.
//! - Anything else: 404 with a google.rpc error body naming the path.
//!
//! # Behaviour worth knowing
//! - Like Vertex AI, the fake accepts a project id or number in every name (paths and
//!   CopyModelRequest fields) and answers every name with the project number: operation names,
//!   `CopyModelResponse.model`, `Model.name`, `originalModelInfo.model`. The number of an id is
//!   [`project_number`]; [`numbered`] rewrites a whole name; [`VertexFake::project_numbers`] lists
//!   the ids seen so far. There is no mode that echoes ids: callers must compare identities, not
//!   strings (DESIGN.md §10).
//! - Quotas ([`Quotas`]) are off until [`VertexFake::set_quotas`]; then requests beyond the
//!   limit of their (project number, location) answer 429 `RESOURCE_EXHAUSTED` with the real
//!   body. Off by default because the suites in `tests/it` and the benchmark were written
//!   against an unlimited fake and drive hundreds of copies and polls per project per minute;
//!   a test about pacing opts in. [`VertexFake::rpc_count`] counts calls either way.
//! - Operations run for their source's [`CopyScript::duration`] of real time. Until they succeed
//!   the destination model answers 404; a failed operation frees the model id.
//! - A `modelId` that exists, or that a running copy will create, answers 409 `ALREADY_EXISTS`.
//! - `originalModelInfo.model` always names the copied version (`…/models/123@1`), also when the
//!   request named none: that is what Vertex records, and what idempotency checks must compare.
//! - Faults ([`Fault`]) are consumed per source model, in order; [`VertexFake::set_outage`]
//!   overrides everything until its deadline.
//! - The client retries idempotent calls (GET) on `UNAVAILABLE` and on transport errors by itself
//!   (up to 10 attempts / 60 s by default), so a single scripted GET fault is usually invisible
//!   to the caller; `POST …:copy` is never retried by the client.

mod projects;
mod quota;
mod routes;
mod specs;
mod state;
mod wire;

pub use projects::{numbered, project_number};
pub use quota::{Quotas, Rpc, RpcCount};
pub use specs::ModelSpecs;

use anyhow::Context;
use routes::{KillSwitch, Shared, lock};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// A misbehaviour injected into one call.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this HTTP status and google.rpc status name (e.g. `503`, `"UNAVAILABLE"`).
    Http(u16, &'static str),
    /// Close the TCP connection without answering; the client sees an I/O error. The call is
    /// recorded with status 0.
    ResetConnection,
    /// Sleep, then answer normally (state changes happen after the sleep).
    Delay(Duration),
    /// Do the call now (state changes at once), then hold the answer this long: a client that
    /// gives up first cannot tell whether the call took effect. This is the ambiguous failure
    /// of a non-idempotent call such as CopyModel: AIP-194 (google.aip.dev/194) counts a
    /// DEADLINE_EXCEEDED as "the request may or may not have been processed".
    SlowAnswer(Duration),
}

/// How copies of one source model behave. Keyed by the source name without `@version`.
#[derive(Clone, Debug, Default)]
pub struct CopyScript {
    /// How long each copy operation runs before it is done.
    pub duration: Duration,
    /// Consumed in order by successive copy calls for this source (then normal).
    pub copy_faults: Vec<Fault>,
    /// Successive operations for this source end with these google.rpc errors (code number,
    /// message), then operations succeed.
    pub operation_errors: Vec<(i32, String)>,
    /// Consumed in order by successive GET-operation calls for operations of this source.
    pub get_operation_faults: Vec<Fault>,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Percent-decoded path, e.g. `/v1/projects/p/locations/l/models:copy`.
    pub path: String,
    /// The path exactly as sent.
    pub raw_path: String,
    /// Percent-decoded query string without `?`; the client always sends
    /// `$alt=json;enum-encoding=int` (encoded on the wire as `%24alt=json%3Benum-encoding%3Dint`).
    pub query: String,
    /// JSON body, if any (a body that is not JSON is kept as a JSON string).
    pub body: Option<serde_json::Value>,
    /// The ModelService method the path routes to; `None` for unknown paths.
    pub rpc: Option<Rpc>,
    /// Status answered; 0 when the connection was reset instead.
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

/// The running fake; the server stops when this is dropped.
#[derive(Debug)]
pub struct VertexFake {
    shared: Shared,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl VertexFake {
    /// Serves the fake on a free port of 127.0.0.1 (in the current tokio runtime).
    pub async fn start() -> anyhow::Result<VertexFake> {
        Self::start_on(0).await
    }

    /// Serves the fake on `port` of 127.0.0.1 (0: a free one).
    pub async fn start_on(port: u16) -> anyhow::Result<VertexFake> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding the Vertex fake to 127.0.0.1:{port}"))?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(state::State::default()));
        let router = axum::Router::new()
            .fallback(routes::handle)
            .with_state(shared.clone());
        let server = tokio::spawn(serve(listener, router));
        Ok(VertexFake {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, for `with_endpoint` and `VERTEX_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a source model `projects/p/locations/l/models/ID` with version `1`, the default.
    /// The project may be an id or a number: the model is stored under the number, so either
    /// spelling finds it.
    pub fn add_model(&self, name: &str) {
        lock(&self.shared).add_model(name);
    }

    /// Gives a model added before (its default version, or the `@version` named) a serving
    /// container and a customer-managed key, returned as `containerSpec` and `encryptionSpec`.
    /// A copy keeps the container and drops the key; a cross-project copy of a third-party
    /// image fails in its operation (see [`ModelSpecs`]).
    ///
    /// # Panics
    /// If the model or version does not exist.
    pub fn set_specs(&self, model: &str, specs: ModelSpecs) {
        let set = lock(&self.shared).set_specs(model, &specs);
        assert!(set, "set_specs: model {model} does not exist");
    }

    /// Adds the next version (`2`, `3`, …) to a model added before and returns its id. `aliases`
    /// move to the new version; `default` among them makes it the default version.
    ///
    /// # Panics
    /// If the model does not exist.
    pub fn add_version(&self, model: &str, aliases: &[&str]) -> String {
        let added = lock(&self.shared).add_version(model, aliases);
        added.unwrap_or_else(|| panic!("add_version: model {model} does not exist"))
    }

    /// Scripts copies whose source is `source_model` (any `@version` is ignored; either
    /// spelling of the project).
    pub fn script(&self, source_model: &str, script: CopyScript) {
        lock(&self.shared).set_script(source_model, script);
    }

    /// Enforces `quotas` from now on, per (project number, location); earlier calls do not
    /// count.
    pub fn set_quotas(&self, quotas: Quotas) {
        lock(&self.shared).ledger.enforce(Some(quotas));
    }

    /// Stops enforcing quotas (the default).
    pub fn clear_quotas(&self) {
        lock(&self.shared).ledger.enforce(None);
    }

    /// Calls routed to `rpc` so far, and how many of them a quota answered 429.
    pub fn rpc_count(&self, rpc: Rpc) -> RpcCount {
        let state = lock(&self.shared);
        state.ledger.counts.get(&rpc).copied().unwrap_or_default()
    }

    /// 429s answered by quotas so far, over all methods.
    pub fn quota_rejections(&self) -> usize {
        let state = lock(&self.shared);
        state
            .ledger
            .counts
            .values()
            .map(|c| c.quota_rejections)
            .sum()
    }

    /// Every project id seen so far in a request or a seeding call, with its number
    /// (the same as [`project_number`] of the id).
    pub fn project_numbers(&self) -> BTreeMap<String, String> {
        lock(&self.shared).projects.map()
    }

    /// [`project_number`], for callers that hold a fake.
    pub fn project_number(project: &str) -> String {
        project_number(project)
    }

    /// Every request answers `status` with google.rpc `code` until `until`.
    pub fn set_outage(&self, until: Instant, status: u16, code: &'static str) {
        lock(&self.shared).outage = Some((until, status, code));
    }

    /// Ends an outage early.
    pub fn clear_outage(&self) {
        lock(&self.shared).outage = None;
    }

    /// Every request so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared).calls.clone()
    }

    /// The `encryptionSpec` of every CopyModel request so far, in arrival order, as its REST
    /// JSON body carried it (`{"kmsKeyName": …}`); `None` for a request without one.
    pub fn copy_encryption_specs(&self) -> Vec<Option<serde_json::Value>> {
        lock(&self.shared)
            .calls
            .iter()
            .filter(|c| c.rpc == Some(Rpc::CopyModel))
            .map(|c| {
                c.body
                    .as_ref()
                    .and_then(|b| b.get("encryptionSpec"))
                    .cloned()
            })
            .collect()
    }

    /// Copy calls that created an operation.
    pub fn copies_started(&self) -> usize {
        lock(&self.shared).copies_started
    }

    /// Whether `name` (either spelling, optionally with `@version` or `@alias`) can be read now.
    pub fn model_exists(&self, name: &str) -> bool {
        self.model(name).is_some()
    }

    /// The Model JSON that `GET /v1/{name}` would return now, if it exists (names in it use the
    /// project number).
    pub fn model(&self, name: &str) -> Option<serde_json::Value> {
        let mut state = lock(&self.shared);
        state.advance(Instant::now());
        state.model_json(name)
    }

    /// Names of all operations created so far (with project numbers).
    pub fn operations(&self) -> Vec<String> {
        lock(&self.shared).operation_names()
    }
}

impl Drop for VertexFake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Accept loop: HTTP/1.1 per connection, with a [`KillSwitch`] per connection so that a handler
/// can drop its socket ([`Fault::ResetConnection`]). Aborting this task aborts every connection.
async fn serve(listener: TcpListener, router: axum::Router) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let router = router.clone();
        connections.spawn(async move {
            let kill = KillSwitch(Arc::new(Notify::new()));
            let switch = kill.clone();
            let service = hyper::service::service_fn(move |mut request| {
                request.extensions_mut().insert(switch.clone());
                router.clone().oneshot(request)
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = kill.0.notified() => {}
            }
        });
    }
}
