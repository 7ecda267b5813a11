//! Hostile push bodies (docs/auth.md, "Push bodies"): each gets its outcome from
//! DESIGN.md §4, never a panic and never a retry loop. Authentication is off here
//! (`PUSH_AUTH=none`): only the body is under test.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::auth::envelope;
use crate::helpers::{Knobs, TestApp, request, spawn_app};

async fn post(app: &TestApp, body: impl Into<reqwest::Body>) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{}/pubsub/copy-requests", app.base_url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("worker answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_envelopes_answer_400_and_touch_nothing() {
    let app = spawn_app("bodies400", Knobs::default()).await;
    let nested = format!(
        r#"{{"message":{{"messageId":"1","data":{}"#,
        "[".repeat(100_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not json", b"copy please".to_vec(), "envelope"),
        ("empty", vec![], "envelope"),
        (
            "wrong types",
            br#"{"message":{"data":5,"messageId":"1"}}"#.to_vec(),
            "envelope",
        ),
        (
            "attributes not strings",
            br#"{"message":{"attributes":{"a":1},"messageId":"1"}}"#.to_vec(),
            "envelope",
        ),
        (
            "url-safe base64",
            br#"{"message":{"data":"-_8=","messageId":"1"}}"#.to_vec(),
            "base64",
        ),
        (
            "unpadded base64",
            br#"{"message":{"data":"YQ","messageId":"1"}}"#.to_vec(),
            "base64",
        ),
        (
            "no message id",
            br#"{"message":{"data":"YQ=="}}"#.to_vec(),
            "messageId",
        ),
        ("100,000 nested brackets", nested.into_bytes(), "envelope"),
        (
            "unwrapped payload",
            request("unwrapped", "target-unwrapped").into_bytes(),
            "unwrapped",
        ),
        (
            "3 MiB of junk (no 2 MB default limit)",
            vec![b' '; 3 << 20],
            "envelope",
        ),
    ];
    for (name, body, why) in cases {
        let (status, text) = post(&app, body).await;
        assert_eq!(status, 400, "{name}: {text}");
        assert!(text.contains(why), "{name}: {text}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(app.vertex.calls().is_empty());
    assert!(app.completions().snapshot().is_empty());
    assert!(app.dead_letters.snapshot().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_14_mib_answers_413_whether_declared_or_chunked() {
    let app = spawn_app("bodies413", Knobs::default()).await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    // Declared: the worker answers from Content-Length and may close while the client still
    // writes, so the status line is read from a raw socket, not through an HTTP client.
    let declared = 15usize << 20;
    let head = format!(
        "POST /pubsub/copy-requests HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
    );
    let line = status_line(&addr, head, false).await;
    assert!(line.starts_with("HTTP/1.1 413"), "declared: {line}");

    // Chunked, with no length: the worker must stop reading at the limit and answer.
    let head = format!(
        "POST /pubsub/copy-requests HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let line = status_line(&addr, head, true).await;
    assert!(line.starts_with("HTTP/1.1 413"), "chunked: {line}");
    assert!(app.vertex.calls().is_empty());
}

/// Sends `head`, then 1 MiB pieces of body (in chunked encoding when `chunked`), up to
/// 64 MiB, from a background task; returns the first bytes of the answer.
async fn status_line(addr: &str, head: String, chunked: bool) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 1 << 20];
        // Up to 64 MiB: far past the limit, but bounded if the worker kept reading.
        for _ in 0..64 {
            if !chunked {
                wr.write_all(&chunk).await?;
            } else {
                wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                wr.write_all(&chunk).await?;
                wr.write_all(b"\r\n").await?;
            }
        }
        wr.write_all(b"0\r\n\r\n").await
    });
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut answer))
        .await
        .expect("the worker answers before the client finishes")
        .unwrap();
    writer.abort();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_data_inside_a_valid_envelope_is_rejected_once_and_acked() {
    let app = spawn_app("bodiesrej", Knobs::default()).await;
    let datas: Vec<(&str, Vec<u8>)> = vec![
        ("invalid utf-8", vec![b'{', 0xff, 0xfe, b'}']),
        ("60,000 nested brackets", "[".repeat(60_000).into_bytes()),
        ("100,000 nested brackets", "[".repeat(100_000).into_bytes()),
        ("empty data", vec![]),
        ("json but not an object", b"[1,2]".to_vec()),
    ];
    for (name, data) in &datas {
        let (status, text) = post(&app, envelope(data)).await;
        assert_eq!(status, 204, "{name}: {text}");
    }
    let events = app
        .completions()
        .wait_for(datas.len(), Duration::from_secs(30), |_| true)
        .await
        .expect("one rejection per body");
    for e in &events {
        let j = e.json();
        assert_eq!(j["status"], "rejected", "{j}");
        assert_eq!(j["error"]["code"], "INVALID_REQUEST", "{j}");
    }
    let dead = app
        .dead_letters
        .wait_for(datas.len(), Duration::from_secs(30), |_| true)
        .await
        .expect("one dead letter per body");
    let mut kept: Vec<Vec<u8>> = dead.iter().map(|d| d.data.clone()).collect();
    let mut sent: Vec<Vec<u8>> = datas.iter().map(|(_, d)| d.clone()).collect();
    kept.sort();
    sent.sort();
    assert_eq!(kept, sent, "dead letters keep the bytes as received");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.completions().snapshot().len(),
        datas.len(),
        "no retry loop"
    );
    assert!(app.vertex.calls().is_empty());
}
