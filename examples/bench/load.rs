//! The load generator: N concurrent HTTP/1.1 clients POSTing to 127.0.0.1 for a fixed time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Builds the body of request number `n` (unique per request).
pub type BodyFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// What one load run saw.
#[derive(Default)]
pub struct LoadResult {
    /// Latency of every answered request, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Count per HTTP status; 0 counts transport errors and timeouts.
    pub statuses: BTreeMap<u16, u64>,
    pub elapsed: Duration,
}

impl LoadResult {
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    pub fn per_second(&self, status: u16) -> f64 {
        self.count(status) as f64 / self.elapsed.as_secs_f64()
    }
}

pub struct Load {
    /// Only `http://127.0.0.1:…` URLs: the harness never sends load elsewhere.
    pub url: String,
    pub bearer: Option<String>,
    pub concurrency: usize,
    pub duration: Duration,
    /// Upper bound on requests, whatever the duration.
    pub max_requests: u64,
    pub body: BodyFn,
}

impl Load {
    pub async fn run(&self) -> anyhow::Result<LoadResult> {
        anyhow::ensure!(
            self.url.starts_with("http://127.0.0.1:"),
            "load only to 127.0.0.1"
        );
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(self.concurrency)
            .timeout(Duration::from_secs(10))
            .build()?;
        let next = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let deadline = t0 + self.duration;
        let mut tasks = Vec::new();
        for _ in 0..self.concurrency {
            let (client, next) = (client.clone(), next.clone());
            let (url, bearer, body) = (self.url.clone(), self.bearer.clone(), self.body.clone());
            let max = self.max_requests;
            tasks.push(tokio::spawn(async move {
                let mut out = LoadResult::default();
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= max {
                        break;
                    }
                    let mut rq = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body(n));
                    if let Some(b) = &bearer {
                        rq = rq.header("authorization", b);
                    }
                    let sent = Instant::now();
                    let status = match rq.send().await {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            let _ = r.bytes().await;
                            s
                        }
                        Err(_) => 0,
                    };
                    out.latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
                    *out.statuses.entry(status).or_default() += 1;
                }
                out
            }));
        }
        let mut all = LoadResult::default();
        for t in tasks {
            let r = t.await?;
            all.latencies_ms.extend(r.latencies_ms);
            for (s, c) in r.statuses {
                *all.statuses.entry(s).or_default() += c;
            }
        }
        all.elapsed = t0.elapsed();
        Ok(all)
    }
}
