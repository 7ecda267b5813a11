//! The Cloud Tasks v2 REST wire format as the official `google-cloud-tasks-v2` client speaks
//! it: paths, CreateTaskRequest parsing and validation, the Task JSON it expects back, and
//! google.rpc error bodies.

use super::state::Task;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

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
const HTTP_METHODS: [&str; 8] = [
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
const VIEWS: [&str; 3] = ["VIEW_UNSPECIFIED", "BASIC", "FULL"];

/// An HTTP task as created: what every attempt sends.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TaskSpec {
    pub url: String,
    /// Index into [`HTTP_METHODS`].
    pub method: usize,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// `oidcToken`: service account email and audience (already defaulted to the URL).
    pub oidc: Option<(String, String)>,
    pub oauth: Option<Value>,
    pub schedule_time: Option<SystemTime>,
    pub dispatch_deadline: Duration,
}

impl TaskSpec {
    pub fn method_name(&self) -> &'static str {
        HTTP_METHODS[self.method]
    }

    #[cfg(test)]
    pub fn for_tests(url: &str) -> TaskSpec {
        TaskSpec {
            url: url.into(),
            method: 1,
            headers: BTreeMap::new(),
            body: Vec::new(),
            oidc: None,
            oauth: None,
            schedule_time: None,
            dispatch_deadline: DEFAULT_DEADLINE,
        }
    }
}

/// Task.dispatch_deadline: "For HTTP tasks, the default is 10 minutes. The deadline must be in
/// the interval [15 seconds, 30 minutes]" (google/cloud/tasks/v2/task.proto).
const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
const DEADLINE_RANGE: (Duration, Duration) = (Duration::from_secs(15), Duration::from_secs(1800));

/// A parsed CreateTaskRequest body.
#[derive(Debug)]
pub(crate) struct CreateTask {
    /// The name asked for, if any (checked to be under the parent queue).
    pub name: Option<String>,
    pub spec: TaskSpec,
    /// `responseView` as an index into [`VIEWS`].
    pub view: usize,
}

impl CreateTask {
    pub fn parse(parent: &str, body: &Value) -> Result<CreateTask, Failure> {
        let fields = object(body, "CreateTaskRequest")?;
        refuse_unknown(fields, &["parent", "task", "responseView"])?;
        let view = match fields.get("responseView") {
            None => 0,
            Some(v) => enum_index(v, &VIEWS, "responseView")?,
        };
        let task = fields
            .get("task")
            .ok_or_else(|| invalid("task is required."))?;
        let task = object(task, "Task")?;
        // Output-only fields are accepted and ignored, like the real API.
        refuse_unknown(
            task,
            &[
                "name",
                "httpRequest",
                "appEngineHttpRequest",
                "scheduleTime",
                "createTime",
                "dispatchDeadline",
                "dispatchCount",
                "responseCount",
                "firstAttempt",
                "lastAttempt",
                "view",
                "retryConfig",
            ],
        )?;
        let name = match task.get("name").and_then(Value::as_str) {
            None | Some("") => None,
            Some(name) => Some(check_name(parent, name)?.to_string()),
        };
        if task.contains_key("appEngineHttpRequest") {
            return Err(invalid("The fake serves HTTP tasks only (httpRequest)."));
        }
        let http = task
            .get("httpRequest")
            .ok_or_else(|| invalid("Task.message_type is required (httpRequest)."))?;
        let mut spec = parse_http(object(http, "HttpRequest")?)?;
        if let Some(t) = task.get("scheduleTime") {
            spec.schedule_time = Some(timestamp(t)?);
        }
        if let Some(d) = task.get("dispatchDeadline") {
            let deadline = duration(d)?;
            if deadline < DEADLINE_RANGE.0 || deadline > DEADLINE_RANGE.1 {
                return Err(invalid(
                    "dispatch_deadline must be in the interval [15s, 30m].",
                ));
            }
            spec.dispatch_deadline = deadline;
        }
        Ok(CreateTask { name, spec, view })
    }
}

fn parse_http(http: &Map<String, Value>) -> Result<TaskSpec, Failure> {
    refuse_unknown(
        http,
        &[
            "url",
            "httpMethod",
            "headers",
            "body",
            "oauthToken",
            "oidcToken",
        ],
    )?;
    // HttpRequest.url: "This string must begin with either "http://" or "https://"".
    let url = http.get("url").and_then(Value::as_str).unwrap_or_default();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2083 {
        return Err(invalid(format!(
            "HttpRequest.url must begin with http:// or https://: {url:?}"
        )));
    }
    // HttpRequest.http_method: "The default is POST."
    let method = match http.get("httpMethod") {
        None => 1,
        Some(v) => enum_index(v, &HTTP_METHODS, "httpMethod")?.max(1),
    };
    let mut headers = BTreeMap::new();
    if let Some(h) = http.get("headers") {
        for (k, v) in object(h, "headers")? {
            let v = v
                .as_str()
                .ok_or_else(|| invalid("header values are strings"))?;
            headers.insert(k.clone(), v.to_string());
        }
    }
    let body = match http.get("body").and_then(Value::as_str) {
        None => Vec::new(),
        Some(b) => STANDARD
            .decode(b)
            .or_else(|_| URL_SAFE.decode(b))
            .map_err(|_| invalid("HttpRequest.body is not base64."))?,
    };
    // HttpRequest.body: "A request body is allowed only if the HTTP method is POST, PUT, or
    // PATCH. It is an error to set body on a task with an incompatible HttpMethod."
    if !body.is_empty() && !matches!(HTTP_METHODS[method], "POST" | "PUT" | "PATCH") {
        return Err(invalid(
            "Body can only be set for POST, PUT and PATCH requests.",
        ));
    }
    if http.contains_key("oidcToken") && http.contains_key("oauthToken") {
        return Err(invalid(
            "Only one of oauth_token and oidc_token may be set.",
        ));
    }
    let oidc = match http.get("oidcToken") {
        None => None,
        Some(token) => {
            let token = object(token, "OidcToken")?;
            let email = token.get("serviceAccountEmail").and_then(Value::as_str);
            let email = email
                .filter(|e| !e.is_empty())
                .ok_or_else(|| invalid("OidcToken.service_account_email is required."))?;
            // OidcToken.audience: "If not specified, the URI specified in target will be used."
            let audience = token.get("audience").and_then(Value::as_str);
            let audience = audience.filter(|a| !a.is_empty()).unwrap_or(url);
            Some((email.to_string(), audience.to_string()))
        }
    };
    Ok(TaskSpec {
        url: url.to_string(),
        method,
        headers,
        body,
        oidc,
        oauth: http.get("oauthToken").cloned(),
        schedule_time: None,
        dispatch_deadline: DEFAULT_DEADLINE,
    })
}

/// Task.name: `projects/P/locations/L/queues/Q/tasks/TASK_ID`, where "TASK_ID can contain only
/// letters ([A-Za-z]), numbers ([0-9]), hyphens (-), or underscores (_). The maximum length is
/// 500 characters." (google/cloud/tasks/v2/task.proto)
fn check_name<'a>(parent: &str, name: &'a str) -> Result<&'a str, Failure> {
    let id = name
        .strip_prefix(parent)
        .and_then(|rest| rest.strip_prefix("/tasks/"))
        .ok_or_else(|| invalid(format!("Task name {name:?} is not in queue {parent:?}.")))?;
    let valid = !id.is_empty()
        && id.len() <= 500
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(invalid(format!("Invalid task ID {id:?}.")))
    }
}

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

fn timestamp(v: &Value) -> Result<SystemTime, Failure> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid("Timestamps are strings."))?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| SystemTime::from(t.with_timezone(&Utc)))
        .map_err(|_| invalid(format!("Invalid timestamp {s:?}.")))
}

/// A google.protobuf.Duration in JSON: `"600s"`, `"15.5s"`.
fn duration(v: &Value) -> Result<Duration, Failure> {
    let s = v.as_str().unwrap_or_default();
    s.strip_suffix('s')
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| invalid(format!("Invalid duration {s:?}.")))
}

/// An enum given as its number or its name.
fn enum_index(v: &Value, names: &[&str], field: &str) -> Result<usize, Failure> {
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

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Failure> {
    v.as_object()
        .ok_or_else(|| invalid(format!("Invalid JSON payload: expected a {what} object.")))
}

fn refuse_unknown(fields: &Map<String, Value>, known: &[&str]) -> Result<(), Failure> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(format!(
            "Invalid JSON payload received. Unknown name {unknown:?}."
        ))),
        None => Ok(()),
    }
}

fn invalid(message: impl Into<String>) -> Failure {
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
    fn malformed_tasks_are_invalid_arguments() {
        let url = "http://127.0.0.1:9/run";
        let bad = [
            json!({}),
            json!({"task": {"name": "projects/p/locations/l/queues/other/tasks/t", "httpRequest": {"url": url}}}),
            json!({"task": {"name": format!("{QUEUE}/tasks/a.b"), "httpRequest": {"url": url}}}),
            json!({"task": {"httpRequest": {"url": "ftp://x"}}}),
            json!({"task": {"httpRequest": {"url": url, "httpMethod": "GET", "body": "aGk="}}}),
            json!({"task": {"httpRequest": {"url": url, "oidcToken": {}}}}),
            json!({"task": {"httpRequest": {"url": url}, "dispatchDeadline": "5s"}}),
            json!({"task": {"httpRequest": {"url": url}, "bogus": 1}}),
        ];
        for body in bad {
            assert!(
                matches!(CreateTask::parse(QUEUE, &body), Err(Failure::Invalid(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn http_requests_take_the_documented_defaults() {
        let url = "http://127.0.0.1:9/run";
        let body = json!({"task": {"httpRequest": {"url": url, "oidcToken": {"serviceAccountEmail": "a@b"}, "body": "aGk="}}, "responseView": 2});
        let parsed = CreateTask::parse(QUEUE, &body).expect("valid");
        assert_eq!(parsed.spec.method_name(), "POST");
        assert_eq!(parsed.spec.oidc, Some(("a@b".into(), url.into())));
        assert_eq!(parsed.spec.body, b"hi");
        assert_eq!(parsed.spec.dispatch_deadline, DEFAULT_DEADLINE);
        assert_eq!((parsed.name, parsed.view), (None, 2));
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
