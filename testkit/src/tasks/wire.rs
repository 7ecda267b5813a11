//! The Cloud Tasks v2 REST wire format as the official `google-cloud-tasks-v2` client speaks
//! it: paths, query strings, google.rpc error bodies and enums ([`super::json`] holds the
//! resources' JSON).

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Why a request fails; each variant is one google.rpc code.
#[derive(Debug, PartialEq)]
pub(crate) enum Failure {
    /// 400 INVALID_ARGUMENT: the request or task is malformed.
    Invalid(String),
    /// 404 NOT_FOUND: the queue or task does not exist, or the path is unknown.
    NotFound(String),
    /// 409 ALREADY_EXISTS: the task name is taken or was used too recently.
    AlreadyExists(String),
}

impl IntoResponse for Failure {
    /// A google.rpc error body, as Google APIs send over HTTP/JSON.
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Failure::Invalid(m) => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", m),
            Failure::NotFound(m) => (StatusCode::NOT_FOUND, "NOT_FOUND", m),
            Failure::AlreadyExists(m) => (StatusCode::CONFLICT, "ALREADY_EXISTS", m),
        };
        let body = json!({"error": {"code": status.as_u16(), "message": message, "status": code}});
        (status, axum::Json(body)).into_response()
    }
}

/// The methods the fake serves, from the bindings in the client's `transport.rs`.
#[derive(Debug, PartialEq)]
pub(crate) enum Route {
    /// `POST /v2/{parent=projects/*/locations/*/queues/*}/tasks`
    Create { parent: String },
    /// `GET /v2/{parent=projects/*/locations/*/queues/*}/tasks`
    List { parent: String },
    /// `GET /v2/{name=projects/*/locations/*/queues/*/tasks/*}`
    Get { queue: String, name: String },
    /// `DELETE /v2/{name=projects/*/locations/*/queues/*/tasks/*}`
    Delete { queue: String, name: String },
    /// `GET /v2/{name=projects/*/locations/*/queues/*}`
    GetQueue { name: String },
    /// `POST /v2/{name=projects/*/locations/*/queues/*}:pause` (`paused`) or `:resume`.
    SetPaused { name: String, paused: bool },
}

impl Route {
    pub fn parse(method: &Method, path: &str) -> Result<Route, Failure> {
        let unknown = || Failure::NotFound(format!("The requested URL {path} was not found."));
        let rest = path.strip_prefix("/v2/").ok_or_else(unknown)?;
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(unknown());
        }
        let queue = |p: &str, l: &str, q: &str| format!("projects/{p}/locations/{l}/queues/{q}");
        let route = match (method.as_str(), segments.as_slice()) {
            ("POST", ["projects", p, "locations", l, "queues", q, "tasks"]) => Route::Create {
                parent: queue(p, l, q),
            },
            ("GET", ["projects", p, "locations", l, "queues", q, "tasks"]) => Route::List {
                parent: queue(p, l, q),
            },
            ("GET", ["projects", p, "locations", l, "queues", q, "tasks", _]) => Route::Get {
                queue: queue(p, l, q),
                name: rest.to_string(),
            },
            ("DELETE", ["projects", p, "locations", l, "queues", q, "tasks", _]) => Route::Delete {
                queue: queue(p, l, q),
                name: rest.to_string(),
            },
            ("GET", ["projects", p, "locations", l, "queues", q]) if !q.contains(':') => {
                Route::GetQueue {
                    name: queue(p, l, q),
                }
            }
            ("POST", ["projects", p, "locations", l, "queues", q]) => {
                let (q, verb) = q.split_once(':').ok_or_else(unknown)?;
                let paused = match verb {
                    "pause" => true,
                    "resume" => false,
                    _ => return Err(unknown()),
                };
                Route::SetPaused {
                    name: queue(p, l, q),
                    paused,
                }
            }
            _ => return Err(unknown()),
        };
        Ok(route)
    }
}

/// HttpMethod values (google/cloud/tasks/v2/target.proto), by enum number.
pub(crate) const HTTP_METHODS: [&str; 8] = [
    "HTTP_METHOD_UNSPECIFIED",
    "POST",
    "GET",
    "HEAD",
    "PUT",
    "DELETE",
    "PATCH",
    "OPTIONS",
];

/// Task.View values, by enum number.
pub(crate) const VIEWS: [&str; 3] = ["VIEW_UNSPECIFIED", "BASIC", "FULL"];

/// How the client asked for enums: `$alt=json;enum-encoding=int` (always, from the Rust
/// client) makes them numbers; otherwise names.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Encoding {
    pub int_enums: bool,
}

impl Encoding {
    pub fn from_query(query: Option<&str>) -> Encoding {
        let query = query.unwrap_or_default().to_ascii_lowercase();
        Encoding {
            int_enums: query.contains("enum-encoding%3dint") || query.contains("enum-encoding=int"),
        }
    }

    pub fn enumeration(self, names: &[&str], index: usize) -> Value {
        if self.int_enums {
            json!(index)
        } else {
            json!(names[index])
        }
    }
}

/// The value of `key` in a query string, if present and not empty.
pub(crate) fn query_param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query.unwrap_or_default().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key && !v.is_empty()).then_some(v)
    })
}

/// `responseView` from a GetTask or ListTasks query string (`responseView=1` or
/// `responseView=FULL`).
pub(crate) fn view_from_query(query: Option<&str>) -> usize {
    query_param(query, "responseView")
        .and_then(|v| enum_index(&Value::String(v.to_string()), &VIEWS, "responseView").ok())
        .unwrap_or(0)
}

/// An enum given as its number or its name.
pub(crate) fn enum_index(v: &Value, names: &[&str], field: &str) -> Result<usize, Failure> {
    let index = match v {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => names
            .iter()
            .position(|name| name == s)
            .or_else(|| s.parse().ok()),
        _ => None,
    };
    index
        .filter(|i| *i < names.len())
        .ok_or_else(|| invalid(format!("Invalid value for enum field {field}: {v}")))
}

pub(crate) fn invalid(message: impl Into<String>) -> Failure {
    Failure::Invalid(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "projects/p/locations/l/queues/q";

    fn route(method: Method, path: String) -> Result<Route, Failure> {
        Route::parse(&method, &path)
    }

    #[test]
    fn paths_route_to_the_task_methods() {
        let task = format!("{QUEUE}/tasks/t");
        let (parent, queue, name) = (QUEUE.to_string(), QUEUE.to_string(), task.clone());
        let create = route(Method::POST, format!("/v2/{QUEUE}/tasks"));
        assert_eq!(create, Ok(Route::Create { parent }));
        let list = route(Method::GET, format!("/v2/{QUEUE}/tasks"));
        assert_eq!(
            list,
            Ok(Route::List {
                parent: queue.clone()
            })
        );
        let get = route(Method::GET, format!("/v2/{task}"));
        assert_eq!(
            get,
            Ok(Route::Get {
                queue: queue.clone(),
                name: name.clone()
            })
        );
        let delete = route(Method::DELETE, format!("/v2/{task}"));
        assert_eq!(delete, Ok(Route::Delete { queue, name }));
    }

    #[test]
    fn paths_route_to_the_queue_methods() {
        let name = QUEUE.to_string();
        let get = route(Method::GET, format!("/v2/{QUEUE}"));
        assert_eq!(get, Ok(Route::GetQueue { name: name.clone() }));
        let pause = route(Method::POST, format!("/v2/{QUEUE}:pause"));
        assert_eq!(
            pause,
            Ok(Route::SetPaused {
                name: name.clone(),
                paused: true
            })
        );
        let resume = route(Method::POST, format!("/v2/{QUEUE}:resume"));
        assert_eq!(
            resume,
            Ok(Route::SetPaused {
                name,
                paused: false
            })
        );
    }

    #[test]
    fn other_paths_are_not_found() {
        for (method, path) in [
            (Method::POST, format!("/v1/{QUEUE}/tasks")),
            (Method::POST, format!("/v2/{QUEUE}:purge")),
            (Method::POST, format!("/v2/{QUEUE}")),
            (Method::GET, format!("/v2/{QUEUE}:pause")),
            (Method::DELETE, format!("/v2/{QUEUE}")),
            (
                Method::GET,
                "/v2/projects//locations/l/queues/q/tasks/t".into(),
            ),
        ] {
            let what = format!("{method} {path}");
            assert!(
                matches!(route(method, path), Err(Failure::NotFound(_))),
                "{what}"
            );
        }
    }

    #[test]
    fn enums_parse_from_numbers_and_names() {
        assert_eq!(enum_index(&json!(4), &HTTP_METHODS, "m"), Ok(4));
        assert_eq!(enum_index(&json!("PATCH"), &HTTP_METHODS, "m"), Ok(6));
        assert!(enum_index(&json!(9), &HTTP_METHODS, "m").is_err());
        assert_eq!(view_from_query(Some("responseView=2&%24alt=json")), 2);
        assert_eq!(view_from_query(Some("responseView=FULL")), 2);
        assert_eq!(
            query_param(Some("pageSize=5&pageToken="), "pageSize"),
            Some("5")
        );
        assert_eq!(
            query_param(Some("pageSize=5&pageToken="), "pageToken"),
            None
        );
    }
}
