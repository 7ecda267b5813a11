//! The HTTP server loop: how long a client may take, and how many may be connected at once
//! (DESIGN.md §11, "Slow clients"). The probe of issue 28 held 200 slow-loris connections
//! open (half a request head each, one file descriptor each) against `axum::serve`, which
//! sets no read timeout and no connection bound.
//!
//! Each limit is the library's own setting: hyper's HTTP/1 `header_read_timeout` (with
//! tokio's timer, which hyper needs for it), tower-http's `RequestBodyTimeoutLayer`, and a
//! semaphore of connection slots taken before `accept`, so a connection beyond the bound
//! waits in the kernel's listen backlog instead of costing a task and a buffer. Shutdown is
//! hyper-util's `GracefulShutdown`: stop accepting, let every request in flight finish.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// How the server treats slow and numerous clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A request head (request line and headers) must have arrived this long after the
    /// server started reading it, or the connection is closed. Pub/Sub, Cloud Tasks and
    /// Cloud Run's front end send a head at once; the clock also closes a keep-alive
    /// connection that stays idle this long.
    pub header_read_timeout: Duration,
    /// Longest pause between two parts of a request body; the handler then reads an error
    /// and refuses the request.
    pub body_read_timeout: Duration,
    /// Connections open at once, at most. Above Cloud Run's largest concurrency (1000), so
    /// the bound never queues legitimate traffic of one instance.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `signal` completes; then stops
/// accepting and returns once every open connection has finished its requests and closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    signal: impl Future<Output = ()>,
) {
    let router = router.layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut signal = std::pin::pin!(signal);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut signal => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: wait a moment instead of spinning on accept.
                    tracing::warn!(error.message = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A connection closed by a timeout or by its client is no error of the server's.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
