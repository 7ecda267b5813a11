//! Who may call the worker (DESIGN.md §11): `PUSH_AUTH`, the push tokens' audiences and
//! accounts, and the direct callers' accounts, checked at start.

use clap::{Args, ValueEnum};

use super::flags::{List, list};
use super::{ConfigError, err};

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
