//! What breaks a first deployment and can be seen from outside (docs/DESIGN.md §13):
//!
//! - **A service agent that does not exist yet.** Google creates a service agent only once
//!   its API is enabled *and used*, and "if a service agent hasn't been created yet, then
//!   you can't grant roles to the service agent"
//!   (cloud.google.com/iam/docs/create-service-agents). When Google creates an agent it
//!   grants it its service-agent role on the project, so that binding in the project's allow
//!   policy is the read-only evidence that the agent exists and can work
//!   (cloud.google.com/iam/docs/service-agents: "When the service agent is created, Google
//!   Cloud grants this role automatically"; an agent created on request gets no role, which
//!   breaks the service just the same). Checked: the Pub/Sub agent of the worker project
//!   (push tokens, dead-lettering) and the Vertex AI agent of TARGET_PROJECT (it runs the
//!   copies).
//! - **A log-based metric that Cloud Monitoring does not know yet.** The Terraform module's
//!   alert on failed copies filters on `logging.googleapis.com/user/SERVICE/completions`;
//!   until Monitoring has the metric descriptor (up to 10 minutes after the metric is
//!   created) creating that alert fails with 404. Checked: the metric in Cloud Logging, then
//!   its descriptor in Cloud Monitoring.
//!
//! Plain REST calls with the checked Application Default Credentials (google-cloud-auth and
//! reqwest, both already dependencies): four GETs and one getIamPolicy, each documented in
//! the comments below. A local `http://` endpoint (tests, a fake) is called without
//! credentials, as the Vertex AI client does.

use std::time::Duration;

use google_cloud_auth::credentials::{CacheableResource, Credentials};
use serde_json::{Value, json};

use super::report::{Check, Status};
use crate::telemetry::events::{CompletionPublished, CountedEvent};

pub const RESOURCE_MANAGER: &str = "https://cloudresourcemanager.googleapis.com";
pub const LOGGING: &str = "https://logging.googleapis.com";
pub const MONITORING: &str = "https://monitoring.googleapis.com";

/// The log-based metric the module's alert policy filters on (terraform/monitoring.tf): the
/// one that counts completion events by status.
pub const ALERTED_METRIC: &str = <CompletionPublished as CountedEvent>::METRIC;

/// Where the three APIs answer.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub resource_manager: String,
    pub logging: String,
    pub monitoring: String,
}

/// Why a call gave no answer to judge.
#[derive(Debug)]
enum CallError {
    /// The service answered with an HTTP error: (status, the error's message).
    Status(u16, String),
    /// No answer, or one that is not JSON.
    Transport(String),
}

impl CallError {
    fn status(&self) -> Option<u16> {
        match self {
            CallError::Status(s, _) => Some(*s),
            CallError::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status(s, m) => write!(f, "HTTP {s}: {m}"),
            CallError::Transport(m) => f.write_str(m),
        }
    }
}

/// The REST client of these checks.
pub struct Apis {
    http: reqwest::Client,
    credentials: Option<Credentials>,
    endpoints: Endpoints,
}

impl Apis {
    /// `credentials` None: only local `http://` endpoints can be called (the emulator run).
    pub fn new(endpoints: Endpoints, credentials: Option<Credentials>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("a reqwest client with a timeout builds");
        Self {
            http,
            credentials,
            endpoints,
        }
    }

    /// Why `base` cannot be called, if it cannot: a Google endpoint without credentials.
    fn not_callable(&self, base: &str) -> Option<Status> {
        (self.credentials.is_none() && !base.starts_with("http://")).then(|| {
            Status::Unknown(format!(
                "no credentials (the emulator, or none usable): {base} not called"
            ))
        })
    }

    async fn call(&self, base: &str, path: &str, body: Option<Value>) -> Result<Value, CallError> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let mut req = match &body {
            Some(b) => self.http.post(&url).json(b),
            None => self.http.get(&url),
        };
        // Credentials are never sent over plain HTTP.
        if let (Some(creds), false) = (&self.credentials, base.starts_with("http://")) {
            match creds.headers(Default::default()).await {
                Ok(CacheableResource::New { data, .. }) => req = req.headers(data),
                Ok(CacheableResource::NotModified) => {}
                Err(e) => return Err(CallError::Transport(format!("no token: {e}"))),
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Transport(format!("{url}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| CallError::Transport(format!("{url}: {e}")))?;
        if !(200..300).contains(&status) {
            // Google's error body: {"error": {"code", "message", "status"}}
            // (cloud.google.com/apis/design/errors#http_mapping).
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(CallError::Status(status, message));
        }
        serde_json::from_str(&text)
            .map_err(|e| CallError::Transport(format!("{url}: not JSON: {e}")))
    }

    /// The project's number. GET v3/projects/{id} returns a Project whose `name` is
    /// `projects/NUMBER` (cloud.google.com/resource-manager/reference/rest/v3/projects/get).
    async fn project_number(&self, project: &str) -> Result<String, CallError> {
        let p = self
            .call(
                &self.endpoints.resource_manager,
                &format!("/v3/projects/{project}"),
                None,
            )
            .await?;
        p["name"]
            .as_str()
            .and_then(|n| n.strip_prefix("projects/"))
            .map(str::to_owned)
            .ok_or_else(|| CallError::Transport(format!("project {project}: no name in {p}")))
    }

    /// The members of every binding of the project's allow policy. POST
    /// v3/projects/{id}:getIamPolicy returns a Policy with `bindings[].role` and
    /// `bindings[].members` (cloud.google.com/resource-manager/reference/rest/v3/projects/getIamPolicy).
    async fn policy(&self, project: &str) -> Result<Vec<(String, Vec<String>)>, CallError> {
        let p = self
            .call(
                &self.endpoints.resource_manager,
                &format!("/v3/projects/{project}:getIamPolicy"),
                Some(json!({ "options": { "requestedPolicyVersion": 3 } })),
            )
            .await?;
        Ok(p["bindings"]
            .as_array()
            .map(|bs| {
                bs.iter()
                    .map(|b| {
                        let role = b["role"].as_str().unwrap_or_default().to_owned();
                        let members = b["members"]
                            .as_array()
                            .map(|ms| {
                                ms.iter()
                                    .filter_map(|m| m.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (role, members)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The service agent of `service` in `project` exists: its address appears in the
    /// project's allow policy with `role`, the role Google grants it when it creates it.
    pub async fn service_agent(&self, agent: &Agent, project: &str) -> Check {
        let subject = format!("service agent {} in {project}", agent.service);
        let what = "exists";
        if let Some(s) = self.not_callable(&self.endpoints.resource_manager) {
            return Check::new(subject, what, s, "not checked");
        }
        let unknown = |e: CallError, permission: &str| {
            let why = match e.status() {
                Some(403) => format!("lacks {permission}"),
                _ => format!("{permission}: {e}"),
            };
            Check::new(subject.clone(), what, Status::Unknown(why), "not checked")
        };
        let number = match self.project_number(project).await {
            Ok(n) => n,
            Err(e) => return unknown(e, "resourcemanager.projects.get"),
        };
        let policy = match self.policy(project).await {
            Ok(p) => p,
            Err(e) => return unknown(e, "resourcemanager.projects.getIamPolicy"),
        };
        let email = format!("service-{number}@{}", agent.domain);
        let member = format!("serviceAccount:{email}");
        let roles: Vec<&str> = policy
            .iter()
            .filter(|(_, ms)| ms.contains(&member))
            .map(|(r, _)| r.as_str())
            .collect();
        if roles.contains(&agent.role) {
            Check::ok(subject, what, format!("{email} holds {}", agent.role))
        } else {
            let found = if roles.is_empty() {
                "is not in the project's allow policy".to_owned()
            } else {
                format!("holds {} but not {}", roles.join(", "), agent.role)
            };
            Check::fail(
                subject,
                what,
                format!(
                    "{email} {found}: the agent was never created (the API has not been used yet, so every grant to it fails with \"does not exist\") or was created on request without its role; {}",
                    agent.breaks
                ),
            )
            .fix(format!(
                "terraform apply (the module creates the agent with google_project_service_identity and grants {role}); by hand: gcloud beta services identity create --service={service} --project={project} && gcloud projects add-iam-policy-binding {project} --member={member} --role={role}",
                role = agent.role,
                service = agent.service,
            ))
        }
    }

    /// The log-based metric `SERVICE/METRIC` exists in Cloud Logging and Cloud Monitoring
    /// knows its metric type.
    pub async fn log_metric(&self, project: &str, service: &str, metric: &str) -> Check {
        let id = format!("{service}/{metric}");
        let subject = format!("log metric {id}");
        let what = "in Monitoring";
        if let Some(s) = self.not_callable(&self.endpoints.logging) {
            return Check::new(subject, what, s, "not checked");
        }
        // GET v2/projects/{p}/metrics/{metric_id}: the LogMetric; the id's '/' is
        // percent-encoded in the path (cloud.google.com/logging/docs/reference/v2/rest/v2/projects.metrics/get).
        let path = format!("/v2/projects/{project}/metrics/{}", id.replace('/', "%2F"));
        match self.call(&self.endpoints.logging, &path, None).await {
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => {
                return Check::warn(
                    subject,
                    what,
                    format!("no log-based metric {id} in {project}: monitoring is off (monitoring_enabled = false), not applied yet, or --service names another service"),
                )
                .fix("terraform apply with monitoring_enabled = true (the default)");
            }
            Err(e) => {
                let why = match e.status() {
                    Some(403) => "lacks logging.logMetrics.get".to_owned(),
                    _ => format!("Cloud Logging: {e}"),
                };
                return Check::new(subject, what, Status::Unknown(why), "not checked");
            }
        }
        // GET v3/projects/{p}/metricDescriptors/{type}: 404 until Monitoring has the type
        // (cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.metricDescriptors/get).
        let metric_type = format!("logging.googleapis.com/user/{id}");
        let path = format!("/v3/projects/{project}/metricDescriptors/{metric_type}");
        match self.call(&self.endpoints.monitoring, &path, None).await {
            Ok(_) => Check::ok(subject, what, format!("Cloud Monitoring knows {metric_type}")),
            Err(e) if e.status() == Some(404) => Check::fail(
                subject,
                what,
                format!("the log-based metric exists, but Cloud Monitoring does not know {metric_type} yet: an alert policy on it cannot be created (404 \"Cannot find metric(s)\"), so failed copies raise no alert"),
            )
            .fix("wait: a new log-based metric takes up to 10 minutes to reach Cloud Monitoring; then run terraform apply again (the module waits log_metric_propagation_seconds, default 600, before creating the alert)"),
            Err(e) => {
                let why = match e.status() {
                    Some(403) => "lacks monitoring.metricDescriptors.get".to_owned(),
                    _ => format!("Cloud Monitoring: {e}"),
                };
                Check::new(subject, what, Status::Unknown(why), "not checked")
            }
        }
    }
}

/// A Google-managed service agent: `service-PROJECT_NUMBER@DOMAIN`, granted `role` on its
/// project when Google creates it (cloud.google.com/iam/docs/service-agents).
pub struct Agent {
    pub service: &'static str,
    pub domain: &'static str,
    pub role: &'static str,
    /// What does not work without it.
    pub breaks: &'static str,
}

pub const PUBSUB_AGENT: Agent = Agent {
    service: "pubsub.googleapis.com",
    domain: "gcp-sa-pubsub.iam.gserviceaccount.com",
    role: "roles/pubsub.serviceAgent",
    breaks: "without it pushes carry no token and nothing is dead-lettered",
};

pub const VERTEX_AGENT: Agent = Agent {
    service: "aiplatform.googleapis.com",
    domain: "gcp-sa-aiplatform.iam.gserviceaccount.com",
    role: "roles/aiplatform.serviceAgent",
    breaks: "Vertex AI runs every copy into this project as this agent",
};
