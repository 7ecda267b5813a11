//! `copy-worker doctor` as a subprocess against the emulator and the Vertex AI fake
//! (issue #16, item 1): the Terraform shape passes, each misconfiguration fails with a fix,
//! and what the emulator cannot answer (IAM) is `unknown`, never `ok`.

use std::time::Duration;

use serde_json::Value;
use testkit::pubsub::{PushOidc, Topology, TopologyOptions};
use testkit::{Rpc, VertexFake};
use tokio::process::Command;

use crate::helpers::{emulator, fresh_project};

const PUSH_SA: &str = "copy-worker-push@doctor.iam.gserviceaccount.com";
const SERVICE: &str = "https://copy-worker-abc-ew.a.run.app";

/// The topology as the Terraform module creates it: OIDC tokens with an explicit audience.
async fn topology(name: &str) -> Topology {
    let opts = TopologyOptions {
        push_base_url: SERVICE.into(),
        push_oidc: Some(PushOidc {
            service_account_email: PUSH_SA.into(),
            audience: SERVICE.into(),
        }),
        ..TopologyOptions::default()
    };
    Topology::create(&emulator().endpoint(), &fresh_project(name), &opts)
        .await
        .expect("topology")
}

/// Runs `copy-worker doctor --json` with the worker's configuration; (exit code, report).
async fn doctor(topology: &Topology, vertex: &str, extra: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_copy-worker"))
        .arg("doctor")
        .arg("--json")
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PUBSUB_EMULATOR_HOST", emulator().host())
        .env("GOOGLE_CLOUD_PROJECT", &topology.project)
        .env("PUSH_AUTH", "oidc")
        .env("PUSH_AUDIENCE", SERVICE)
        .env("PUSH_SERVICE_ACCOUNTS", PUSH_SA)
        .env("VERTEX_ENDPOINT", vertex)
        .env("SOURCE_PROJECT", "src-proj")
        .env("TARGET_PROJECT", "dst-proj")
        .env("LOCATION", "us-central1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("doctor answers within 90 s")
        .expect("run copy-worker doctor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn checks(report: &Value) -> &Vec<Value> {
    report["checks"].as_array().expect("checks array")
}

/// (subject, check) of every check with `status`.
fn with_status(report: &Value, status: &str) -> Vec<(String, String)> {
    checks(report)
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| {
            (
                c["subject"].as_str().unwrap().to_owned(),
                c["check"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(s: &str, c: &str) -> (String, String) {
    (s.to_owned(), c.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_the_terraform_shape_and_says_unknown_for_what_the_emulator_cannot_answer() {
    let t = topology("doctor-ok").await;
    let vertex = VertexFake::start().await.unwrap();
    let (code, report) = doctor(&t, &vertex.endpoint(), &["--regions", "europe-west4"]).await;
    assert_eq!(with_status(&report, "fail"), vec![], "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["passed"], true);
    // IAM (publish rights, the service agent's grants) is never claimed on the emulator.
    let unknown = with_status(&report, "unknown");
    for topic in [
        "copy-requests",
        "copy-operations",
        "copy-completions",
        "copy-dead-letter",
        "copy-callbacks",
    ] {
        assert!(
            unknown.contains(&pair(&format!("topic {topic}"), "publish")),
            "{topic}: {unknown:?}"
        );
    }
    for subject in [
        "topic copy-dead-letter",
        "subscription copy-requests-push",
        "subscription copy-callbacks-push",
    ] {
        assert!(
            unknown.contains(&pair(subject, "Pub/Sub agent grant")),
            "{subject}: {unknown:?}"
        );
    }
    // The project's own Vertex AI quota is not read either: unknown, never ok.
    assert!(
        unknown.contains(&pair("quota", "project quota")),
        "{unknown:?}"
    );
    for c in checks(&report)
        .iter()
        .filter(|c| c["status"] == "unknown" && c["subject"] != "quota")
    {
        assert!(c["reason"].as_str().unwrap().contains("no IAM API"), "{c}");
    }
    let ok = with_status(&report, "ok");
    for (s, c) in [
        ("subscription copy-requests-push", "push audience"),
        ("subscription copy-requests-push", "dead-letter policy"),
        ("subscription copy-operations-push", "ack deadline"),
        ("subscription copy-operations-push", "dead-letter policy"),
        ("subscription copy-callbacks-push", "push service account"),
        ("subscription copy-dead-letter-replay", "dead letters kept"),
        ("vertex source src-proj in us-central1", "reachable"),
        ("vertex destination dst-proj in europe-west4", "reachable"),
        ("quota VERTEX_COPY_RATE", "headroom"),
        ("quota VERTEX_READ_RATE", "headroom"),
    ] {
        assert!(ok.contains(&pair(s, c)), "{s}: {c} not ok in {report:#}");
    }
    // Source and destination, in both regions: four ListModels calls, page size 1.
    assert_eq!(vertex.rpc_count(Rpc::ListModels).calls, 4);
    assert!(
        vertex
            .calls()
            .iter()
            .filter(|c| c.path.ends_with("/models"))
            .all(|c| c.query.contains("pageSize=1")),
        "{:?}",
        vertex.calls()
    );
}

/// Deletes `short` and creates it again as `change` makes it.
async fn recreate(
    t: &Topology,
    short: &str,
    change: impl FnOnce(
        google_cloud_pubsub::model::Subscription,
    ) -> google_cloud_pubsub::model::Subscription,
) {
    let admin = t.subscription_admin();
    let name = t.subscription(short);
    let sub = admin
        .get_subscription()
        .set_subscription(&name)
        .send()
        .await
        .unwrap();
    admin
        .delete_subscription()
        .set_subscription(&name)
        .send()
        .await
        .unwrap();
    admin
        .create_subscription()
        .with_request(change(sub))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_each_misconfiguration_and_names_the_fix() {
    let t = topology("doctor-bad").await;
    // A wrong audience on copy-requests-push.
    recreate(&t, "copy-requests-push", |mut s| {
        let mut push = s.push_config.take().unwrap();
        push = push.set_oidc_token(
            google_cloud_pubsub::model::push_config::OidcToken::new()
                .set_service_account_email(PUSH_SA)
                .set_audience("https://copy-worker-old.a.run.app"),
        );
        s.set_push_config(push)
    })
    .await;
    // No dead-letter policy on copy-callbacks-push.
    recreate(&t, "copy-callbacks-push", |mut s| {
        s.dead_letter_policy = None;
        s
    })
    .await;
    // copy-operations-push's ack deadline shorter than WATCH_HOLD (240 s) + margin.
    recreate(&t, "copy-operations-push", |s| {
        s.set_ack_deadline_seconds(60)
    })
    .await;
    t.delete_topic("copy-completions").await.unwrap();
    let vertex = VertexFake::start().await.unwrap();
    let (code, report) = doctor(&t, &vertex.endpoint(), &[]).await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["passed"], false);
    let mut fails = with_status(&report, "fail");
    fails.sort();
    assert_eq!(
        fails,
        vec![
            pair("subscription copy-callbacks-push", "dead-letter policy"),
            pair("subscription copy-operations-push", "ack deadline"),
            pair("subscription copy-requests-push", "push audience"),
            pair("topic copy-completions", "exists"),
        ],
        "{report:#}"
    );
    let find = |s: &str, c: &str| {
        checks(&report)
            .iter()
            .find(|x| x["subject"] == s && x["check"] == c)
            .unwrap()
            .clone()
    };
    let audience = find("subscription copy-requests-push", "push audience");
    assert!(
        audience["detail"]
            .as_str()
            .unwrap()
            .contains("https://copy-worker-old.a.run.app"),
        "{audience}"
    );
    assert!(
        audience["fix"].as_str().unwrap().contains("PUSH_AUDIENCE"),
        "{audience}"
    );
    let ack = find("subscription copy-operations-push", "ack deadline");
    assert!(
        ack["detail"]
            .as_str()
            .unwrap()
            .starts_with("60 s is below WATCH_HOLD (240 s)"),
        "{ack}"
    );
    assert!(
        ack["fix"].as_str().unwrap().contains("--ack-deadline=255")
            && ack["fix"]
                .as_str()
                .unwrap()
                .contains("operations_ack_deadline_seconds"),
        "{ack}"
    );
    let dl = find("subscription copy-callbacks-push", "dead-letter policy");
    assert!(
        dl["fix"].as_str().unwrap().contains(&format!(
            "--dead-letter-topic={}",
            t.topic("copy-dead-letter")
        )),
        "{dl}"
    );
    assert!(
        find("topic copy-completions", "exists")["fix"]
            .as_str()
            .unwrap()
            .contains("gcloud pubsub topics create"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_an_unreachable_vertex_endpoint_and_a_bad_config_stops_it_early() {
    let t = topology("doctor-vertex").await;
    // A closed port: connection refused, as with a wrong VERTEX_ENDPOINT.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // Also: a copy rate that leaves the project's other jobs less than half of the default
    // quota is a warning naming the variable and its Terraform name.
    let (code, report) = doctor(&t, &closed, &["--vertex-copy-rate", "45"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        with_status(&report, "warn"),
        vec![pair("quota VERTEX_COPY_RATE", "headroom")],
        "{report:#}"
    );
    let warn = checks(&report)
        .iter()
        .find(|c| c["status"] == "warn")
        .unwrap();
    assert!(
        warn["detail"]
            .as_str()
            .unwrap()
            .contains("75% of Vertex AI's default quota of 60")
            && warn["fix"].as_str().unwrap().contains("vertex_copy_rate"),
        "{warn}"
    );
    let fails = with_status(&report, "fail");
    assert_eq!(
        fails,
        vec![
            pair("vertex source src-proj in us-central1", "reachable"),
            pair("vertex destination dst-proj in us-central1", "reachable"),
        ],
        "{report:#}"
    );
    // A configuration serve would refuse: one failed check naming the variable, nothing else.
    let (code, report) = doctor(&t, &closed, &["--watch-hold", "400s"]).await;
    assert_eq!(code, 1);
    let c = checks(&report);
    assert_eq!(c.len(), 1, "{report:#}");
    assert_eq!(c[0]["check"], "parses");
    assert!(
        c[0]["detail"].as_str().unwrap().contains("WATCH_HOLD"),
        "{report:#}"
    );
}
