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
//! The calls go through `clients::admin_apis`; this module judges their answers.

use super::report::{Check, Status};
use crate::clients::admin_apis::{AdminApis, ApiError};
use crate::telemetry::events::{CompletionPublished, CountedEvent};

/// The log-based metric the module's alert policy filters on (terraform/monitoring.tf): the
/// one that counts completion events by status.
pub const ALERTED_METRIC: &str = <CompletionPublished as CountedEvent>::METRIC;

/// Why `base` cannot be called, if it cannot: a Google endpoint without credentials.
fn not_callable(apis: &AdminApis, base: &str) -> Option<Status> {
    (!apis.callable(base)).then(|| {
        Status::Unknown(format!(
            "no credentials (the emulator, or none usable): {base} not called"
        ))
    })
}

/// The service agent of `service` in `project` exists: its address appears in the
/// project's allow policy with `role`, the role Google grants it when it creates it.
pub async fn service_agent(apis: &AdminApis, agent: &Agent, project: &str) -> Check {
    let subject = format!("service agent {} in {project}", agent.service);
    let what = "exists";
    if let Some(s) = not_callable(apis, &apis.endpoints.resource_manager) {
        return Check::new(subject, what, s, "not checked");
    }
    let unknown = |e: ApiError, permission: &str| {
        let why = match e.status() {
            Some(403) => format!("lacks {permission}"),
            _ => format!("{permission}: {e}"),
        };
        Check::new(subject.clone(), what, Status::Unknown(why), "not checked")
    };
    let number = match apis.project_number(project).await {
        Ok(n) => n,
        Err(e) => return unknown(e, "resourcemanager.projects.get"),
    };
    let policy = match apis.policy(project).await {
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
pub async fn log_metric(apis: &AdminApis, project: &str, service: &str, metric: &str) -> Check {
    let id = format!("{service}/{metric}");
    let subject = format!("log metric {id}");
    let what = "in Monitoring";
    if let Some(s) = not_callable(apis, &apis.endpoints.logging) {
        return Check::new(subject, what, s, "not checked");
    }
    match apis.log_metric(project, &id).await {
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
    let metric_type = format!("logging.googleapis.com/user/{id}");
    match apis.metric_descriptor(project, &metric_type).await {
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
