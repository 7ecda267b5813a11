//! Names that become hosts (issue 28, item 1). The probe: a watch with
//! `operation=projects/1/locations/127.0.0.1:47300#/operations/1` made the worker send
//! `Authorization: Bearer <its token>` to that listener, and the listener's answer decided the
//! outcome.
//!
//! The worker runs here as it does in production: no `VERTEX_ENDPOINT`, so every Vertex AI
//! endpoint is built from a location, and Application Default Credentials that mint a token
//! (an `authorized_user` file whose token endpoint is local), so a call would carry a bearer
//! token. A listener on loopback stands where the probe's was and counts the connections it
//! accepts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::child::{ChildWorker, envelope};
use crate::helpers::{fresh_project, request};

/// A listener that counts the connections it accepts, and closes them.
async fn trap() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (port, accepted)
}

/// An ADC file whose token endpoint is a local server that hands out a token.
async fn local_adc(project: &str) -> std::path::PathBuf {
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(|| async {
            axum::Json(serde_json::json!({
                "access_token": "worker-token",
                "expires_in": 3600,
                "token_type": "Bearer",
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let file = std::env::temp_dir().join(format!("cw-hostile-adc-{project}.json"));
    let adc = serde_json::json!({
        "type": "authorized_user",
        "client_id": "local",
        "client_secret": "local",
        "refresh_token": "local",
        "token_uri": format!("http://127.0.0.1:{port}/token"),
    });
    std::fs::write(&file, adc.to_string()).unwrap();
    file
}

/// One delivery of `data` to `route`, naming the forged operation: a task body, or a push
/// envelope with every attribute a stage reads.
fn forged_delivery(route: &str, i: usize, data: &str, forged_op: &str, now: &str) -> String {
    let attributes = [
        ("request_id", "hostile-1"),
        ("operation", forged_op),
        ("attempt", "1"),
        ("accepted_at", now),
        ("callback_url", "https://hooks.example.com/x"),
        ("webhook_id", "hostile-1:succeeded"),
    ];
    if route.starts_with("/tasks/") {
        // A task names its operation in its body (docs/DESIGN.md §3, "Copy tasks").
        serde_json::json!({
            "request": serde_json::from_str::<serde_json::Value>(data).unwrap(),
            "attempt": 1,
            "accepted_at": now.split('.').next().unwrap().to_owned() + "Z",
            "operation": forged_op,
            "started_at": now.split('.').next().unwrap().to_owned() + "Z",
            "origin": format!("m-{i}"),
            "seq": 1,
        })
        .to_string()
    } else {
        envelope(&format!("m-{i}"), data.as_bytes(), &attributes)
    }
}

/// The probe's forged names, sent to every internal route the worker serves (a route that is
/// not served answers 404, which is fine too): in the `operation` attribute, and as the
/// location of the request's source and destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_operation_and_location_names_never_make_the_worker_connect_anywhere() {
    let project = fresh_project("hostile-names");
    let (port, accepted) = trap().await;
    let adc = local_adc(&project).await;
    let adc = adc.to_str().unwrap().to_owned();
    let worker = ChildWorker::start(
        &project,
        "",
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", &adc),
            ("SOURCE_PROJECT", "src-proj"),
            ("TARGET_PROJECT", "dst-proj"),
            ("LOCATION", "us-central1"),
            // The upgrade route too, which reads the previous release's watch messages.
            ("COPY_OPERATIONS_DRAIN", "true"),
        ],
    )
    .await;
    let forged_location = format!("127.0.0.1:{port}#");
    let forged_op = format!("projects/1/locations/{forged_location}/operations/1");
    let good = request("hostile-1", "target-hostile-1");
    let forged_source = good.replace(
        "locations/us-central1",
        &format!("locations/{forged_location}"),
    );
    let forged_destination = good.replace("europe-west4", &forged_location);
    let client = reqwest::Client::new();
    let routes = [
        "/pubsub/copy-requests",
        "/pubsub/copy-operations",
        "/pubsub/copy-callbacks",
        "/tasks/copy-starts",
        "/tasks/copy-polls",
    ];
    let now = chrono::Utc::now().to_rfc3339();
    for route in routes {
        // A well-formed request goes only beside the forged operation: anywhere else it
        // would send the worker to the real Vertex AI, which a test must never reach.
        let mut bodies = vec![&forged_source, &forged_destination];
        if route == "/pubsub/copy-operations" {
            bodies.push(&good);
        }
        for (i, data) in bodies.into_iter().enumerate() {
            let body = forged_delivery(route, i, data, &forged_op, &now);
            // The answer does not matter (a forged name is refused, the topics of this fresh
            // project do not exist); only where the worker connected does.
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                client
                    .post(format!("{}{route}", worker.base_url()))
                    .header("content-type", "application/json")
                    .body(body)
                    .send(),
            )
            .await;
        }
    }
    let _ = std::fs::remove_file(&adc);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the worker connected to the forged host; log:\n{}",
        worker.log_text()
    );
}
