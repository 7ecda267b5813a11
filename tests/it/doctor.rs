//! `copy-worker doctor` as a subprocess against the emulator and the Vertex AI fake
//! (DESIGN.md §13): the Terraform shape passes, each misconfiguration fails with a fix,
//! and what the emulator cannot answer (IAM) is `unknown`, never `ok`.

use std::time::Duration;

use serde_json::Value;
use testkit::pubsub::{PushOidc, Topology, TopologyOptions};
use testkit::{Rpc, VertexFake};

use crate::bin;
use crate::helpers::{POLL_QUEUE, START_QUEUE, emulator, fresh_project};

const PUSH_SA: &str = "copy-worker-push@doctor.iam.gserviceaccount.com";
const SERVICE: &str = "https://copy-worker-abc-ew.a.run.app";

/// The topology as the Terraform module creates it: OIDC tokens with an explicit audience.
pub(crate) async fn topology(name: &str) -> Topology {
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

const TASKS_SA: &str = "copy-worker-tasks@doctor.iam.gserviceaccount.com";

/// Runs `copy-worker doctor --json` with the worker's configuration; (exit code, report).
/// The queues are Terraform's defaults: 0.5 starts and 3.5 polls a second.
pub(crate) async fn doctor(topology: &Topology, vertex: &str, extra: &[&str]) -> (i32, Value) {
    doctor_with_rates(topology, vertex, extra, (0.5, 3.5)).await
}

/// [`doctor`] with the two queues' rates (dispatches a second) in testkit's Cloud Tasks fake.
async fn doctor_with_rates(
    topology: &Topology,
    vertex: &str,
    extra: &[&str],
    (starts, polls): (f64, f64),
) -> (i32, Value) {
    let tasks = testkit::TasksFake::start(None).await.unwrap();
    tasks.create_queue(START_QUEUE, testkit::QueueConfig::with_rate(starts));
    tasks.create_queue(POLL_QUEUE, testkit::QueueConfig::with_rate(polls));
    let out = bin::command(["doctor"])
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
        .env("COPY_START_QUEUE", START_QUEUE)
        .env("COPY_POLL_QUEUE", POLL_QUEUE)
        .env("TASKS_URL", SERVICE)
        .env("TASKS_SERVICE_ACCOUNT", TASKS_SA)
        .env("CLOUD_TASKS_ENDPOINT", tasks.endpoint())
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

pub(crate) fn checks(report: &Value) -> &Vec<Value> {
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

/// What the emulator cannot answer (IAM, quotas, service agents, log metrics) is unknown, with
/// the reason.
fn assert_iam_and_google_apis_are_unknown(report: &Value) {
    // IAM (publish rights, the service agent's grants) is never claimed on the emulator.
    let unknown = with_status(report, "unknown");
    for topic in [
        "copy-requests",
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
    // Nor the service agents and the log-based metric: without credentials no Google API is
    // called.
    for s in [
        "service agent pubsub.googleapis.com in ",
        "service agent aiplatform.googleapis.com in dst-proj",
        "log metric copy-worker/completions",
    ] {
        assert!(
            checks(report).iter().any(|c| c["status"] == "unknown"
                && c["subject"].as_str().unwrap().starts_with(s)
                && c["reason"]
                    .as_str()
                    .unwrap()
                    .contains("no credentials (the emulator, or none usable)")),
            "{s}: {report:#}"
        );
    }
    for c in checks(report).iter().filter(|c| {
        c["status"] == "unknown"
            && c["subject"] != "quota"
            && !c["subject"].as_str().unwrap().starts_with("service agent ")
            && !c["subject"].as_str().unwrap().starts_with("log metric ")
    }) {
        assert!(c["reason"].as_str().unwrap().contains("no IAM API"), "{c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_the_terraform_shape_and_says_unknown_for_what_the_emulator_cannot_answer() {
    let t = topology("doctor-ok").await;
    let vertex = VertexFake::start().await.unwrap();
    let (code, report) = doctor(&t, &vertex.endpoint(), &["--regions", "europe-west4"]).await;
    assert_eq!(with_status(&report, "fail"), vec![], "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["passed"], true);
    assert_iam_and_google_apis_are_unknown(&report);
    let ok = with_status(&report, "ok");
    for (s, c) in [
        ("subscription copy-requests-push", "push audience"),
        ("subscription copy-requests-push", "dead-letter policy"),
        ("subscription copy-requests-push", "ack deadline"),
        ("subscription copy-callbacks-push", "push service account"),
        ("subscription copy-dead-letter-replay", "dead letters kept"),
        ("vertex source src-proj in us-central1", "reachable"),
        ("vertex destination dst-proj in europe-west4", "reachable"),
        ("quota copy-starts", "headroom"),
        ("quota copy-polls", "headroom"),
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

/// Each failed check of `doctor_fails_each_misconfiguration_and_names_the_fix` says what is
/// wrong and how to fix it.
fn assert_each_fail_names_its_fix(report: &Value, t: &Topology) {
    let find = |s: &str, c: &str| {
        checks(report)
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
    let ack = find("subscription copy-callbacks-push", "ack deadline");
    assert!(
        ack["detail"]
            .as_str()
            .unwrap()
            .starts_with("30 s is below the callback stage's budget (45 s)"),
        "{ack}"
    );
    assert!(
        ack["fix"].as_str().unwrap().contains("--ack-deadline=60")
            && ack["fix"]
                .as_str()
                .unwrap()
                .contains("requests_ack_deadline_seconds"),
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
    // copy-requests-push's ack deadline shorter than the request stage's budget + margin.
    recreate(&t, "copy-callbacks-push", |s| {
        s.set_ack_deadline_seconds(30)
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
            pair("subscription copy-callbacks-push", "ack deadline"),
            pair("subscription copy-callbacks-push", "dead-letter policy"),
            pair("subscription copy-requests-push", "push audience"),
            pair("topic copy-completions", "exists"),
        ],
        "{report:#}"
    );
    assert_each_fail_names_its_fix(&report, &t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_an_unreachable_vertex_endpoint_and_a_bad_config_stops_it_early() {
    let t = topology("doctor-vertex").await;
    // A closed port: connection refused, as with a wrong VERTEX_ENDPOINT.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // Also: a copy-start queue whose rate leaves the project's other jobs less than half of
    // the default quota is a warning naming the Terraform variable that sets it.
    // 45 starts a minute; the polls' 120 a minute leave the reads inside half the quota.
    let (code, report) = doctor_with_rates(&t, &closed, &[], (0.75, 2.0)).await;
    assert_eq!(code, 1);
    assert_eq!(
        with_status(&report, "warn"),
        vec![pair("quota copy-starts", "headroom")],
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
    // A VERTEX_ENDPOINT nothing listens on is one failed check naming it and its variable,
    // not one per project and location after their timeouts.
    let fails = with_status(&report, "fail");
    assert_eq!(fails, vec![pair("vertex", "reachable")], "{report:#}");
    let fail = checks(&report)
        .iter()
        .find(|c| c["status"] == "fail")
        .unwrap();
    assert!(
        fail["detail"]
            .as_str()
            .unwrap()
            .contains("cannot reach Vertex AI at 127.0.0.1:"),
        "{fail}"
    );
    // A configuration serve would refuse: one failed check naming the variable, nothing else.
    let (code, report) = doctor(&t, &closed, &["--copy-poll-queue", "copy-polls"]).await;
    assert_eq!(code, 1);
    let c = checks(&report);
    assert_eq!(c.len(), 1, "{report:#}");
    assert_eq!(c[0]["check"], "parses");
    assert!(
        c[0]["detail"].as_str().unwrap().contains("COPY_POLL_QUEUE"),
        "{report:#}"
    );
}

/// Cloud Resource Manager, Cloud Logging and Cloud Monitoring as their REST references
/// document them, for the first-deploy checks (DESIGN.md §13):
/// - GET v3/projects/{id}: a Project, `name` = projects/NUMBER; 403 for a project that does
///   not exist or may not be read (cloud.google.com/resource-manager/reference/rest/v3/projects/get);
/// - POST v3/projects/{id}:getIamPolicy: a Policy, `bindings[].role` / `.members`
///   (cloud.google.com/resource-manager/reference/rest/v3/projects/getIamPolicy);
/// - GET v2/projects/{p}/metrics/{id}: a LogMetric, the id's '/' percent-encoded; 404
///   NOT_FOUND when absent (cloud.google.com/logging/docs/reference/v2/rest/v2/projects.metrics/get);
/// - GET v3/projects/{p}/metricDescriptors/{type}: a MetricDescriptor; 404 NOT_FOUND until
///   Monitoring knows the type
///   (cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.metricDescriptors/get).
///
/// Errors are Google's JSON error body, {"error": {"code", "message", "status"}}.
#[derive(Default)]
struct GcpState {
    numbers: std::collections::HashMap<String, String>,
    bindings: std::collections::HashMap<String, Vec<(String, Vec<String>)>>,
    log_metrics: std::collections::HashSet<String>,
    descriptors: std::collections::HashSet<String>,
    /// (method, path, had an Authorization header)
    calls: Vec<(String, String, bool)>,
}

#[derive(Clone)]
struct GcpFake {
    state: std::sync::Arc<std::sync::Mutex<GcpState>>,
    url: String,
}

fn google_error(code: u16, status: &str, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::from_u16(code).unwrap(),
        axum::Json(serde_json::json!({
            "error": { "code": code, "message": message, "status": status }
        })),
    )
        .into_response()
}

impl GcpFake {
    async fn start() -> Self {
        let state = std::sync::Arc::new(std::sync::Mutex::new(GcpState::default()));
        let s = state.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let s = s.clone();
            async move { Self::answer(&s, req) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state, url }
    }

    /// Resource Manager (a project, its allow policy) and Monitoring (a metric descriptor):
    /// the paths under `/v3/projects/`.
    fn answer_v3(st: &GcpState, method: &str, rest: &str) -> Option<axum::response::Response> {
        use axum::response::IntoResponse;
        let json = |v: Value| axum::Json(v).into_response();
        if let Some(id) = rest.strip_suffix(":getIamPolicy") {
            if method != "POST" || !st.numbers.contains_key(id) {
                return Some(google_error(
                    403,
                    "PERMISSION_DENIED",
                    "The caller does not have permission",
                ));
            }
            let bindings: Vec<Value> = st
                .bindings
                .get(id)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|(role, members)| serde_json::json!({ "role": role, "members": members }))
                .collect();
            return Some(json(
                serde_json::json!({ "version": 1, "etag": "BwYAAAAAAAA=", "bindings": bindings }),
            ));
        }
        if let Some((project, ty)) = rest.split_once("/metricDescriptors/") {
            return Some(if st.descriptors.contains(&format!("{project}|{ty}")) {
                json(serde_json::json!({
                    "name": format!("projects/{project}/metricDescriptors/{ty}"),
                    "type": ty, "metricKind": "DELTA", "valueType": "INT64", "unit": "1"
                }))
            } else {
                google_error(
                    404,
                    "NOT_FOUND",
                    &format!("Could not find descriptor for metric '{ty}'."),
                )
            });
        }
        if method == "GET" && !rest.contains('/') {
            return Some(match st.numbers.get(rest) {
                Some(n) => json(serde_json::json!({
                    "name": format!("projects/{n}"), "projectId": rest, "state": "ACTIVE"
                })),
                None => google_error(
                    403,
                    "PERMISSION_DENIED",
                    "The caller does not have permission",
                ),
            });
        }
        None
    }

    fn answer(
        state: &std::sync::Mutex<GcpState>,
        req: axum::extract::Request,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let mut st = state.lock().unwrap();
        let auth = req.headers().contains_key("authorization");
        st.calls.push((method.clone(), path.clone(), auth));
        let json = |v: Value| axum::Json(v).into_response();
        if let Some(rest) = path.strip_prefix("/v3/projects/")
            && let Some(answer) = Self::answer_v3(&st, &method, rest)
        {
            return answer;
        }
        if let Some(rest) = path.strip_prefix("/v2/projects/")
            && let Some((project, id)) = rest.split_once("/metrics/")
        {
            // The id's '/' arrives percent-encoded, as the reference requires.
            let id = id.replace("%2F", "/");
            return if method == "GET" && st.log_metrics.contains(&format!("{project}|{id}")) {
                json(
                    serde_json::json!({ "name": id, "filter": "resource.type=\"cloud_run_revision\"" }),
                )
            } else {
                google_error(404, "NOT_FOUND", &format!("Metric {id} does not exist."))
            };
        }
        google_error(
            404,
            "NOT_FOUND",
            &format!("no such method in the fake: {method} {path}"),
        )
    }

    fn project(&self, id: &str, number: &str, bindings: &[(&str, &str)]) {
        let mut st = self.state.lock().unwrap();
        st.numbers.insert(id.into(), number.into());
        st.bindings.insert(
            id.into(),
            bindings
                .iter()
                .map(|(r, m)| (r.to_string(), vec![m.to_string()]))
                .collect(),
        );
    }

    fn args(&self) -> Vec<String> {
        [
            "--resource-manager-endpoint",
            "--logging-endpoint",
            "--monitoring-endpoint",
        ]
        .iter()
        .flat_map(|f| [f.to_string(), self.url.clone()])
        .collect()
    }
}

fn check_of<'a>(report: &'a Value, subject_prefix: &str, what: &str) -> &'a Value {
    checks(report)
        .iter()
        .find(|c| c["subject"].as_str().unwrap().starts_with(subject_prefix) && c["check"] == what)
        .unwrap_or_else(|| panic!("no check {subject_prefix}: {what} in {report:#}"))
}

/// A fresh project: the Pub/Sub agent does not exist, the Vertex AI agent lacks its role, and
/// the log metric is not applied (a warning).
fn assert_agents_missing_and_metric_unapplied(report: &Value) {
    let c = check_of(
        report,
        "service agent pubsub.googleapis.com in it-doctor-deploy",
        "exists",
    );
    assert_eq!(c["status"], "fail", "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "service-111@gcp-sa-pubsub.iam.gserviceaccount.com is not in the project's allow policy"
        ),
        "{c}"
    );
    let fix = c["fix"].as_str().unwrap();
    assert!(
        fix.contains("gcloud beta services identity create --service=pubsub.googleapis.com")
            && fix.contains("--role=roles/pubsub.serviceAgent"),
        "{c}"
    );
    let c = check_of(
        report,
        "service agent aiplatform.googleapis.com in dst-proj",
        "exists",
    );
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("holds roles/aiplatform.user but not roles/aiplatform.serviceAgent"),
        "{c}"
    );
    let c = check_of(
        report,
        "log metric copy-worker/completions",
        "in Monitoring",
    );
    assert_eq!(c["status"], "warn", "{c}");
    assert!(
        c["fix"].as_str().unwrap().contains("monitoring_enabled"),
        "{c}"
    );
}

/// What an apply does: grants both agents their role and creates the log metric.
fn apply_agents_and_metric(gcp: &GcpFake, project: &str, pubsub_agent: &str, vertex_agent: &str) {
    let mut st = gcp.state.lock().unwrap();
    st.bindings.get_mut(project).unwrap().push((
        "roles/pubsub.serviceAgent".into(),
        vec![pubsub_agent.into()],
    ));
    st.bindings.get_mut("dst-proj").unwrap().push((
        "roles/aiplatform.serviceAgent".into(),
        vec![vertex_agent.into()],
    ));
    st.log_metrics
        .insert(format!("{project}|copy-worker/completions"));
}

/// The metric exists but Monitoring does not know its type yet: a failure that says to wait.
fn assert_metric_not_in_monitoring_yet(report: &Value) {
    let c = check_of(
        report,
        "log metric copy-worker/completions",
        "in Monitoring",
    );
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("logging.googleapis.com/user/copy-worker/completions"),
        "{c}"
    );
    assert!(c["fix"].as_str().unwrap().contains("10 minutes"), "{c}");
}

/// `--push-auth cloud-run` parses outside Cloud Run, and a project the caller may not read is
/// unknown.
fn assert_an_unreadable_project_is_unknown(report: &Value) {
    let c = check_of(report, "config", "parses");
    assert_eq!(c["status"], "ok", "{report:#}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("PUSH_AUTH=cloud-run"),
        "{c}"
    );
    let c = check_of(
        report,
        "service agent aiplatform.googleapis.com in other-proj",
        "exists",
    );
    assert_eq!(c["status"], "unknown", "{c}");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("lacks resourcemanager.projects.get"),
        "{c}"
    );
}

/// No credentials were sent over plain http, and the metric id's '/' was percent-encoded.
fn assert_plain_http_and_an_encoded_metric_id(gcp: &GcpFake) {
    let calls = gcp.state.lock().unwrap().calls.clone();
    assert!(calls.iter().all(|(_, _, auth)| !auth), "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|(m, p, _)| m == "GET" && p.ends_with("/metrics/copy-worker%2Fcompletions")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|(m, p, _)| m == "POST" && p == "/v3/projects/dst-proj:getIamPolicy"),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_sees_service_agents_that_do_not_exist_yet_and_a_metric_monitoring_does_not_know() {
    let t = topology("doctor-deploy").await;
    let vertex = VertexFake::start().await.unwrap();
    let gcp = GcpFake::start().await;
    let pubsub_agent = "serviceAccount:service-111@gcp-sa-pubsub.iam.gserviceaccount.com";
    let vertex_agent = "serviceAccount:service-222@gcp-sa-aiplatform.iam.gserviceaccount.com";
    // A fresh worker project: nothing has used Pub/Sub, so Google has not created its
    // agent; the destination's Vertex AI agent was created on request and never granted
    // its role. Monitoring is not applied yet.
    gcp.project(
        &t.project,
        "111",
        &[("roles/owner", "user:admin@example.org")],
    );
    gcp.project(
        "dst-proj",
        "222",
        &[("roles/aiplatform.user", vertex_agent)],
    );
    let args = gcp.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let (code, report) = doctor(&t, &vertex.endpoint(), &args).await;
    assert_eq!(code, 1, "{report:#}");
    assert_agents_missing_and_metric_unapplied(&report);

    // The apply created the agents and the metric, but Monitoring does not know it yet.
    apply_agents_and_metric(&gcp, &t.project, pubsub_agent, vertex_agent);
    let (code, report) = doctor(&t, &vertex.endpoint(), &args).await;
    assert_eq!(code, 1, "{report:#}");
    for s in [
        "service agent pubsub.googleapis.com in ",
        "service agent aiplatform.googleapis.com in dst-proj",
    ] {
        assert_eq!(check_of(&report, s, "exists")["status"], "ok", "{report:#}");
    }
    assert_metric_not_in_monitoring_yet(&report);

    // Minutes later: Monitoring has the type, and nothing fails any more.
    gcp.state.lock().unwrap().descriptors.insert(format!(
        "{}|logging.googleapis.com/user/copy-worker/completions",
        t.project
    ));
    let (code, report) = doctor(&t, &vertex.endpoint(), &args).await;
    assert_eq!(with_status(&report, "fail"), vec![], "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        check_of(
            &report,
            "log metric copy-worker/completions",
            "in Monitoring"
        )["status"],
        "ok"
    );

    // A project the caller may not read is unknown, never ok or fail. (And the mode the
    // module deploys, PUSH_AUTH=cloud-run, is checked from outside Cloud Run: --service
    // stands in for K_SERVICE.)
    let (_, report) = doctor(
        &t,
        &vertex.endpoint(),
        &[
            &args[..],
            &["--target-project", "other-proj", "--push-auth", "cloud-run"],
        ]
        .concat(),
    )
    .await;
    assert_an_unreadable_project_is_unknown(&report);

    // Plain http: no credentials were sent; the metric id's '/' was percent-encoded.
    assert_plain_http_and_an_encoded_metric_id(&gcp);
}
