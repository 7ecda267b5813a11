//! The worker's own Cloud Run service, read through the Cloud Run Admin API with the official
//! `google-cloud-run-v2` client (DESIGN.md §11, "What `cloud-run` trusts").
//!
//! `PUSH_AUTH=cloud-run` accepts tokens whose signature Cloud Run's IAM invoker check verified
//! and removed. That is only true while the check runs: Google's documentation calls turning
//! it off the way to make a service public (cloud.google.com/run/docs/securing/managing-access,
//! "Disable the Cloud Run invoker IAM check": `invokerIamDisabled`, the console's "Allow public
//! access", `gcloud run services update --no-invoker-iam-check`), and granting
//! `roles/run.invoker` to `allUsers` does the same through IAM
//! (cloud.google.com/run/docs/authenticating/public). Then anyone who reaches the service can
//! hand it a made-up `…SIGNATURE_REMOVED_BY_GOOGLE` token. This client reads both settings:
//! `GET /v2/{service}` (`Service.invokerIamDisabled`) and `GET /v2/{service}:getIamPolicy`.

use google_cloud_gax::options::RequestOptionsBuilder as _;
use google_cloud_run_v2::client::Services;

/// What the service's settings say about the invoker check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The check is on and no binding lets everyone invoke: Cloud Run verified what it
    /// forwards.
    Confirmed,
    /// `invokerIamDisabled` is true: Cloud Run forwards requests unchecked.
    InvokerCheckOff,
    /// A binding of the service's IAM policy grants `role` to `member` (`allUsers` or
    /// `allAuthenticatedUsers`), so any token passes the check.
    Public { role: String, member: String },
}

impl Trust {
    /// Why signature-removed tokens cannot be trusted; `None` when they can.
    pub fn refusal(&self, service: &str) -> Option<String> {
        match self {
            Trust::Confirmed => None,
            Trust::InvokerCheckOff => Some(format!(
                "the Cloud Run invoker check of {service} is disabled (invokerIamDisabled), so Cloud Run no longer verifies tokens; turn it back on (gcloud run services update --invoker-iam-check)"
            )),
            Trust::Public { role, member } => Some(format!(
                "{service} grants {role} to {member}, so Cloud Run's invoker check lets any token through; remove that binding"
            )),
        }
    }

    /// A short, fixed name of the state, for a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Trust::Confirmed => "confirmed",
            Trust::InvokerCheckOff => "invoker_check_off",
            Trust::Public { .. } => "public_invoker",
        }
    }
}

/// The members that stand for everyone (cloud.google.com/iam/docs/principal-identifiers).
const EVERYONE: [&str; 2] = ["allUsers", "allAuthenticatedUsers"];

/// Roles that grant no `run.routes.invoke`: a public binding of one of them opens nothing.
/// Every other role given to everyone counts as public, custom roles included, since the
/// worker cannot tell what they hold (cloud.google.com/run/docs/reference/iam/roles).
const READ_ONLY_ROLES: [&str; 2] = ["roles/run.viewer", "roles/viewer"];

/// The Cloud Run Admin API for one service.
pub struct CloudRunAdmin {
    client: Services,
    service: String,
    call_timeout: std::time::Duration,
}

impl CloudRunAdmin {
    /// A client for `service` (`projects/P/locations/L/services/S`) at `endpoint` (`None`:
    /// `https://run.googleapis.com`; plain `http://` is used anonymously, like every local
    /// endpoint of the worker).
    pub async fn new(
        service: &str,
        endpoint: Option<&str>,
    ) -> Result<Self, google_cloud_gax::client_builder::Error> {
        let mut b = Services::builder();
        if let Some(e) = endpoint {
            b = b.with_endpoint(e.trim_end_matches('/'));
            if e.starts_with("http://") {
                b = b.with_credentials(
                    google_cloud_auth::credentials::anonymous::Builder::new().build(),
                );
            }
        }
        Ok(Self {
            client: b.build().await?,
            service: service.to_owned(),
            call_timeout: std::time::Duration::from_secs(10),
        })
    }

    /// The service this client reads.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Reads the service and its IAM policy; an error when either cannot be read, named
    /// with what to grant.
    pub async fn check(&self) -> Result<Trust, String> {
        let unreadable = |what: &str, e: google_cloud_run_v2::Error| {
            format!(
                "cannot read the {what} of {} ({e}); the worker's account needs run.services.get and run.services.getIamPolicy on it (roles/run.viewer)",
                self.service
            )
        };
        let service = self
            .client
            .get_service()
            .set_name(&self.service)
            .with_attempt_timeout(self.call_timeout)
            .send()
            .await
            .map_err(|e| unreadable("settings", e))?;
        if service.invoker_iam_disabled {
            return Ok(Trust::InvokerCheckOff);
        }
        let policy = self
            .client
            .get_iam_policy()
            .set_resource(&self.service)
            .with_attempt_timeout(self.call_timeout)
            .send()
            .await
            .map_err(|e| unreadable("IAM policy", e))?;
        let public = policy.bindings.iter().find_map(|b| {
            let member = b.members.iter().find(|m| EVERYONE.contains(&m.as_str()))?;
            (!READ_ONLY_ROLES.contains(&b.role.as_str())).then(|| Trust::Public {
                role: b.role.clone(),
                member: member.clone(),
            })
        });
        Ok(public.unwrap_or(Trust::Confirmed))
    }
}
