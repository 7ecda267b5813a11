//! The JSON of the resources the fake answers with: Task, Queue and ListTasksResponse, field
//! names and formats as the `google-cloud-tasks-v2` client's serde model spells them
//! (`model/serialize.rs`) and proto3 JSON writes them.

use super::QueueConfig;
use super::state::{Queue, Task};
use super::wire::{Encoding, HTTP_METHODS, VIEWS};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::time::{Duration, SystemTime};

/// Queue.State values (google/cloud/tasks/v2/queue.proto), by enum number.
const QUEUE_STATES: [&str; 4] = ["STATE_UNSPECIFIED", "RUNNING", "PAUSED", "DISABLED"];

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
    out.insert(
        "dispatchDeadline".into(),
        json!(duration(spec.dispatch_deadline)),
    );
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

/// The Queue JSON of GetQueue, PauseQueue and ResumeQueue: `name`, `rateLimits`,
/// `retryConfig` and `state` (Queue, queue.proto). proto3 JSON leaves out zero numbers and
/// unset durations; `maxRetryDuration` zero means "unlimited" and is left out too.
pub(crate) fn queue_json(name: &str, queue: &Queue, encoding: Encoding) -> Value {
    let c: &QueueConfig = &queue.config;
    let mut limits = Map::new();
    limits.insert(
        "maxDispatchesPerSecond".into(),
        json!(c.max_dispatches_per_second),
    );
    limits.insert("maxBurstSize".into(), json!(c.burst_size()));
    limits.insert(
        "maxConcurrentDispatches".into(),
        json!(c.max_concurrent_dispatches),
    );
    let mut retry = Map::new();
    if c.max_attempts != 0 {
        retry.insert("maxAttempts".into(), json!(c.max_attempts));
    }
    if !c.max_retry_duration.is_zero() {
        retry.insert(
            "maxRetryDuration".into(),
            json!(duration(c.max_retry_duration)),
        );
    }
    retry.insert("minBackoff".into(), json!(duration(c.min_backoff)));
    retry.insert("maxBackoff".into(), json!(duration(c.max_backoff)));
    if c.max_doublings != 0 {
        retry.insert("maxDoublings".into(), json!(c.max_doublings));
    }
    let state = if queue.paused { 2 } else { 1 };
    json!({
        "name": name,
        "rateLimits": limits,
        "retryConfig": retry,
        "state": encoding.enumeration(&QUEUE_STATES, state),
    })
}

/// ListTasksResponse: `tasks`, and `nextPageToken` while more follow; an empty page is `{}`.
pub(crate) fn list_json(tasks: &[Task], next: Option<String>, view: usize, e: Encoding) -> Value {
    let mut out = Map::new();
    if !tasks.is_empty() {
        let tasks: Vec<Value> = tasks.iter().map(|t| task_json(t, view, e)).collect();
        out.insert("tasks".into(), Value::Array(tasks));
    }
    if let Some(token) = next {
        out.insert("nextPageToken".into(), json!(token));
    }
    Value::Object(out)
}

/// A google.protobuf.Duration in proto3 JSON: seconds with 0, 3, 6 or 9 fractional digits and
/// an `s` (`"600s"`, `"0.100s"`).
pub(crate) fn duration(d: Duration) -> String {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    match nanos {
        0 => format!("{secs}s"),
        n if n % 1_000_000 == 0 => format!("{secs}.{:03}s", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{secs}.{:06}s", n / 1_000),
        n => format!("{secs}.{n:09}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_zero_three_six_or_nine_fractional_digits() {
        let cases = [
            (Duration::from_secs(600), "600s"),
            (Duration::from_millis(100), "0.100s"),
            (Duration::from_micros(1_500_001), "1.500001s"),
            (Duration::from_nanos(7), "0.000000007s"),
        ];
        for (d, want) in cases {
            assert_eq!(duration(d), want);
        }
    }
}
