//! Application Default Credentials, checked once before a command does anything: a missing or
//! broken credential is a setup problem, so it is reported at once, root cause first, with the
//! fix, instead of being retried for 20 s as a transient publish error.

use std::error::Error as StdError;
use std::time::Duration;

use google_cloud_auth::credentials::{Builder, Credentials};

/// How long fetching the first token may take. The metadata server answers in milliseconds on
/// Google Cloud, and a workload identity federation exchange (AWS IMDSv2 + STS) in about a
/// second; without any credentials the library probes the metadata server until it gives up.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do when no credentials work.
pub const FIX: &str = "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key or a workload identity federation config (on AWS EC2: docs/ec2.md); against the emulator, set PUBSUB_EMULATOR_HOST";

/// No usable credentials: the cause, innermost first.
#[derive(Debug, thiserror::Error)]
#[error("no usable Google credentials: {cause}. Fix: {FIX}")]
pub struct CredentialsProblem {
    pub cause: String,
}

/// The innermost message of `e`'s chain, then the request that failed (the first message
/// naming a URL), if any: the rest of a credentials chain repeats generic wrappers.
pub fn root_cause_first(e: &(dyn StdError + 'static)) -> String {
    let mut chain: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        // google-cloud-auth appends this to every transient error's message.
        let m = err.to_string();
        let m = m.replace(" but future attempts may succeed", "");
        chain.push(m.trim().to_owned());
        cur = err.source();
    }
    chain.retain(|m| !m.is_empty());
    chain.reverse();
    let Some(root) = chain.first().cloned() else {
        return String::new();
    };
    match chain.iter().skip(1).find(|m| m.contains("://")) {
        Some(request) if !root.contains(request.as_str()) => format!("{root} ({request})"),
        _ => root,
    }
}

/// Builds the ADC credentials and fetches one token, within [`CHECK_TIMEOUT`]. The checked
/// credentials are returned for every client of the command to share: they cache the token,
/// so the command fetches one (one metadata-server call, or one STS exchange under workload
/// identity federation) instead of one per client.
pub async fn check() -> Result<Credentials, CredentialsProblem> {
    // Name the file the user pointed at, when the problem may be in it.
    let file = std::env::var("GOOGLE_APPLICATION_CREDENTIALS")
        .ok()
        .filter(|f| !f.is_empty())
        .map(|f| format!("GOOGLE_APPLICATION_CREDENTIALS={f}: "))
        .unwrap_or_default();
    let problem = |e: &(dyn StdError + 'static)| CredentialsProblem {
        cause: format!("{file}{}", root_cause_first(e)),
    };
    let creds = Builder::default().build().map_err(|e| problem(&e))?;
    match tokio::time::timeout(CHECK_TIMEOUT, creds.headers(Default::default())).await {
        Ok(Ok(_)) => Ok(creds),
        Ok(Err(e)) => Err(problem(&e)),
        Err(_) => Err(CredentialsProblem {
            cause: format!(
                "no token within {} s (no GOOGLE_APPLICATION_CREDENTIALS, no gcloud application-default credentials, and no metadata server answered)",
                CHECK_TIMEOUT.as_secs()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{msg}")]
    struct E {
        msg: &'static str,
        #[source]
        source: Option<Box<E>>,
    }

    #[test]
    fn the_innermost_cause_comes_first_and_repeats_are_dropped() {
        let e = E {
            msg: "cannot create the authentication headers but future attempts may succeed",
            source: Some(Box::new(E {
                msg: "error sending request for url (http://169.254.169.254/latest/api/token)",
                source: Some(Box::new(E {
                    msg: "HTTP status client error (403 Forbidden)",
                    source: None,
                })),
            })),
        };
        assert_eq!(
            root_cause_first(&e),
            "HTTP status client error (403 Forbidden) (error sending request for url (http://169.254.169.254/latest/api/token))"
        );
        let lone = E {
            msg: "the file at GOOGLE_APPLICATION_CREDENTIALS is not JSON",
            source: None,
        };
        assert_eq!(
            root_cause_first(&lone),
            "the file at GOOGLE_APPLICATION_CREDENTIALS is not JSON"
        );
    }
}
