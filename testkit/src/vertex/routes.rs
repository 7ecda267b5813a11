//! The single catch-all HTTP handler of the Vertex AI fake: parse the path, apply outages and
//! scripted faults, dispatch to [`State`], and record the call.
//!
//! One fallback handler instead of axum routes, because Google paths put `:verb` and `@version`
//! inside path segments, which axum's matcher does not model.

use super::projects::{ProjectNumbers, project_and_location};
use super::quota::Rpc;
use super::state::State;
use super::wire::Reply;
use super::{Call, Fault};
use axum::Extension;
use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

pub(crate) type Shared = Arc<Mutex<State>>;

/// Lets a handler drop its own TCP connection, to simulate a reset without an answer.
#[derive(Clone, Debug, Default)]
pub(crate) struct KillSwitch(pub Arc<Notify>);

/// The REST methods of ModelService that the fake serves.
#[derive(Debug, PartialEq)]
enum Route {
    Copy {
        parent: String,
    },
    GetOperation {
        name: String,
    },
    GetModel {
        name: String,
    },
    ListVersions {
        name: String,
    },
    /// `GET /v1/{parent}/models`: ModelService.ListModels.
    ListModels {
        parent: String,
    },
    Unknown,
}

impl Route {
    /// Parses an already percent-decoded path. `/ui/` is the binding the Rust client uses for
    /// operations; `/v1/` the documented one. Both are accepted for every method.
    fn parse(method: &Method, path: &str) -> Route {
        let Some(rest) = path
            .strip_prefix("/v1/")
            .or_else(|| path.strip_prefix("/ui/"))
        else {
            return Route::Unknown;
        };
        let (resource, verb) = match rest.rsplit_once(':') {
            Some((resource, verb)) if !verb.contains('/') => (resource, Some(verb)),
            _ => (rest, None),
        };
        let segments: Vec<&str> = resource.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Route::Unknown;
        }
        let name = resource.to_string();
        match (method.as_str(), segments.as_slice(), verb) {
            ("POST", ["projects", p, "locations", l, "models"], Some("copy")) => Route::Copy {
                parent: format!("projects/{p}/locations/{l}"),
            },
            ("GET", ["projects", _, "locations", _, "operations", _], None) => {
                Route::GetOperation { name }
            }
            ("GET", ["projects", _, "locations", _, "models", _], None) => Route::GetModel { name },
            ("GET", ["projects", p, "locations", l, "models"], None) => Route::ListModels {
                parent: format!("projects/{p}/locations/{l}"),
            },
            ("GET", ["projects", _, "locations", _, "models", _], Some("listVersions")) => {
                Route::ListVersions { name }
            }
            _ => Route::Unknown,
        }
    }

    /// The same route with every name canonical (project number instead of id).
    fn canonical(self, projects: &mut ProjectNumbers) -> Route {
        match self {
            Route::Copy { parent } => Route::Copy {
                parent: projects.canonical(&parent),
            },
            Route::GetOperation { name } => Route::GetOperation {
                name: projects.canonical(&name),
            },
            Route::GetModel { name } => Route::GetModel {
                name: projects.canonical(&name),
            },
            Route::ListVersions { name } => Route::ListVersions {
                name: projects.canonical(&name),
            },
            Route::ListModels { parent } => Route::ListModels {
                parent: projects.canonical(&parent),
            },
            Route::Unknown => Route::Unknown,
        }
    }

    /// The method and the resource whose project and location its quota is charged to.
    fn rpc(&self) -> Option<(Rpc, &str)> {
        match self {
            Route::Copy { parent } => Some((Rpc::CopyModel, parent)),
            Route::GetOperation { name } => Some((Rpc::GetOperation, name)),
            Route::GetModel { name } => Some((Rpc::GetModel, name)),
            Route::ListVersions { name } => Some((Rpc::ListModelVersions, name)),
            Route::ListModels { parent } => Some((Rpc::ListModels, parent)),
            Route::Unknown => None,
        }
    }
}

/// The fallback handler behind every path.
pub(crate) async fn handle(
    axum::extract::State(shared): axum::extract::State<Shared>,
    kill: Option<Extension<KillSwitch>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let path = percent_decode(uri.path());
    let json = parse_body(&body);
    // Decided under one lock, before any state changes.
    let (route, screened) = {
        let mut state = lock(&shared);
        state.advance(at);
        let route = Route::parse(&method, &path).canonical(&mut state.projects);
        let screened = screen(&mut state, &route, json.as_ref(), at);
        (route, screened)
    };
    let record = |status: u16| Call {
        method: method.to_string(),
        path: path.clone(),
        raw_path: uri.path().to_string(),
        query: percent_decode(uri.query().unwrap_or_default()),
        body: json.clone(),
        rpc: route.rpc().map(|(rpc, _)| rpc),
        status,
        at,
    };
    let reply = match screened {
        Err(reply) => reply,
        Ok(Some(Fault::Http(status, code))) => {
            Reply::error(status, code, format!("Injected fault for {method} {path}."))
        }
        Ok(Some(Fault::ResetConnection)) => {
            lock(&shared).calls.push(record(0));
            if let Some(Extension(kill)) = kill {
                kill.0.notify_one();
                // The connection task drops this future together with the socket.
                std::future::pending::<()>().await;
            }
            Reply::error(
                500,
                "INTERNAL",
                "ResetConnection needs the fake's own server.",
            )
        }
        Ok(Some(Fault::Delay(delay))) => {
            tokio::time::sleep(delay).await;
            dispatch(&shared, &route, &path, json.as_ref(), uri.query())
        }
        Ok(Some(Fault::SlowAnswer(delay))) => {
            let reply = dispatch(&shared, &route, &path, json.as_ref(), uri.query());
            // Recorded now: a client that gives up drops this future during the sleep.
            lock(&shared).calls.push(record(reply.status));
            tokio::time::sleep(delay).await;
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            return (status, axum::Json(reply.body)).into_response();
        }
        Ok(None) => dispatch(&shared, &route, &path, json.as_ref(), uri.query()),
    };
    lock(&shared).calls.push(record(reply.status));
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(reply.body)).into_response()
}

/// What happens to a request before its method runs: an outage answers for the whole service;
/// then the quota (checked by the real front end before the method); then scripted faults.
/// `Err` is an answer to send as it is.
fn screen(
    state: &mut State,
    route: &Route,
    body: Option<&Value>,
    at: Instant,
) -> Result<Option<Fault>, Reply> {
    let rpc = route.rpc();
    if let Some((rpc, _)) = rpc {
        state.ledger.call(rpc);
    }
    if let Some((until, status, code)) = state.outage
        && at < until
    {
        return Ok(Some(Fault::Http(status, code)));
    }
    let Some((rpc, resource)) = rpc else {
        return Ok(None);
    };
    if let Some((project, location)) = project_and_location(resource)
        && let Some(reply) = state.ledger.admit(rpc, project, location, at)
    {
        return Err(reply);
    }
    Ok(match route {
        Route::Copy { .. } => state.take_copy_fault(body),
        Route::GetOperation { name } => state.take_get_operation_fault(name),
        _ => None,
    })
}

fn dispatch(
    shared: &Shared,
    route: &Route,
    path: &str,
    body: Option<&Value>,
    query: Option<&str>,
) -> Reply {
    let now = Instant::now();
    let mut state = lock(shared);
    state.advance(now);
    match route {
        Route::Copy { parent } => state.copy(parent, body, now),
        Route::GetOperation { name } => state.get_operation(name),
        Route::GetModel { name } => state.get_model(name),
        Route::ListVersions { name } => {
            let page_size = query_param(query, "pageSize").and_then(|s| s.parse().ok());
            let token = query_param(query, "pageToken").unwrap_or_default();
            state.list_versions(name, page_size.unwrap_or(0), &token)
        }
        Route::ListModels { parent } => {
            let page_size = query_param(query, "pageSize").and_then(|s| s.parse().ok());
            let token = query_param(query, "pageToken").unwrap_or_default();
            state.list_models(parent, page_size.unwrap_or(0), &token)
        }
        Route::Unknown => Reply::not_found(format!(
            "The requested URL {path} was not found on the Vertex AI fake."
        )),
    }
}

/// The body as JSON; a body that is not JSON is kept as a string so that calls still show it.
fn parse_body(body: &Bytes) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
    )
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` escapes (the client may send `@` as `%40`); `+` stays as it is.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_model_service_methods() {
        let get = Method::GET;
        let cases = [
            (
                Method::POST,
                "/v1/projects/p/locations/l/models:copy",
                Route::Copy {
                    parent: "projects/p/locations/l".into(),
                },
            ),
            (
                get.clone(),
                "/ui/projects/p/locations/l/operations/7",
                Route::GetOperation {
                    name: "projects/p/locations/l/operations/7".into(),
                },
            ),
            (
                get.clone(),
                "/v1/projects/p/locations/l/models/m@2",
                Route::GetModel {
                    name: "projects/p/locations/l/models/m@2".into(),
                },
            ),
            (
                get.clone(),
                "/v1/projects/p/locations/l/models",
                Route::ListModels {
                    parent: "projects/p/locations/l".into(),
                },
            ),
            (
                get.clone(),
                "/v1/projects/p/locations/l/models/m:listVersions",
                Route::ListVersions {
                    name: "projects/p/locations/l/models/m".into(),
                },
            ),
            (
                get.clone(),
                "/v1/projects/p/locations/l/models:copy",
                Route::Unknown,
            ),
            (
                get.clone(),
                "/v1/projects//locations/l/models/m",
                Route::Unknown,
            ),
            (get, "/v2/projects/p/locations/l/models/m", Route::Unknown),
        ];
        for (method, path, want) in cases {
            assert_eq!(Route::parse(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(
            percent_decode("models/m%40v1%3AlistVersions"),
            "models/m@v1:listVersions"
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
