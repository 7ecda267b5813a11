//! A faithful fake of the Vertex AI ModelService REST surface that the official Rust client
//! (`google-cloud-aiplatform-v1`, HTTP/JSON transport) uses for copies (DESIGN.md §9).
//!
//! # Surface
//! - `POST /v1/{parent}/models:copy` → a google.longrunning.Operation, `done: false`.
//! - `GET /ui/{operation}` (the binding the Rust client calls) and `GET /v1/{operation}`.
//! - `GET /v1/{model}` with or without `@version`.
//! - `GET /v1/{model}:listVersions` with `pageSize`/`pageToken`.
//! - Anything else: 404 with a google.rpc error body naming the path.
//!
//! # Behaviour worth knowing
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

mod routes;
mod state;
mod wire;

use anyhow::Context;
use routes::{KillSwitch, Shared, lock};
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
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Vertex fake")?;
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

    /// Creates a source model `projects/p/locations/l/models/ID` with version `1`.
    pub fn add_model(&self, name: &str) {
        lock(&self.shared).add_model(name);
    }

    /// Scripts copies whose source is `source_model` (any `@version` is ignored).
    pub fn script(&self, source_model: &str, script: CopyScript) {
        lock(&self.shared).set_script(source_model, script);
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

    /// Copy calls that created an operation.
    pub fn copies_started(&self) -> usize {
        lock(&self.shared).copies_started
    }

    /// Whether `name` (optionally with `@version`) can be read now.
    pub fn model_exists(&self, name: &str) -> bool {
        let mut state = lock(&self.shared);
        state.advance(Instant::now());
        state.model_exists(name)
    }

    /// The Model JSON that `GET /v1/{name}` would return now, if it exists.
    pub fn model(&self, name: &str) -> Option<serde_json::Value> {
        let mut state = lock(&self.shared);
        state.advance(Instant::now());
        state.model_json(name)
    }

    /// Names of all operations created so far.
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
