//! Who may call the worker (DESIGN.md §11): `PUSH_AUTH`, the push tokens' audiences and
//! accounts, and the direct callers' accounts, checked at start.

use clap::{Args, ValueEnum};

use super::flags::{List, list};
use super::{ConfigError, err};
use crate::domain::names::{is_location, is_project};

/// `PUSH_AUTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PushAuthMode {
    /// Verify Pub/Sub's OIDC token on every push: signature, issuer, audience, expiry, email.
    Oidc,
    /// Behind Cloud Run's IAM invoker check, which verifies the token's signature and forwards
    /// it with the signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`: check the claims of
    /// that form (issuer, audience, expiry, email), and a token that still carries a
    /// signature in full. Refused at start unless `K_SERVICE` is set (docs/auth.md).
    CloudRun,
    /// Accept every push (local tests only; logged as a warning at every start).
    None,
}

/// What a push token must carry. `PUSH_AUTH` itself stays a flag of `ServeArgs`, beside these.
#[derive(Debug, Clone, Args)]
pub struct PushTokenArgs {
    /// Expected `aud` of push tokens, comma-separated.
    #[arg(long, env = "PUSH_AUDIENCE", value_parser = List::parse)]
    pub push_audience: Option<List>,
    /// Allowed `email` claims of push tokens, comma-separated.
    #[arg(long, env = "PUSH_SERVICE_ACCOUNTS", value_parser = List::parse)]
    pub push_service_accounts: Option<List>,
    /// JWKS URL override (tests, private issuers).
    #[arg(long, env = "PUSH_JWKS_URL")]
    pub push_jwks_url: Option<String>,
    /// With PUSH_AUTH=cloud-run: the worker's own Cloud Run service,
    /// projects/PROJECT/locations/REGION/services/NAME (NAME is K_SERVICE). The worker reads it
    /// at start and every 5 minutes, and accepts signature-removed tokens only while its
    /// invoker check is on and not granted to allUsers or allAuthenticatedUsers.
    #[arg(long, env = "COPY_WORKER_SERVICE")]
    pub worker_service: Option<String>,
    /// Base URL of the Cloud Run Admin API (tests; plain http:// is used anonymously).
    #[arg(long, env = "CLOUD_RUN_ADMIN_ENDPOINT", hide = true)]
    pub cloud_run_admin_endpoint: Option<String>,
}

/// The service whose invoker check `PUSH_AUTH=cloud-run` trusts, and where to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerService {
    /// `projects/P/locations/REGION/services/NAME`.
    pub name: String,
    /// `CLOUD_RUN_ADMIN_ENDPOINT`; `None` for `https://run.googleapis.com`.
    pub endpoint: Option<String>,
}

/// `COPY_WORKER_SERVICE` (and its endpoint) under `PUSH_AUTH=cloud-run`; `None` in the other
/// modes. With `k_service` (Cloud Run's `K_SERVICE`), the name must end in it: a worker that
/// read another service would confirm someone else's setting.
pub fn worker_service(
    mode: PushAuthMode,
    k_service: Option<&str>,
    a: &PushTokenArgs,
) -> Result<Option<WorkerService>, ConfigError> {
    if mode != PushAuthMode::CloudRun {
        return Ok(None);
    }
    let Some(name) = a.worker_service.as_deref().filter(|s| !s.is_empty()) else {
        return Err(err(
            "COPY_WORKER_SERVICE",
            "is required with PUSH_AUTH=cloud-run: set it to this service, projects/PROJECT/locations/REGION/services/NAME, so the worker can check that the invoker check it trusts is on (Terraform sets it)",
        ));
    };
    let parts: Vec<&str> = name.split('/').collect();
    let ok = matches!(parts.as_slice(),
        ["projects", p, "locations", l, "services", s]
            if is_project(p) && is_location(l) && is_service_name(s));
    if !ok {
        return Err(err(
            "COPY_WORKER_SERVICE",
            format!("{name:?} must be projects/PROJECT/locations/REGION/services/NAME"),
        ));
    }
    if let Some(k) = k_service
        && parts[5] != k
    {
        return Err(err(
            "COPY_WORKER_SERVICE",
            format!(
                "{name:?} names service {:?}, but this is {k:?} (K_SERVICE)",
                parts[5]
            ),
        ));
    }
    if let Some(e) = &a.cloud_run_admin_endpoint
        && !(e.starts_with("https://") || e.starts_with("http://"))
    {
        return Err(err(
            "CLOUD_RUN_ADMIN_ENDPOINT",
            format!("{e:?} must be an http:// or https:// URL"),
        ));
    }
    Ok(Some(WorkerService {
        name: name.to_owned(),
        endpoint: a.cloud_run_admin_endpoint.clone(),
    }))
}

/// A Cloud Run service name: lowercase letters, digits and hyphens, starting with a letter,
/// not ending with a hyphen, at most 49 characters (cloud.google.com/run/docs/deploying).
fn is_service_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=49).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// The checked push settings.
#[derive(Debug, Clone)]
pub struct Push {
    pub audiences: Vec<String>,
    pub service_accounts: Vec<String>,
}

/// Checks the push settings of `mode`; `on_cloud_run` is whether `K_SERVICE` is set.
pub fn push(
    mode: PushAuthMode,
    on_cloud_run: bool,
    a: &PushTokenArgs,
) -> Result<Push, ConfigError> {
    let audiences = list(&a.push_audience);
    let service_accounts = list(&a.push_service_accounts);
    if mode == PushAuthMode::CloudRun && !on_cloud_run {
        return Err(err(
            "PUSH_AUTH",
            "cloud-run trusts the signature check of Cloud Run's front end, and K_SERVICE is not set, so this is not Cloud Run: use PUSH_AUTH=oidc here (the worker then verifies signatures itself)",
        ));
    }
    // Required by `serve` only (cli::serve), so that `doctor` can check a deployment's
    // configuration from outside; a value that is set must be right everywhere.
    if a.worker_service.is_some() {
        worker_service(mode, None, a)?;
    }
    if mode != PushAuthMode::None {
        let mode = mode.to_possible_value().expect("no skipped variant");
        let mode = mode.get_name();
        if audiences.is_empty() {
            return Err(err(
                "PUSH_AUDIENCE",
                format!(
                    "is required with PUSH_AUTH={mode}: set it to the push endpoint URL(s) of the subscriptions, or set PUSH_AUTH=none for local tests"
                ),
            ));
        }
        if let Some(u) = &a.push_jwks_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(err(
                "PUSH_JWKS_URL",
                format!("{u:?} must be an http:// or https:// URL"),
            ));
        }
        if service_accounts.is_empty() {
            return Err(err(
                "PUSH_SERVICE_ACCOUNTS",
                format!(
                    "is required with PUSH_AUTH={mode}: set it to the push subscriptions' service account email(s)"
                ),
            ));
        }
    }
    Ok(Push {
        audiences,
        service_accounts,
    })
}

/// Every entry of each list must be an email; the error names the list's variable.
pub fn emails(lists: [(&'static str, &[String]); 2]) -> Result<(), ConfigError> {
    for (var, list) in lists {
        if let Some(e) = list.iter().find(|e| !is_email(e)) {
            return Err(err(
                var,
                format!(
                    "{e:?} is not an email address; list service account emails such as copy-worker-push@my-proj.iam.gserviceaccount.com, comma-separated"
                ),
            ));
        }
    }
    Ok(())
}

/// `name@domain.tld`: the form of a token's `email` claim (a service account email).
pub fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(|c: char| c.is_whitespace() || c == ',' || c == '/')
                && !domain.contains('@')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: &str = "projects/my-proj-123/locations/us-central1/services/copy-worker";

    fn args(service: Option<&str>, endpoint: Option<&str>) -> PushTokenArgs {
        PushTokenArgs {
            push_audience: None,
            push_service_accounts: None,
            push_jwks_url: None,
            worker_service: service.map(str::to_owned),
            cloud_run_admin_endpoint: endpoint.map(str::to_owned),
        }
    }

    #[test]
    fn cloud_run_mode_names_its_own_service_and_no_other() {
        let cr = PushAuthMode::CloudRun;
        let got = worker_service(cr, Some("copy-worker"), &args(Some(SVC), None)).unwrap();
        assert_eq!(got.unwrap().name, SVC);
        assert_eq!(
            worker_service(PushAuthMode::Oidc, None, &args(None, None)).unwrap(),
            None
        );
        let cases = [
            (args(None, None), Some("copy-worker"), "is required"),
            (args(Some("copy-worker"), None), None, "must be projects/"),
            (
                args(Some("projects/p/locations/127.0.0.1:1#/services/s"), None),
                None,
                "must be projects/",
            ),
            (args(Some(SVC), None), Some("other"), "K_SERVICE"),
            (args(Some(SVC), Some("run.googleapis.com")), None, "http"),
        ];
        for (a, k, want) in cases {
            let e = worker_service(cr, k, &a).unwrap_err();
            assert!(e.var == "COPY_WORKER_SERVICE" || e.var == "CLOUD_RUN_ADMIN_ENDPOINT");
            assert!(e.problem.contains(want), "{want}: {e}");
        }
    }
}
