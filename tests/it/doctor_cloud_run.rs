//! `copy-worker doctor` under `PUSH_AUTH=cloud-run` reads the worker's own service as the
//! worker does (DESIGN.md §11, §13), against testkit's Cloud Run Admin fake: the invoker check
//! on passes; off, or `run.invoker` granted to `allUsers`, fails with the cause the worker
//! logs and the gcloud command that fixes it; a service that cannot be read is `unknown`.

use serde_json::Value;
use testkit::{RunAdminFake, RunService, VertexFake};

use crate::doctor::{checks, doctor, topology};

const PROJECT: &str = "doctor-proj";

fn service(name: &str) -> String {
    format!("projects/{PROJECT}/locations/europe-west4/services/{name}")
}

/// The `invoker check` line of a report.
fn invoker_check(report: &Value) -> Value {
    let found: Vec<&Value> = checks(report)
        .iter()
        .filter(|c| c["check"] == "invoker check")
        .collect();
    assert_eq!(found.len(), 1, "{report:#}");
    found[0].clone()
}

/// The Cloud Run admin fake with three services: the invoker check on, off, and on but
/// granted to allUsers.
async fn run_admin_with_three_services() -> RunAdminFake {
    let admin = RunAdminFake::start().await.unwrap();
    admin.put(&service("on"), RunService::default());
    admin.put(
        &service("off"),
        RunService {
            invoker_iam_disabled: true,
            bindings: vec![],
        },
    );
    let invoker = |member: &str| ("roles/run.invoker".to_owned(), vec![member.to_owned()]);
    admin.put(
        &service("public"),
        RunService {
            invoker_iam_disabled: false,
            bindings: vec![
                invoker("serviceAccount:push@p.iam.gserviceaccount.com"),
                invoker("allUsers"),
            ],
        },
    );
    admin
}

/// (service, status, what the detail and the fix must say)
fn invoker_cases() -> [(&'static str, &'static str, Vec<&'static str>); 4] {
    [
        ("on", "ok", vec!["allUsers"]),
        (
            "off",
            "fail",
            vec![
                "is disabled (invokerIamDisabled)",
                "--invoker-iam-check",
                "401",
            ],
        ),
        (
            "public",
            "fail",
            vec![
                "grants roles/run.invoker to allUsers",
                "remove-iam-policy-binding",
                "--member=allUsers",
            ],
        ),
        (
            "missing",
            "unknown",
            vec!["cannot read", "roles/run.viewer"],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_the_cloud_run_invoker_check_the_worker_trusts() {
    let t = topology("doctor-cr").await;
    let vertex = VertexFake::start().await.unwrap();
    let admin = run_admin_with_three_services().await;
    let cases = invoker_cases();
    for (name, status, says) in cases {
        let svc = service(name);
        let extra = [
            "--push-auth",
            "cloud-run",
            "--worker-service",
            &svc,
            "--cloud-run-admin-endpoint",
            &admin.endpoint(),
        ];
        let (code, report) = doctor(&t, &vertex.endpoint(), &extra).await;
        let check = invoker_check(&report);
        assert_eq!(check["status"], status, "{name}: {check:#}");
        assert_eq!(check["subject"], format!("cloud run {svc}"), "{check:#}");
        let text = format!("{} {}", check["detail"], check["fix"]);
        for s in says {
            assert!(text.contains(s), "{name}: {s:?} not in {check:#}");
        }
        assert_eq!(
            code == 0,
            status != "fail",
            "{name}: exit {code}, {report:#}"
        );
    }
    // Read as the worker reads it: GetService, then GetIamPolicy while the check is on.
    let calls = admin.calls();
    assert!(
        calls
            .iter()
            .any(|(m, p)| m == "GET" && p == &format!("/v2/{}:getIamPolicy", service("public"))),
        "{calls:?}"
    );
}
