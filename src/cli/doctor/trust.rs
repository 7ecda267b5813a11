//! `PUSH_AUTH=cloud-run`'s trust anchor, seen from outside (DESIGN.md §11, §13): `doctor`
//! reads the worker's own service through the Cloud Run Admin API with the same client and
//! the same judgement `serve` uses at start and every 5 minutes
//! ([`CloudRunAdmin::check`](crate::clients::CloudRunAdmin::check)), and reports a refusal
//! with the cause text the worker logs ([`Trust::refusal`]).

use super::report::{Check, Status};
use crate::clients::{CloudRunAdmin, Trust};
use crate::config::PushAuthMode;
use crate::config::auth::{PushTokenArgs, WorkerService, worker_service};

const WHAT: &str = "invoker check";

/// The check of the service `COPY_WORKER_SERVICE` names; `None` outside `cloud-run` mode,
/// where nothing trusts Cloud Run's invoker check.
pub async fn check(mode: PushAuthMode, push: &PushTokenArgs) -> Option<Check> {
    if mode != PushAuthMode::CloudRun {
        return None;
    }
    // `doctor` looks from outside, so no K_SERVICE to hold the name to; the name's form was
    // checked with the rest of the configuration.
    let Ok(Some(service)) = worker_service(mode, None, push) else {
        return Some(
            Check::new(
                "cloud run service",
                WHAT,
                Status::Unknown("COPY_WORKER_SERVICE is not set".into()),
                "the service whose invoker check PUSH_AUTH=cloud-run trusts was not read",
            )
            .fix("set COPY_WORKER_SERVICE=projects/PROJECT/locations/REGION/services/NAME, as the Terraform module sets it on the service"),
        );
    };
    Some(read(&service).await)
}

/// One read of `service`, as the worker makes it.
async fn read(service: &WorkerService) -> Check {
    let subject = format!("cloud run {}", service.name);
    let admin = match CloudRunAdmin::new(&service.name, service.endpoint.as_deref()).await {
        Ok(admin) => admin,
        Err(e) => {
            let why = format!("no Cloud Run Admin client ({e})");
            return Check::new(
                subject,
                WHAT,
                Status::Unknown(why),
                "the service was not read",
            );
        }
    };
    match admin.check().await {
        Ok(Trust::Confirmed) => Check::ok(
            subject,
            WHAT,
            "on, and roles/run.invoker is granted to neither allUsers nor allAuthenticatedUsers: the worker accepts the tokens Cloud Run verified",
        ),
        Ok(trust) => {
            let cause = trust.refusal(&service.name).unwrap_or_default();
            let fix = fix(&service.name, &trust);
            Check::fail(
                subject,
                WHAT,
                format!("{cause}. Until it is fixed the worker refuses every signature-removed token (401) and logs \"Cloud Run invoker check not confirmed; signature-removed tokens refused\" (reason {})", trust.reason()),
            )
            .fix(fix)
        }
        // What cannot be read is unknown, never ok: doctor may run with less than the
        // worker's account holds. The worker refuses signature-removed tokens in that case.
        Err(cause) => Check::new(
            subject,
            WHAT,
            Status::Unknown("the service cannot be read".into()),
            cause,
        )
        .fix("run doctor as the worker's account (it holds roles/run.viewer on the service), or grant yourself roles/run.viewer on it"),
    }
}

/// The gcloud command that restores the trust, for a `service` whose check is not confirmed.
fn fix(service: &str, trust: &Trust) -> String {
    let parts: Vec<&str> = service.split('/').collect();
    let (project, region, name) = (parts[1], parts[3], parts[5]);
    let at = format!("{name} --project {project} --region {region}");
    match trust {
        Trust::Public { role, member } => format!(
            "gcloud run services remove-iam-policy-binding {at} --member={member} --role={role}"
        ),
        _ => format!("gcloud run services update {at} --invoker-iam-check"),
    }
}
