//! CreateTaskRequest parsing and validation: the Task the client sends becomes a [`TaskSpec`],
//! or an INVALID_ARGUMENT that says what is wrong.

use super::wire::{Failure, HTTP_METHODS, VIEWS, enum_index, invalid};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

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

/// CloudTasks.CreateTask: "The maximum task size is 100KB" (cloudtasks.proto).
const MAX_TASK_BYTES: usize = 100 * 1024;

/// A parsed CreateTaskRequest body.
#[derive(Debug)]
pub(crate) struct CreateTask {
    /// The name asked for, if any (checked to be under the parent queue).
    pub name: Option<String>,
    pub spec: TaskSpec,
    /// `responseView` as an index into [`VIEWS`].
    pub view: usize,
}

/// Task's fields. Output-only ones are accepted and ignored, like the real API.
const TASK_FIELDS: &[&str] = &[
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
];

/// HttpRequest's fields.
const HTTP_FIELDS: &[&str] = &[
    "url",
    "httpMethod",
    "headers",
    "body",
    "oauthToken",
    "oidcToken",
];

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
        refuse_unknown(task, TASK_FIELDS)?;
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
        // CreateTask: "The maximum task size is 100KB." The fake measures what it would send.
        let size = spec.url.len()
            + spec.body.len()
            + spec
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if size > MAX_TASK_BYTES {
            return Err(invalid(format!(
                "Task size {size} bytes is larger than the maximum of {MAX_TASK_BYTES}."
            )));
        }
        Ok(CreateTask { name, spec, view })
    }
}

fn parse_http(http: &Map<String, Value>) -> Result<TaskSpec, Failure> {
    refuse_unknown(http, HTTP_FIELDS)?;
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
        Some(token) => Some(parse_oidc(object(token, "OidcToken")?, url)?),
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

/// An OidcToken: (service account email, audience).
fn parse_oidc(token: &Map<String, Value>, url: &str) -> Result<(String, String), Failure> {
    let email = token.get("serviceAccountEmail").and_then(Value::as_str);
    let email = email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| invalid("OidcToken.service_account_email is required."))?;
    // OidcToken.audience: "If not specified, the URI specified in target will be used."
    let audience = token.get("audience").and_then(Value::as_str);
    let audience = audience.filter(|a| !a.is_empty()).unwrap_or(url);
    Ok((email.to_string(), audience.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const QUEUE: &str = "projects/p/locations/l/queues/q";

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
            json!({"task": {"httpRequest": {"url": url, "body": STANDARD.encode(vec![b'x'; MAX_TASK_BYTES])}}}),
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
}
