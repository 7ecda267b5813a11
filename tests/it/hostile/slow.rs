//! Slow clients (issue 28, item 4). The probe: 200 slow-loris connections, each having sent
//! half a request head, stayed open for as long as they liked, one file descriptor each.
//!
//! The worker is served here by `copy_worker::app::serve`, the loop `copy-worker serve`
//! runs, with the production limits except where a test names a shorter one.

use std::time::Duration;

use copy_worker::app::{ServeLimits, build_state, serve};
use copy_worker::http::app;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{fresh_project, test_config};

/// A worker served with `limits` on a free port; its base URL.
async fn serve_worker(name: &str, limits: ServeLimits) -> String {
    let project = fresh_project(name);
    let vertex = testkit::VertexFake::start().await.expect("vertex fake");
    let cfg = test_config(&project, &vertex.endpoint(), vec![]);
    let (state, _) = build_state(&cfg).await.expect("app state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _keep = vertex;
        serve(listener, app(state), limits, std::future::pending()).await;
    });
    url
}

/// A connection that sends half a request head and then nothing.
async fn loris(url: &str) -> TcpStream {
    let mut s = TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(b"POST /pubsub/copy-requests HTTP/1.1\r\nHost: worker\r\nContent-Ty")
        .await
        .unwrap();
    s
}

async fn healthz(client: &reqwest::Client, url: &str) -> u16 {
    client
        .get(format!("{url}/healthz"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Reads until the server closes the connection; whatever it said before closing.
async fn until_closed(mut s: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server never closed a slow connection");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_slow_loris_connections_are_closed_and_healthz_answers_throughout() {
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(2),
        ..ServeLimits::default()
    };
    let url = serve_worker("hostile-loris", limits).await;
    let mut lorises = Vec::new();
    for _ in 0..200 {
        lorises.push(loris(&url).await);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let closing = tokio::spawn(futures::future::join_all(
        lorises.into_iter().map(until_closed),
    ));
    let mut answers = Vec::new();
    while !closing.is_finished() {
        answers.push(healthz(&client, &url).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let said = closing.await.unwrap();
    assert_eq!(said.len(), 200);
    assert!(
        said.iter().all(|b| !b.starts_with(b"HTTP/1.1 2")),
        "a slow request head was served"
    );
    assert!(answers.len() >= 2, "healthz was asked during the attack");
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    assert_eq!(healthz(&client, &url).await, 200);
}

/// Beyond `max_connections`, a connection waits in the listen backlog, unserved, until an
/// open one closes; then it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_wait_until_one_closes() {
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(120),
        max_connections: 10,
        ..ServeLimits::default()
    };
    let url = serve_worker("hostile-bound", limits).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert_eq!(healthz(&client, &url).await, 200);
    let mut lorises = Vec::new();
    for _ in 0..10 {
        lorises.push(loris(&url).await);
    }
    // Let the server accept all ten before the eleventh connection arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move { healthz(&client, &url).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "an eleventh connection was served");
    drop(lorises.pop());
    assert_eq!(waiting.await.unwrap(), 200);
}

/// A body that stalls past the body read timeout is refused (400, JSON on
/// `/v1/models/copy`), not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_refused() {
    let limits = ServeLimits {
        body_read_timeout: Duration::from_secs(1),
        ..ServeLimits::default()
    };
    let url = serve_worker("hostile-body", limits).await;
    let mut s = TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(
        b"POST /v1/models/copy HTTP/1.1\r\nHost: worker\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"source",
    )
    .await
    .unwrap();
    let said = String::from_utf8(until_closed(s).await).unwrap();
    assert!(said.starts_with("HTTP/1.1 400"), "{said}");
    assert!(said.contains("\"error\""), "{said}");
}
