//! A fake of the Cloud Run Admin API v2, for the two reads `PUSH_AUTH=cloud-run` makes of the
//! worker's own service, as the official `google-cloud-run-v2` client sends them (its
//! `transport.rs`: `GET /v2/{name}` and `GET /v2/{resource}:getIamPolicy`, each with
//! `$alt=json;enum-encoding=int`).
//!
//! What it answers, after the REST reference:
//! - `GET /v2/projects/P/locations/L/services/S` (projects.locations.services.get,
//!   cloud.google.com/run/docs/reference/rest/v2/projects.locations.services/get): the
//!   `Service` resource, with `invokerIamDisabled` ("Optional. Disables IAM permission check
//!   for run.routes.invoke for callers of this service", cloud.google.com/run/docs/reference/
//!   rest/v2/projects.locations.services#Service). A bool at its default (`false`) is left
//!   out, as proto3 JSON does; enums are numbers, as asked by `enum-encoding=int`.
//! - `GET /v2/projects/P/locations/L/services/S:getIamPolicy`
//!   (projects.locations.services.getIamPolicy): an IAM `Policy`, `{version, etag, bindings:
//!   [{role, members}]}` (cloud.google.com/iam/docs/reference/rest/v1/Policy).
//! - A service it does not hold: 404 `NOT_FOUND`; [`RunAdminFake::deny`]: 403
//!   `PERMISSION_DENIED` ("Permission 'run.services.get' denied on resource … (or resource may
//!   not exist)"), as for an account without `roles/run.viewer`. Errors are google.rpc JSON
//!   bodies, `{"error": {"code", "message", "status"}}` (cloud.google.com/apis/design/errors).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One service as the fake holds it.
#[derive(Clone, Debug, Default)]
pub struct RunService {
    /// `invokerIamDisabled`.
    pub invoker_iam_disabled: bool,
    /// The IAM policy's bindings: (role, members).
    pub bindings: Vec<(String, Vec<String>)>,
}

#[derive(Default)]
struct Fake {
    services: HashMap<String, RunService>,
    denied: bool,
    /// (method, path) of every call.
    calls: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Fake>>;

/// A running fake; it stops when dropped.
pub struct RunAdminFake {
    addr: SocketAddr,
    state: Shared,
    task: JoinHandle<()>,
}

impl RunAdminFake {
    pub async fn start() -> anyhow::Result<Self> {
        let state = Shared::default();
        let app = Router::new().fallback(route).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the Cloud Run Admin fake")?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// The base URL, for `CLOUD_RUN_ADMIN_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates or replaces `name` (`projects/P/locations/L/services/S`).
    pub fn put(&self, name: &str, service: RunService) {
        lock(&self.state).services.insert(name.to_owned(), service);
    }

    /// Refuses every call with 403, as for a caller without `run.services.get`.
    pub fn deny(&self, denied: bool) {
        lock(&self.state).denied = denied;
    }

    /// (method, path) of every call so far.
    pub fn calls(&self) -> Vec<(String, String)> {
        lock(&self.state).calls.clone()
    }
}

impl Drop for RunAdminFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Fake> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn error(status: StatusCode, rpc: &str, message: String) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": rpc}});
    (status, Json(body)).into_response()
}

async fn route(State(state): State<Shared>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let mut fake = lock(&state);
    fake.calls.push((req.method().to_string(), path.clone()));
    let (name, verb) = match path.strip_prefix("/v2/").map(|p| p.split_once(':')) {
        Some(Some((name, verb))) => (name.to_owned(), Some(verb.to_owned())),
        Some(None) => (path["/v2/".len()..].to_owned(), None),
        None => {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no route {path}"),
            );
        }
    };
    if req.method() != axum::http::Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNIMPLEMENTED",
            "only GET is served".into(),
        );
    }
    if fake.denied {
        let permission = match verb.as_deref() {
            Some("getIamPolicy") => "run.services.getIamPolicy",
            _ => "run.services.get",
        };
        return error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "Permission '{permission}' denied on resource '{name}' (or resource may not exist)."
            ),
        );
    }
    let Some(svc) = fake.services.get(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Resource '{name}' of kind 'SERVICE' does not exist."),
        );
    };
    match verb.as_deref() {
        None => Json(service_json(&name, svc)).into_response(),
        Some("getIamPolicy") => Json(policy_json(svc)).into_response(),
        Some(other) => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("method {other} is not faked"),
        ),
    }
}

fn service_json(name: &str, svc: &RunService) -> Value {
    let mut v = json!({
        "name": name,
        "uid": "6c7a1e5e-0000-4000-8000-000000000001",
        "generation": "1",
        // INGRESS_TRAFFIC_ALL, as a number under enum-encoding=int.
        "ingress": 1,
        "uri": format!("https://{}-abc.a.run.app", name.rsplit('/').next().unwrap_or_default()),
    });
    if svc.invoker_iam_disabled {
        v["invokerIamDisabled"] = json!(true);
    }
    v
}

fn policy_json(svc: &RunService) -> Value {
    let bindings: Vec<Value> = svc
        .bindings
        .iter()
        .map(|(role, members)| json!({"role": role, "members": members}))
        .collect();
    let mut v = json!({"version": 1, "etag": "BwYAAAAAAAA="});
    if !bindings.is_empty() {
        v["bindings"] = json!(bindings);
    }
    v
}
