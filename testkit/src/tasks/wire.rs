//! The Cloud Tasks v2 REST wire format as the official `google-cloud-tasks-v2` client speaks
//! it: paths, google.rpc error bodies, enums, and the Task JSON it expects back.

use super::state::Task;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::time::SystemTime;

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
    /// `GET /v2/{name=projects/*/locations/*/queues/*/tasks/*}`
    Get { queue: String, name: String },
    /// `DELETE /v2/{name=projects/*/locations/*/queues/*/tasks/*}`
    Delete { queue: String, name: String },
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
        match (method.as_str(), segments.as_slice()) {
            ("POST", ["projects", p, "locations", l, "queues", q, "tasks"]) => Ok(Route::Create {
                parent: queue(p, l, q),
            }),
            ("GET" | "DELETE", ["projects", p, "locations", l, "queues", q, "tasks", _]) => {
                let (queue, name) = (queue(p, l, q), rest.to_string());
                Ok(if method == Method::GET {
                    Route::Get { queue, name }
                } else {
                    Route::Delete { queue, name }
                })
            }
            _ => Err(unknown()),
        }
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

    fn enumeration(self, names: &[&str], index: usize) -> Value {
        if self.int_enums {
            json!(index)
        } else {
            json!(names[index])
        }
    }
}

/// `responseView` from a GetTask query string (`responseView=1` or `responseView=FULL`).
pub(crate) fn view_from_query(query: Option<&str>) -> usize {
    let value = query.unwrap_or_default().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "responseView").then(|| v.to_string())
    });
    value
        .and_then(|v| enum_index(&Value::String(v), &VIEWS, "responseView").ok())
        .unwrap_or(0)
}

/// The Task JSON of `task`. "Unspecified. Defaults to BASIC" (Task.View); BASIC leaves out
/// only the App Engine body, which the fake does not serve, so both views carry the same
/// fields.
pub(crate) fn task_json(task: &Task, view: usize, encoding: Encoding) -> Value {
    let spec = &task.spec;
    let mut http = Map::new();
    http.insert("url".into(), json!(spec.url));
    http.insert(
        "httpMethod".into(),
        encoding.enumeration(&HTTP_METHODS, spec.method),
    );
    if !spec.headers.is_empty() {
        http.insert("headers".into(), json!(spec.headers));
    }
    if !spec.body.is_empty() {
        http.insert("body".into(), json!(STANDARD.encode(&spec.body)));
    }
    if let Some((email, audience)) = &spec.oidc {
        let token = json!({"serviceAccountEmail": email, "audience": audience});
        http.insert("oidcToken".into(), token);
    }
    if let Some(oauth) = &spec.oauth {
        http.insert("oauthToken".into(), oauth.clone());
    }
    let mut out = Map::new();
    out.insert("name".into(), json!(task.name));
    out.insert("httpRequest".into(), Value::Object(http));
    // "schedule_time will be truncated to the nearest microsecond"; "create_time will be
    // truncated to the nearest second" (Task).
    out.insert(
        "scheduleTime".into(),
        json!(rfc3339(task.schedule_time, true)),
    );
    out.insert("createTime".into(), json!(rfc3339(task.create_time, false)));
    let deadline = spec.dispatch_deadline.as_secs_f64();
    out.insert("dispatchDeadline".into(), json!(format!("{deadline}s")));
    // proto3 JSON leaves out zero counts.
    if task.dispatch_count > 0 {
        out.insert("dispatchCount".into(), json!(task.dispatch_count));
    }
    if task.response_count > 0 {
        out.insert("responseCount".into(), json!(task.response_count));
    }
    if let Some((_, first)) = task.first_dispatch {
        out.insert(
            "firstAttempt".into(),
            json!({"dispatchTime": rfc3339(first, true)}),
        );
    }
    if let Some(last) = task.last_dispatch {
        let mut attempt = json!({"dispatchTime": rfc3339(last, true)});
        if let Some(response) = task.last_response.filter(|r| *r >= last) {
            attempt["responseTime"] = json!(rfc3339(response, true));
        }
        out.insert("lastAttempt".into(), attempt);
    }
    let view = if view == 0 { 1 } else { view };
    out.insert("view".into(), encoding.enumeration(&VIEWS, view));
    Value::Object(out)
}

fn rfc3339(t: SystemTime, micros: bool) -> String {
    let t: DateTime<Utc> = t.into();
    if micros {
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
    } else {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
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

    #[test]
    fn paths_route_to_the_task_methods() {
        let task = format!("{QUEUE}/tasks/t");
        let cases = [
            (
                Method::POST,
                format!("/v2/{QUEUE}/tasks"),
                Ok(Route::Create {
                    parent: QUEUE.into(),
                }),
            ),
            (
                Method::GET,
                format!("/v2/{task}"),
                Ok(Route::Get {
                    queue: QUEUE.into(),
                    name: task.clone(),
                }),
            ),
            (
                Method::DELETE,
                format!("/v2/{task}"),
                Ok(Route::Delete {
                    queue: QUEUE.into(),
                    name: task.clone(),
                }),
            ),
        ];
        for (method, path, want) in cases {
            assert_eq!(Route::parse(&method, &path), want, "{method} {path}");
        }
        for (method, path) in [
            (Method::GET, format!("/v2/{QUEUE}/tasks")),
            (Method::POST, format!("/v1/{QUEUE}/tasks")),
            (
                Method::GET,
                "/v2/projects//locations/l/queues/q/tasks/t".into(),
            ),
        ] {
            assert!(Route::parse(&method, &path).is_err(), "{method} {path}");
        }
    }

    #[test]
    fn enums_parse_from_numbers_and_names() {
        assert_eq!(enum_index(&json!(4), &HTTP_METHODS, "m"), Ok(4));
        assert_eq!(enum_index(&json!("PATCH"), &HTTP_METHODS, "m"), Ok(6));
        assert!(enum_index(&json!(9), &HTTP_METHODS, "m").is_err());
        assert_eq!(view_from_query(Some("responseView=2&%24alt=json")), 2);
        assert_eq!(view_from_query(Some("responseView=FULL")), 2);
    }
}
