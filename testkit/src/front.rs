//! A push-window front: an HTTP reverse proxy between the Pub/Sub emulator's push
//! subscriptions and the worker, modelling the push flow control of real Pub/Sub
//! (DESIGN.md §10, "Push flow control").
//!
//! # Why
//! Pub/Sub "dynamically adjusts the rate of push requests based on the rate at which it receives
//! success responses" (<https://cloud.google.com/pubsub/docs/push>, push subscription workflow):
//! it keeps a push window of outstanding requests that starts small, grows with success answers
//! and shrinks on any other answer. The emulator does none of this, so a worker that answers 429
//! to pace itself looks harmless locally and throttles itself in production. Put this front
//! between the push subscription and the worker (push endpoint = [`PushFront::url`] + path) to
//! see what the window does.
//!
//! # Model
//! 1. At most `W` pushes are in flight upstream. Further pushes wait at the front, unanswered,
//!    like the messages Pub/Sub holds back: the limit is on Pub/Sub's side, so an endpoint never
//!    sees the excess, and answering it 429 would model a different system.
//! 2. `W` starts at [`PushWindow::initial`] (a few: Pub/Sub starts with a small window).
//! 3. A 2xx answer grows `W`: by 1 below the slow-start threshold (so a window of successes
//!    doubles it), by `1/W` above it (one per window of successes: additive increase), up to
//!    [`PushWindow::cap`].
//! 4. Any other answer halves `W` (multiplicative decrease), down to [`PushWindow::floor`], and
//!    sets the threshold to the new `W`. A push the worker never answered (transport failure) is
//!    answered 502 and counts as a failure.
//! 5. Cold start: while nothing listens on the target, a push is held for up to
//!    [`PushWindow::cold_start`], as Cloud Run holds requests while an instance starts, then
//!    answered 503.
//!
//! The window is applied per front; give each push subscription its own front to model
//! Pub/Sub's per-subscription windows.

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How the push window behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct PushWindow {
    /// The window before any answer: 3.
    pub initial: u32,
    /// The window never shrinks below this: 1 (Pub/Sub keeps delivering, one at a time).
    pub floor: u32,
    /// The window never grows above this: 1000, high enough not to bind in tests.
    pub cap: u32,
    /// How long a push waits for the target to accept connections: 15 s.
    pub cold_start: Duration,
}

impl Default for PushWindow {
    fn default() -> PushWindow {
        PushWindow {
            initial: 3,
            floor: 1,
            cap: 1000,
            cold_start: Duration::from_secs(15),
        }
    }
}

/// What the front has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushWindowStats {
    /// The window now.
    pub window: u32,
    /// The smallest window so far (starts at [`PushWindow::initial`]).
    pub lowest: u32,
    /// The largest window so far.
    pub highest: u32,
    /// Pushes answered 2xx.
    pub successes: u64,
    /// Pushes answered anything else, including 502/503 from the front itself.
    pub failures: u64,
    /// Pushes upstream now.
    pub in_flight: u32,
    /// The most pushes upstream at once.
    pub peak_in_flight: u32,
    /// Pushes that had to wait for room in the window.
    pub waited: u64,
}

/// A running front; the server stops when this is dropped.
#[derive(Debug)]
pub struct PushFront {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl PushFront {
    /// Serves a front on a free port of 127.0.0.1 that forwards every request to `target`
    /// (`http://host:port`, optionally with a path prefix), in the current tokio runtime.
    pub async fn start(target: &str, window: PushWindow) -> anyhow::Result<PushFront> {
        Self::start_balanced(&[target], window).await
    }

    /// A front for several instances of one service: one window for the subscription, and
    /// each push goes to the next target in turn (as Cloud Run spreads requests over its
    /// instances). `targets` may start empty and grow with [`PushFront::add_target`].
    pub async fn start_balanced(targets: &[&str], window: PushWindow) -> anyhow::Result<PushFront> {
        let targets = targets
            .iter()
            .map(|t| Target::parse(t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the push front")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cold_start: window.cold_start,
            flow: Mutex::new(Flow::new(window)),
            changed: Notify::new(),
            targets: Mutex::new(targets.into_iter().map(Arc::new).collect()),
            next: std::sync::atomic::AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(PushFront {
            addr,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`: use it as the push endpoint's base.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Spreads pushes over one more target from now on (a new instance of the service).
    pub fn add_target(&self, target: &str) -> anyhow::Result<()> {
        let target = Target::parse(target)?;
        lock(&self.shared.targets).push(Arc::new(target));
        Ok(())
    }

    /// The window and counters now.
    pub fn stats(&self) -> PushWindowStats {
        lock(&self.shared.flow).stats
    }
}

impl Drop for PushFront {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Debug)]
struct Shared {
    flow: Mutex<Flow>,
    /// Signalled whenever a push leaves the window, so waiting pushes look again.
    changed: Notify,
    /// Grows with [`PushFront::add_target`], as Cloud Run adds instances under load.
    targets: Mutex<Vec<Arc<Target>>>,
    /// Round-robin position over `targets`.
    next: std::sync::atomic::AtomicUsize,
    cold_start: Duration,
}

/// Where pushes go.
#[derive(Debug)]
pub(crate) struct Target {
    /// `host:port`, also sent as `Host`.
    authority: String,
    /// Path prefix without a trailing `/` (may be empty).
    base_path: String,
}

impl Target {
    pub(crate) fn parse(target: &str) -> anyhow::Result<Target> {
        let uri: Uri = target.parse().context("parsing the push front's target")?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http"),
            "the push front forwards to http:// targets only: {target}"
        );
        let authority = uri.authority().context("target without host")?.to_string();
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(Target {
            authority,
            base_path,
        })
    }
}

/// The window arithmetic; `size` is fractional so that additive increase can add `1/W`.
#[derive(Debug)]
struct Flow {
    config: PushWindow,
    size: f64,
    threshold: f64,
    stats: PushWindowStats,
}

impl Flow {
    fn new(mut config: PushWindow) -> Flow {
        config.floor = config.floor.max(1);
        config.cap = config.cap.max(config.floor);
        config.initial = config.initial.clamp(config.floor, config.cap);
        let initial = config.initial;
        Flow {
            size: f64::from(initial),
            threshold: f64::from(config.cap),
            config,
            stats: PushWindowStats {
                window: initial,
                lowest: initial,
                highest: initial,
                ..PushWindowStats::default()
            },
        }
    }

    fn try_start(&mut self) -> bool {
        if self.stats.in_flight >= self.stats.window {
            return false;
        }
        self.stats.in_flight += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.stats.in_flight);
        true
    }

    /// A push left the window with `success` (2xx or not), or with no answer at all when the
    /// pusher went away first.
    fn finish(&mut self, success: Option<bool>) {
        self.stats.in_flight -= 1;
        let (floor, cap) = (f64::from(self.config.floor), f64::from(self.config.cap));
        match success {
            Some(true) => {
                self.stats.successes += 1;
                let step = if self.size < self.threshold {
                    1.0
                } else {
                    1.0 / self.size
                };
                self.size = (self.size + step).min(cap);
            }
            Some(false) => {
                self.stats.failures += 1;
                self.size = (self.size / 2.0).max(floor);
                self.threshold = self.size;
            }
            None => {}
        }
        // `size` stays within [floor, cap], so the cast cannot truncate beyond the fraction.
        let window = self.size as u32;
        self.stats.window = window;
        self.stats.lowest = self.stats.lowest.min(window);
        self.stats.highest = self.stats.highest.max(window);
    }
}

/// One push inside the window; leaving it (also by being dropped) makes room for the next.
struct Slot {
    shared: Arc<Shared>,
    success: Option<bool>,
}

impl Slot {
    async fn acquire(shared: Arc<Shared>) -> Slot {
        let mut counted = false;
        loop {
            // Registered before looking, so a release between the look and the wait is seen.
            let mut changed = std::pin::pin!(shared.changed.notified());
            changed.as_mut().enable();
            {
                let mut flow = lock(&shared.flow);
                if flow.try_start() {
                    break;
                }
                if !counted {
                    counted = true;
                    flow.stats.waited += 1;
                }
            }
            changed.await;
        }
        Slot {
            shared,
            success: None,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.shared.flow).finish(self.success);
        self.shared.changed.notify_waiters();
    }
}

/// The handler behind every path: wait for room in the window, forward, and let the answer
/// resize the window.
async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let mut slot = Slot::acquire(shared.clone()).await;
    let target = {
        let targets = lock(&shared.targets);
        let i = shared
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        targets.get(i % targets.len().max(1)).cloned()
    };
    let Some(target) = target else {
        // No instance yet (targets are added with `add_target`): as Cloud Run with none up.
        slot.success = Some(false);
        return (StatusCode::SERVICE_UNAVAILABLE, "push front: no target yet").into_response();
    };
    let response = match send(&target, shared.cold_start, request).await {
        Ok(response) => response,
        Err(Upstream::Down) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "push front: nothing listens on the target",
        )
            .into_response(),
        Err(Upstream::Failed(error)) => {
            (StatusCode::BAD_GATEWAY, format!("push front: {error}")).into_response()
        }
    };
    slot.success = Some(response.status().is_success());
    response
}

/// Why a push got no answer from the target.
pub(crate) enum Upstream {
    /// No connection within the cold-start time.
    Down,
    /// The connection failed or closed before an answer.
    Failed(String),
}

pub(crate) async fn send(
    target: &Target,
    cold_start: Duration,
    request: Request,
) -> Result<Response, Upstream> {
    let stream = connect(&target.authority, cold_start).await?;
    let failed = |e: hyper::Error| Upstream::Failed(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    tokio::spawn(connection);
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{}{path}", target.base_path)
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| Upstream::Failed(e.to_string()))?;
    if let Ok(host) = target.authority.parse() {
        parts.headers.insert(header::HOST, host);
    }
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(failed)?;
    Ok(response.map(Body::new))
}

/// Connects to `authority`, retrying while nothing listens, for up to `cold_start`.
async fn connect(authority: &str, cold_start: Duration) -> Result<TcpStream, Upstream> {
    let deadline = Instant::now() + cold_start;
    loop {
        if let Ok(stream) = TcpStream::connect(authority).await {
            return Ok(stream);
        }
        if Instant::now() >= deadline {
            return Err(Upstream::Down);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow::new(PushWindow {
            initial: 3,
            floor: 1,
            cap: 6,
            ..PushWindow::default()
        })
    }

    fn answer(flow: &mut Flow, success: bool) {
        assert!(flow.try_start());
        flow.finish(Some(success));
    }

    #[test]
    fn successes_grow_the_window_up_to_the_cap() {
        let mut flow = flow();
        for _ in 0..5 {
            answer(&mut flow, true);
        }
        assert_eq!((flow.stats.window, flow.stats.highest), (6, 6));
    }

    #[test]
    fn failures_halve_the_window_down_to_the_floor_then_growth_is_additive() {
        let mut flow = flow();
        answer(&mut flow, true); // 4
        answer(&mut flow, false); // 2
        assert_eq!(flow.stats.window, 2);
        for _ in 0..3 {
            answer(&mut flow, false);
        }
        assert_eq!((flow.stats.window, flow.stats.lowest), (1, 1));
        // Above the threshold (1): +1/W per success, so two successes give 1 → 2 → 2.5.
        answer(&mut flow, true);
        answer(&mut flow, true);
        assert_eq!(flow.stats.window, 2);
        assert!((flow.size - 2.5).abs() < 1e-9, "{}", flow.size);
    }

    #[test]
    fn no_push_starts_beyond_the_window() {
        let mut flow = flow();
        assert!(flow.try_start() && flow.try_start() && flow.try_start());
        assert!(!flow.try_start());
        flow.finish(None);
        assert_eq!(flow.stats.window, 3, "an unanswered push does not resize");
        assert!(flow.try_start());
    }

    #[test]
    fn targets_keep_their_path_prefix() {
        let target = Target::parse("http://127.0.0.1:9/push/").expect("target");
        assert_eq!(
            (target.authority.as_str(), target.base_path.as_str()),
            ("127.0.0.1:9", "/push")
        );
        assert!(Target::parse("https://example.com").is_err());
    }
}
