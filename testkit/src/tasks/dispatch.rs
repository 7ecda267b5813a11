//! The dispatcher of the Cloud Tasks fake: one loop that starts the attempts the queues allow,
//! and one tokio task per attempt that sends the HTTP request and reports how it ended.
//!
//! The loop handles three events:
//! 1. a task is created or a queue changes ([`Notify`] from the API side);
//! 2. an attempt ends (a concurrency slot frees up, a retry is scheduled);
//! 3. the earliest `scheduleTime` or the next token of a bucket comes due.

use super::Shared;
use super::schedule::{Answer, Attempt};
use crate::oidc::IssuerKeys;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Runs until aborted; aborting it drops the attempts in flight too.
pub(crate) async fn run(shared: Shared, wake: Arc<Notify>, keys: Option<IssuerKeys>) {
    let mut attempts = JoinSet::new();
    loop {
        while attempts.try_join_next().is_some() {}
        let (ready, next) = super::lock(&shared).take_ready(Instant::now());
        for attempt in ready {
            let (shared, wake, keys) = (shared.clone(), wake.clone(), keys.clone());
            attempts.spawn(async move {
                let answer = send(&attempt, keys.as_ref()).await;
                super::lock(&shared).finish(&attempt, answer, Instant::now());
                wake.notify_one();
            });
        }
        match next {
            Some(at) => tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = wake.notified() => {}
            },
            None => wake.notified().await,
        }
    }
}

/// Sends one attempt and waits for its status, at most the task's dispatch deadline
/// (Task.dispatch_deadline: "If the worker does not respond by this deadline then the request
/// is cancelled and the attempt is marked as a DEADLINE_EXCEEDED failure").
async fn send(attempt: &Attempt, keys: Option<&IssuerKeys>) -> Answer {
    let Some((authority, path)) = split_url(&attempt.spec.url) else {
        tracing::warn!(url = %attempt.spec.url, "the Cloud Tasks fake sends to http:// URLs only");
        return Answer::Unreachable;
    };
    let request = match build(attempt, authority, path, keys) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error.message = %e, "the Cloud Tasks fake could not build a request");
            return Answer::Unreachable;
        }
    };
    let exchange = async {
        let stream = match authority.contains(':') {
            true => TcpStream::connect(authority).await,
            false => TcpStream::connect((authority, 80)).await,
        };
        let stream = stream.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await.ok()?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, SystemTime::now()));
        Some(Answer::Status {
            status: response.status().as_u16(),
            retry_after,
        })
    };
    match tokio::time::timeout(attempt.spec.dispatch_deadline, exchange).await {
        Ok(Some(answer)) => answer,
        Ok(None) => Answer::Unreachable,
        Err(_) => Answer::DeadlineExceeded,
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3), as the wait
/// from `now`. Anything else is ignored, as an unparsable header would be.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(SystemTime::from(at).duration_since(now).unwrap_or_default())
}

/// The request of one attempt: the task's method, headers and body, with the headers Cloud
/// Tasks replaces or adds.
fn build(
    attempt: &Attempt,
    authority: &str,
    path: &str,
    keys: Option<&IssuerKeys>,
) -> Result<hyper::Request<axum::body::Body>, hyper::http::Error> {
    let spec = &attempt.spec;
    let mut request = hyper::Request::builder()
        .method(spec.method_name())
        .uri(path)
        .header("host", authority);
    // HttpRequest.headers: Host, Content-Length, User-Agent, X-Google-* and X-AppEngine-* are
    // "ignored or replaced"; X-CloudTasks-* are the service's own (HttpTarget.headers).
    for (name, value) in &spec.headers {
        let lower = name.to_ascii_lowercase();
        let replaced = ["host", "content-length", "user-agent"].contains(&lower.as_str())
            || ["x-google-", "x-appengine-", "x-cloudtasks-"]
                .iter()
                .any(|p| lower.starts_with(p))
            || (lower == "authorization" && spec.oidc.is_some());
        if !replaced {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    for (name, value) in service_headers(attempt) {
        request = request.header(name, value);
    }
    if let Some((email, audience)) = &spec.oidc {
        // HttpRequest.oidc_token: "an OIDC token is generated and attached as an
        // Authorization header in the HTTP request."
        match keys {
            Some(keys) => {
                let token = keys.mint_for(email, audience);
                request = request.header("authorization", format!("Bearer {token}"));
            }
            None => tracing::warn!("a task has an oidcToken but the fake has no IssuerKeys"),
        }
    }
    request.body(axum::body::Body::from(spec.body.clone()))
}

/// The headers Cloud Tasks adds to every HTTP target request. Names and meanings as Google's
/// reference for Cloud Tasks queue functions gives them
/// (firebase.google.com/docs/reference/functions/firebase-functions.tasks.taskcontext); the
/// `X-CloudTasks-` prefix is reserved for them (HttpTarget.headers, queue.proto):
/// - `X-CloudTasks-QueueName`, `X-CloudTasks-TaskName`: the short queue and task ids;
/// - `X-CloudTasks-TaskRetryCount`: "the number of times this task has been retried. For the
///   first attempt, this value is 0";
/// - `X-CloudTasks-TaskExecutionCount`: earlier answers from the handler; it "does not include
///   failures due to 5XX error codes";
/// - `X-CloudTasks-TaskETA`: the schedule time in seconds since the epoch (with microseconds,
///   as App Engine's `X-AppEngine-TaskETA`);
/// - `X-CloudTasks-TaskPreviousResponse`: "the HTTP response code from the previous retry",
///   sent only once there was one;
/// - `X-CloudTasks-TaskRetryReason`: "the reason for retrying the task", on retries only
///   (both listed in cloud.google.com/tasks/docs/creating-http-target-tasks, "Reading request
///   headers", as sent only on some requests);
/// - `User-Agent: Google-Cloud-Tasks` (HttpRequest.headers, target.proto).
fn service_headers(attempt: &Attempt) -> Vec<(&'static str, String)> {
    let short = |name: &str| name.rsplit('/').next().unwrap_or_default().to_string();
    let eta = attempt
        .schedule_time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut headers = vec![
        ("user-agent", "Google-Cloud-Tasks".to_string()),
        ("x-cloudtasks-queuename", short(&attempt.queue)),
        ("x-cloudtasks-taskname", short(&attempt.task)),
        (
            "x-cloudtasks-taskretrycount",
            attempt.retry_count.to_string(),
        ),
        (
            "x-cloudtasks-taskexecutioncount",
            attempt.executions.to_string(),
        ),
        (
            "x-cloudtasks-tasketa",
            format!("{}.{:06}", eta.as_secs(), eta.subsec_micros()),
        ),
    ];
    if let Some(status) = attempt.previous_status {
        headers.push(("x-cloudtasks-taskpreviousresponse", status.to_string()));
    }
    if let Some(reason) = &attempt.retry_reason {
        headers.push(("x-cloudtasks-taskretryreason", reason.clone()));
    }
    headers
}

/// `http://host:port/path?query` → (`host:port`, `/path?query`); `None` for other schemes.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let slash = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    let path = if path.is_empty() { "/" } else { path };
    (!authority.is_empty()).then_some((authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::request::TaskSpec;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/v1/run?x=1"),
            Some(("127.0.0.1:8080", "/v1/run?x=1"))
        );
        assert_eq!(split_url("http://localhost"), Some(("localhost", "/")));
        assert_eq!(split_url("https://example.com/"), None);
        assert_eq!(split_url("http:///x"), None);
    }

    fn attempt(url: &str, deadline: Duration) -> Attempt {
        let mut spec = TaskSpec::for_tests(url);
        spec.dispatch_deadline = deadline;
        Attempt {
            queue: "projects/p/locations/l/queues/q".into(),
            task: "projects/p/locations/l/queues/q/tasks/t".into(),
            row: 0,
            spec,
            retry_count: 2,
            executions: 1,
            previous_status: None,
            retry_reason: None,
            schedule_time: UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_042),
            duplicate: false,
        }
    }

    #[tokio::test]
    async fn an_attempt_without_an_answer_ends_at_its_dispatch_deadline() {
        // Accepts connections and never answers (the real minimum deadline is 15 s, too long
        // for a test, so the attempt is built by hand).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/run", listener.local_addr().unwrap());
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let started = Instant::now();
        let answer = send(&attempt(&url, Duration::from_millis(200)), None).await;
        assert_eq!(answer, Answer::DeadlineExceeded);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2));
    }

    #[test]
    fn service_headers_name_the_task_and_its_history() {
        let mut a = attempt("http://127.0.0.1:1/", Duration::from_secs(600));
        let names = |a: &Attempt| service_headers(a).into_iter().map(|(n, _)| n).collect();
        let without: Vec<&str> = names(&a);
        assert!(!without.contains(&"x-cloudtasks-taskpreviousresponse"));
        assert!(!without.contains(&"x-cloudtasks-taskretryreason"));
        a.previous_status = Some(500);
        a.retry_reason = Some("HTTP status 500".into());
        let headers = service_headers(&a);
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(get("x-cloudtasks-queuename"), "q");
        assert_eq!(get("x-cloudtasks-taskname"), "t");
        assert_eq!(get("x-cloudtasks-taskretrycount"), "2");
        assert_eq!(get("x-cloudtasks-taskexecutioncount"), "1");
        assert_eq!(get("x-cloudtasks-tasketa"), "1700000000.000042");
        assert_eq!(get("x-cloudtasks-taskpreviousresponse"), "500");
        assert_eq!(get("x-cloudtasks-taskretryreason"), "HTTP status 500");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        // RFC 9110's own example date is 784111777 s after the epoch.
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            retry_after(date, now - Duration::from_secs(30)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(date, now + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
