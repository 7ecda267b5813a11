//! A webhook receiver for the callback tests, with scripted answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};

/// A scripted answer that holds the request open for two minutes (then 200): the worker is
/// "mid-callback" for as long as a test needs.
pub const HANG: u16 = 0;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A received callback: headers and body.
pub type Hit = (HeaderMap, Vec<u8>);
/// A scripted answer: status and optional `Location`.
pub type Answer = (u16, Option<String>);

/// A webhook receiver whose answers are scripted: it answers `script` in order, then 200.
#[derive(Clone, Default)]
pub struct Receiver {
    got: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<Vec<Answer>>>,
}

impl Receiver {
    pub async fn start(script: Vec<Answer>) -> (Receiver, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, script)
    }

    /// Starts on `port`, e.g. one a callback URL already names (a receiver that was down).
    pub async fn start_at(port: u16, script: Vec<Answer>) -> (Receiver, String) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Self::serve(listener, script)
    }

    fn serve(listener: tokio::net::TcpListener, script: Vec<Answer>) -> (Receiver, String) {
        let r = Receiver {
            got: Default::default(),
            script: Arc::new(Mutex::new(script)),
        };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push((headers, body.to_vec()));
                    let next = {
                        let mut s = state.script.lock().unwrap();
                        if s.is_empty() {
                            (200, None)
                        } else {
                            s.remove(0)
                        }
                    };
                    if next.0 == HANG {
                        tokio::time::sleep(Duration::from_secs(120)).await;
                    }
                    let mut resp = axum::response::Response::new(axum::body::Body::empty());
                    *resp.status_mut() = StatusCode::from_u16(next.0.max(200)).unwrap();
                    if let Some(loc) = next.1 {
                        resp.headers_mut().insert("location", loc.parse().unwrap());
                    }
                    resp
                }
            }),
        );
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    pub fn received(&self) -> Vec<Hit> {
        self.got.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
