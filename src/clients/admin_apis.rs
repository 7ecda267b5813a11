//! The three Google APIs `doctor` reads to see a first deployment from outside (DESIGN.md §13):
//! Cloud Resource Manager (a project's number and allow policy), Cloud Logging (a log-based
//! metric) and Cloud Monitoring (a metric descriptor). Read-only, one call each.
//!
//! No official Rust crate of these APIs is a dependency (DESIGN.md §8 lists none; each would be
//! a large generated crate for one GET), so these are plain REST calls with the checked
//! Application Default Credentials (google-cloud-auth) and reqwest, both already dependencies,
//! each documented below. A local `http://` endpoint (tests, a fake) is called without
//! credentials, as the Vertex AI client does.

use std::time::Duration;

use google_cloud_auth::credentials::{CacheableResource, Credentials};
use serde_json::{Value, json};

pub const RESOURCE_MANAGER: &str = "https://cloudresourcemanager.googleapis.com";
pub const LOGGING: &str = "https://logging.googleapis.com";
pub const MONITORING: &str = "https://monitoring.googleapis.com";

/// Where the three APIs answer.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub resource_manager: String,
    pub logging: String,
    pub monitoring: String,
}

/// Why a call gave no answer to judge.
#[derive(Debug)]
pub enum ApiError {
    /// The service answered with an HTTP error: (status, the error's message).
    Status(u16, String),
    /// No answer, or one that is not JSON.
    Transport(String),
}

impl ApiError {
    /// The HTTP status the service answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status(s, _) => Some(*s),
            ApiError::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status(s, m) => write!(f, "HTTP {s}: {m}"),
            ApiError::Transport(m) => f.write_str(m),
        }
    }
}

/// The REST client of the three APIs.
pub struct AdminApis {
    http: reqwest::Client,
    credentials: Option<Credentials>,
    pub endpoints: Endpoints,
}

impl AdminApis {
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

    /// Whether `base` can be called: a Google endpoint needs credentials.
    pub fn callable(&self, base: &str) -> bool {
        self.credentials.is_some() || base.starts_with("http://")
    }

    async fn call(&self, base: &str, path: &str, body: Option<Value>) -> Result<Value, ApiError> {
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
                Err(e) => return Err(ApiError::Transport(format!("no token: {e}"))),
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ApiError::Transport(format!("{url}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| ApiError::Transport(format!("{url}: {e}")))?;
        if !(200..300).contains(&status) {
            // Google's error body: {"error": {"code", "message", "status"}}
            // (cloud.google.com/apis/design/errors#http_mapping).
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(ApiError::Status(status, message));
        }
        serde_json::from_str(&text)
            .map_err(|e| ApiError::Transport(format!("{url}: not JSON: {e}")))
    }

    /// The project's number. GET v3/projects/{id} returns a Project whose `name` is
    /// `projects/NUMBER` (cloud.google.com/resource-manager/reference/rest/v3/projects/get).
    pub async fn project_number(&self, project: &str) -> Result<String, ApiError> {
        let base = &self.endpoints.resource_manager;
        let p = self
            .call(base, &format!("/v3/projects/{project}"), None)
            .await?;
        p["name"]
            .as_str()
            .and_then(|n| n.strip_prefix("projects/"))
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Transport(format!("project {project}: no name in {p}")))
    }

    /// The role and members of every binding of the project's allow policy. POST
    /// v3/projects/{id}:getIamPolicy returns a Policy with `bindings[].role` and
    /// `bindings[].members` (cloud.google.com/resource-manager/reference/rest/v3/projects/getIamPolicy).
    pub async fn policy(&self, project: &str) -> Result<Vec<(String, Vec<String>)>, ApiError> {
        let base = &self.endpoints.resource_manager;
        let body = json!({ "options": { "requestedPolicyVersion": 3 } });
        let p = self
            .call(
                base,
                &format!("/v3/projects/{project}:getIamPolicy"),
                Some(body),
            )
            .await?;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|ms| {
                    ms.iter()
                        .filter_map(|m| m.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let bindings = p["bindings"].as_array().cloned().unwrap_or_default();
        Ok(bindings
            .iter()
            .map(|b| {
                (
                    b["role"].as_str().unwrap_or_default().to_owned(),
                    strings(&b["members"]),
                )
            })
            .collect())
    }

    /// The log-based metric `id` of `project`. GET v2/projects/{p}/metrics/{metric_id}; the
    /// id's '/' is percent-encoded in the path
    /// (cloud.google.com/logging/docs/reference/v2/rest/v2/projects.metrics/get).
    pub async fn log_metric(&self, project: &str, id: &str) -> Result<Value, ApiError> {
        let path = format!("/v2/projects/{project}/metrics/{}", id.replace('/', "%2F"));
        self.call(&self.endpoints.logging, &path, None).await
    }

    /// The metric descriptor of `metric_type`. GET v3/projects/{p}/metricDescriptors/{type}:
    /// 404 until Monitoring has the type
    /// (cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.metricDescriptors/get).
    pub async fn metric_descriptor(
        &self,
        project: &str,
        metric_type: &str,
    ) -> Result<Value, ApiError> {
        let path = format!("/v3/projects/{project}/metricDescriptors/{metric_type}");
        self.call(&self.endpoints.monitoring, &path, None).await
    }
}
