//! The push-window front: pushes beyond the window wait, 2xx answers grow the window, other
//! answers halve it, and a target that is not up yet is waited for like a cold start.

use axum::http::StatusCode;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::{PushFront, PushWindow};
use tokio::net::{TcpListener, TcpStream};

/// A worker stand-in: answers the scripted statuses in order (then 200) after `delay`, and
/// counts arrivals and concurrency.
#[derive(Clone, Default)]
struct Upstream {
    script: Arc<Mutex<VecDeque<u16>>>,
    delay: Duration,
    arrived: Arc<AtomicU32>,
    in_flight: Arc<AtomicU32>,
    peak: Arc<AtomicU32>,
}

impl Upstream {
    fn scripted(statuses: &[u16], delay: Duration) -> Upstream {
        Upstream {
            script: Arc::new(Mutex::new(statuses.iter().copied().collect())),
            delay,
            ..Upstream::default()
        }
    }

    async fn serve_on(self, listener: TcpListener) {
        let app = axum::Router::new().fallback(answer).with_state(self);
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    /// Serves on a free port and returns its base URL.
    async fn serve(self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        self.serve_on(listener).await;
        url
    }
}

async fn answer(axum::extract::State(up): axum::extract::State<Upstream>) -> StatusCode {
    up.arrived.fetch_add(1, Ordering::SeqCst);
    let now = up.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    up.peak.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(up.delay).await;
    up.in_flight.fetch_sub(1, Ordering::SeqCst);
    let status = up.script.lock().expect("script").pop_front().unwrap_or(200);
    StatusCode::from_u16(status).expect("status")
}

/// POSTs a push envelope-sized body to `base` + `/push` and returns the status.
async fn push(base: &str) -> u16 {
    let authority = base.strip_prefix("http://").expect("http URL");
    let stream = TcpStream::connect(authority).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let request = hyper::Request::post("/push")
        .header("host", authority)
        .body(String::from(r#"{"message":{"data":""}}"#))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    response.status().as_u16()
}

#[tokio::test]
async fn successes_grow_the_window_from_a_few() {
    let target = Upstream::default().serve().await;
    let front = PushFront::start(&target, PushWindow::default())
        .await
        .expect("front");
    for _ in 0..5 {
        assert_eq!(push(&front.url()).await, 200);
    }
    let stats = front.stats();
    assert_eq!((stats.lowest, stats.window, stats.highest), (3, 8, 8));
    assert_eq!((stats.successes, stats.failures), (5, 0));
}

#[tokio::test]
async fn each_failure_halves_the_window_down_to_one() {
    let up = Upstream::scripted(&[200, 200, 500, 429, 503, 500], Duration::ZERO);
    let front = PushFront::start(&up.serve().await, PushWindow::default())
        .await
        .expect("front");
    let mut answered = vec![];
    let mut windows = vec![];
    for _ in 0..6 {
        answered.push(push(&front.url()).await);
        windows.push(front.stats().window);
    }
    assert_eq!(
        answered,
        [200, 200, 500, 429, 503, 500],
        "statuses pass through"
    );
    assert_eq!(windows, [4, 5, 2, 1, 1, 1]);
    let stats = front.stats();
    assert_eq!((stats.lowest, stats.highest), (1, 5));
    assert_eq!((stats.successes, stats.failures), (2, 4));
}

#[tokio::test]
async fn pushes_beyond_the_window_wait_at_the_front_instead_of_being_refused() {
    let up = Upstream::scripted(&[], Duration::from_millis(400));
    let front = PushFront::start(&up.clone().serve().await, PushWindow::default())
        .await
        .expect("front");
    let url = front.url();
    let pushes: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn({
                let url = url.clone();
                async move { push(&url).await }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        up.arrived.load(Ordering::SeqCst),
        3,
        "only the initial window is upstream"
    );
    assert_eq!(front.stats().in_flight, 3);
    for push in pushes {
        assert_eq!(push.await.expect("push task"), 200, "nobody is refused");
    }
    let stats = front.stats();
    assert_eq!(stats.waited, 5);
    assert!(stats.peak_in_flight <= stats.highest, "{stats:?}");
    assert_eq!(up.peak.load(Ordering::SeqCst), stats.peak_in_flight);
}

#[tokio::test]
async fn a_target_that_starts_late_is_waited_for_and_one_that_never_starts_is_a_503() {
    let reserved = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = reserved.local_addr().expect("addr");
    drop(reserved);
    let window = PushWindow {
        cold_start: Duration::from_millis(600),
        ..PushWindow::default()
    };
    let front = PushFront::start(&format!("http://{addr}"), window)
        .await
        .expect("front");
    let started = Instant::now();
    assert_eq!(push(&front.url()).await, 503);
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!((front.stats().failures, front.stats().window), (1, 1));

    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let listener = TcpListener::bind(addr).await.expect("rebind");
        Upstream::default().serve_on(listener).await;
    });
    assert_eq!(push(&front.url()).await, 200, "held through the cold start");
    assert_eq!(front.stats().successes, 1);
}
