//! A metering front: a reverse proxy before one or more worker instances that records the
//! interval of every request it forwards. From those intervals the harness reads what Cloud
//! Run's request-based billing counts (the time an instance has at least one request in
//! flight, cloud.google.com/run/docs/configuring/billing-settings), how requests spread over
//! the instances, and the longest request the worker held.
//!
//! Every push (through the push-window front) and every task dispatch (the queues' `TASKS_URL`)
//! reaches the worker through a meter, so nothing the worker serves goes unrecorded.
//! Requests go to the instances in turn, as Cloud Run spreads them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

/// One request the worker served: from just before the meter sent it to the end of the answer.
#[derive(Clone, Debug)]
pub struct Record {
    /// Which instance (index into the targets) served it.
    pub instance: usize,
    pub path: String,
    pub start: Instant,
    pub end: Instant,
}

impl Record {
    pub fn took(&self) -> Duration {
        self.end - self.start
    }
}

struct Shared {
    client: reqwest::Client,
    targets: Mutex<Vec<String>>,
    next: AtomicUsize,
    records: Mutex<Vec<Record>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running meter; the server stops when it is dropped.
pub struct Meter {
    url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Meter {
    /// A meter on a free port of 127.0.0.1 before `targets` (`http://127.0.0.1:PORT`).
    pub async fn start(targets: &[String]) -> anyhow::Result<Meter> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the meter")?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .timeout(Duration::from_secs(120))
                .build()?,
            targets: Mutex::new(targets.to_vec()),
            next: AtomicUsize::new(0),
            records: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Meter {
            url,
            shared,
            server,
        })
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Sends requests to one more instance from now on.
    pub fn add_target(&self, target: &str) {
        lock(&self.shared.targets).push(target.to_owned());
    }

    /// Every request recorded so far, and forgets them.
    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *lock(&self.shared.records))
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (instance, target) = {
        let targets = lock(&shared.targets);
        if targets.is_empty() {
            return (StatusCode::SERVICE_UNAVAILABLE, "no instance").into_response();
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed) % targets.len();
        (i, targets[i].clone())
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return (StatusCode::BAD_REQUEST, "body").into_response();
    };
    let path = parts.uri.path().to_owned();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    let rq = shared
        .client
        .request(parts.method, format!("{target}{pq}"))
        .headers(headers)
        .body(body);
    let start = Instant::now();
    let answer = match rq.send().await {
        Ok(r) => {
            let (status, headers) = (r.status(), r.headers().clone());
            r.bytes().await.ok().map(|b| (status, headers, b))
        }
        Err(_) => None,
    };
    let end = Instant::now();
    lock(&shared.records).push(Record {
        instance,
        path,
        start,
        end,
    });
    match answer {
        Some((status, headers, bytes)) => {
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            for (k, v) in &headers {
                if k != header::TRANSFER_ENCODING && k != header::CONTENT_LENGTH {
                    resp.headers_mut().append(k, v.clone());
                }
            }
            resp
        }
        None => (StatusCode::BAD_GATEWAY, "the instance did not answer").into_response(),
    }
}

/// The time each instance had at least one request in flight: the union of its requests'
/// intervals, as busy periods (start, end), all instances together.
pub fn busy_periods(records: &[Record]) -> Vec<(Instant, Instant)> {
    let instances = records.iter().map(|r| r.instance + 1).max().unwrap_or(0);
    let mut periods = Vec::new();
    for i in 0..instances {
        let mut mine: Vec<(Instant, Instant)> = records
            .iter()
            .filter(|r| r.instance == i)
            .map(|r| (r.start, r.end))
            .collect();
        mine.sort();
        let mut current: Option<(Instant, Instant)> = None;
        for (s, e) in mine {
            current = match current {
                Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
                Some(done) => {
                    periods.push(done);
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        periods.extend(current);
    }
    periods
}

/// Instance-seconds of `periods`, as measured and with each period rounded up to Cloud Run's
/// billing granularity of 100 ms (cloud.google.com/run/pricing).
pub fn billable(periods: &[(Instant, Instant)]) -> (f64, f64) {
    let raw: f64 = periods.iter().map(|(s, e)| (*e - *s).as_secs_f64()).sum();
    let rounded: f64 = periods
        .iter()
        .map(|(s, e)| ((*e - *s).as_secs_f64() * 10.0).ceil() / 10.0)
        .sum();
    (raw, rounded)
}

/// Requests per instance, and the most each had in flight at once.
pub fn per_instance(records: &[Record], instances: usize) -> Vec<(usize, usize)> {
    (0..instances)
        .map(|i| {
            // +1 at each start, -1 at each end; ends sort before starts at the same instant.
            let mut edges: Vec<(Instant, i32)> = records
                .iter()
                .filter(|r| r.instance == i)
                .flat_map(|r| [(r.start, 1), (r.end, -1)])
                .collect();
            edges.sort();
            let (mut now, mut peak) = (0i32, 0i32);
            for (_, d) in &edges {
                now += d;
                peak = peak.max(now);
            }
            (edges.len() / 2, peak as usize)
        })
        .collect()
}

/// The longest request of a run: how long, which path, which row.
#[derive(Clone, Debug)]
pub struct Longest {
    pub took: Duration,
    pub path: String,
    pub row: String,
}

static LONGEST: Mutex<Option<Longest>> = Mutex::new(None);

/// Keeps the longest of `records` if it beats the longest so far (`row` names the run).
pub fn note_longest(row: &str, records: &[Record]) -> Option<Longest> {
    let r = records.iter().max_by_key(|r| r.took())?;
    let here = Longest {
        took: r.took(),
        path: r.path.clone(),
        row: row.to_owned(),
    };
    let mut best = lock(&LONGEST);
    if best.as_ref().is_none_or(|b| b.took < here.took) {
        *best = Some(here.clone());
    }
    Some(here)
}

/// The longest request of every metered row so far.
pub fn longest() -> Option<Longest> {
    lock(&LONGEST).clone()
}
