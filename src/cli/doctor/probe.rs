//! The read-only calls `copy-worker doctor` makes: Pub/Sub topics, subscriptions and their
//! IAM policies, and one list call per Vertex AI project and location.

use google_cloud_gax::error::rpc::Code;
use google_cloud_pubsub::client::{SchemaService, SubscriptionAdmin, TopicAdmin};
use google_cloud_pubsub::model::Subscription;

use super::report::{Check, Status};
use super::subscriptions::short;
use crate::clients::pubsub::Connection;
use crate::clients::vertex::GoogleVertex;
use crate::retry::Failure;

/// The Pub/Sub service agent's address: `service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com`
/// (cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions).
const AGENT_SUFFIX: &str = "@gcp-sa-pubsub.iam.gserviceaccount.com";

/// The code of a failed call, if the service answered with one.
fn code(e: &google_cloud_gax::error::Error) -> Option<Code> {
    e.status().map(|s| s.code)
}

/// Why an IAM call could not answer: the emulator has no IAM API (UNIMPLEMENTED), or the
/// caller lacks the permission that reads it.
fn unknown(e: &google_cloud_gax::error::Error, permission: &str) -> Status {
    match code(e) {
        Some(Code::Unimplemented) => {
            Status::Unknown("no IAM API at this endpoint: the emulator".into())
        }
        Some(Code::PermissionDenied) => Status::Unknown(format!("lacks {permission}")),
        _ => Status::Unknown(format!("{permission} call failed: {e}")),
    }
}

/// Pub/Sub's admin clients.
pub struct PubSub {
    topics: TopicAdmin,
    subscriptions: SubscriptionAdmin,
    iam: SchemaService,
}

impl PubSub {
    pub async fn connect(
        conn: &Connection,
    ) -> Result<Self, google_cloud_gax::client_builder::Error> {
        Ok(Self {
            topics: conn.topic_admin().await?,
            subscriptions: conn.subscription_admin().await?,
            iam: conn.iam().await?,
        })
    }

    /// The topic exists, and the caller may publish to it.
    pub async fn topic(&self, name: &str, variable: &str) -> Vec<Check> {
        let subject = format!("topic {}", short(name));
        match self.topics.get_topic().set_topic(name).send().await {
            Ok(_) => {}
            Err(e) if code(&e) == Some(Code::NotFound) => {
                return vec![
                    Check::fail(&subject, "exists", format!("{name} does not exist"))
                        .fix(format!(
                            "gcloud pubsub topics create {name} (or apply the Terraform module; or point {variable} at the right topic)"
                        )),
                ];
            }
            Err(e) if code(&e) == Some(Code::PermissionDenied) => {
                return vec![Check::new(
                    &subject,
                    "exists",
                    Status::Unknown("lacks pubsub.topics.get".into()),
                    name,
                )];
            }
            Err(e) => {
                return vec![Check::fail(&subject, "exists", format!("Pub/Sub: {e}"))];
            }
        }
        let mut out = vec![Check::ok(&subject, "exists", name)];
        let publish = "pubsub.topics.publish";
        let c = match self
            .iam
            .test_iam_permissions()
            .set_resource(name)
            .set_permissions([publish])
            .send()
            .await
        {
            Ok(r) if r.permissions.iter().any(|p| p == publish) => {
                Check::ok(&subject, "publish", "the credentials doctor runs with may publish")
            }
            Ok(_) => Check::fail(
                &subject,
                "publish",
                "the credentials doctor runs with may not publish (run doctor as the worker's service account to check the worker)",
            )
            .fix(format!(
                "gcloud pubsub topics add-iam-policy-binding {name} --member=serviceAccount:WORKER_SA --role=roles/pubsub.publisher (the Terraform module grants it)"
            )),
            Err(e) => Check::new(&subject, "publish", unknown(&e, "pubsub.topics.testIamPermissions"), "not checked"),
        };
        out.push(c);
        out
    }

    /// The subscription, or the check that says why it is not there.
    pub async fn subscription(&self, name: &str) -> Result<Subscription, Check> {
        let subject = format!("subscription {}", short(name));
        match self
            .subscriptions
            .get_subscription()
            .set_subscription(name)
            .send()
            .await
        {
            Ok(s) => Ok(s),
            Err(e) if code(&e) == Some(Code::NotFound) => Err(Check::fail(
                &subject,
                "exists",
                format!("{name} does not exist"),
            )
            .fix(
                "apply the Terraform module, which creates it with the settings the worker needs",
            )),
            Err(e) if code(&e) == Some(Code::PermissionDenied) => Err(Check::new(
                &subject,
                "exists",
                Status::Unknown("lacks pubsub.subscriptions.get".into()),
                name,
            )),
            Err(e) => Err(Check::fail(&subject, "exists", format!("Pub/Sub: {e}"))),
        }
    }

    /// The Pub/Sub service agent holds `role` on `resource` (a topic or subscription), as
    /// dead-lettering needs. Read from the resource's own policy: a grant on the whole
    /// project is not seen, so a missing grant is a warning, not a failure.
    pub async fn agent_grant(&self, resource: &str, role: &str) -> Check {
        let (kind, cmd) = if resource.contains("/topics/") {
            ("topic", "topics")
        } else {
            ("subscription", "subscriptions")
        };
        let subject = format!("{kind} {}", short(resource));
        let what = "Pub/Sub agent grant";
        let policy = match self
            .iam
            .get_iam_policy()
            .set_resource(resource)
            .send()
            .await
        {
            Ok(p) => p,
            Err(e) => {
                return Check::new(
                    &subject,
                    what,
                    unknown(&e, &format!("pubsub.{cmd}.getIamPolicy")),
                    format!("{role} for the Pub/Sub service agent not checked"),
                );
            }
        };
        let granted = policy.bindings.iter().any(|b| {
            [role, "roles/pubsub.editor", "roles/pubsub.admin"].contains(&b.role.as_str())
                && b.members
                    .iter()
                    .any(|m| m.starts_with("serviceAccount:service-") && m.ends_with(AGENT_SUFFIX))
        });
        if granted {
            Check::ok(
                &subject,
                what,
                format!("the Pub/Sub service agent has {role}"),
            )
        } else {
            Check::warn(
                &subject,
                what,
                format!(
                    "the Pub/Sub service agent has no {role} on this {kind}, so dead-lettering silently stops (fine if it is granted on the whole project, which doctor does not read)"
                ),
            )
            .fix(format!(
                "gcloud pubsub {cmd} add-iam-policy-binding {resource} --member=serviceAccount:service-PROJECT_NUMBER{AGENT_SUFFIX} --role={role} (the Terraform module grants it)"
            ))
        }
    }
}

/// Vertex AI answers a list call for `project` in `location`.
pub async fn vertex(vertex: &GoogleVertex, side: &str, project: &str, location: &str) -> Check {
    let subject = format!("vertex {side} {project} in {location}");
    let parent = format!("projects/{project}/locations/{location}");
    match vertex.probe(&parent, location).await {
        Ok(_) => Check::ok(&subject, "reachable", format!("lists models in {parent}")),
        Err(f) => vertex_failure(&subject, &parent, &f),
    }
}

fn vertex_failure(subject: &str, parent: &str, f: &Failure) -> Check {
    let fix = match f.code {
        Code::PermissionDenied => format!(
            "grant the worker's service account roles/aiplatform.user on {} (Terraform: source_projects / destination_projects), and enable aiplatform.googleapis.com there",
            parent.split('/').nth(1).unwrap_or(parent)
        ),
        Code::Unauthenticated => {
            "no usable credentials: gcloud auth application-default login (or the workload identity federation config on EC2)".into()
        }
        Code::NotFound | Code::InvalidArgument => {
            "check the project id and that Vertex AI serves this region".into()
        }
        _ => "check VERTEX_ENDPOINT and the network path to Vertex AI".into(),
    };
    Check::fail(
        subject,
        "reachable",
        format!("ListModels on {parent}: {} {}", f.code.name(), f.message),
    )
    .fix(fix)
}
