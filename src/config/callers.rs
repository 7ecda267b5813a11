//! Direct HTTP callers and webhooks (DESIGN.md §7): who may call `POST /v1/models/copy`, the
//! hosts a callback may go to, and how callbacks are signed.

use clap::Args;

use super::flags::{List, list};
use super::{ConfigError, err};

/// The direct callers' accounts and the callbacks' policy.
#[derive(Debug, Clone, Args)]
pub struct CallerArgs {
    /// Callers allowed on POST /v1/models/copy, comma-separated.
    #[arg(long, env = "INVOKER_SERVICE_ACCOUNTS", value_parser = List::parse)]
    pub invoker_service_accounts: Option<List>,
    /// Hosts a callback_url may point at, comma-separated.
    #[arg(long, env = "CALLBACK_ALLOWED_HOSTS", value_parser = List::parse)]
    pub callback_allowed_hosts: Option<List>,
    /// Standard Webhooks signing secret (whsec_… or raw).
    #[arg(long, env = "CALLBACK_SIGNING_SECRET", hide_env_values = true)]
    pub callback_signing_secret: Option<String>,
    /// Also allow http://127.0.0.1 callbacks (local tests only).
    #[arg(long, env = "CALLBACK_ALLOW_HTTP_LOOPBACK", default_value_t = false)]
    pub callback_allow_http_loopback: bool,
}

impl CallerArgs {
    /// `INVOKER_SERVICE_ACCOUNTS`.
    pub fn invokers(&self) -> Vec<String> {
        list(&self.invoker_service_accounts)
    }

    /// `CALLBACK_ALLOWED_HOSTS`, lower-cased, each a bare host name.
    pub fn allowed_hosts(&self) -> Result<Vec<String>, ConfigError> {
        let mut hosts = list(&self.callback_allowed_hosts);
        hosts.iter_mut().for_each(|h| h.make_ascii_lowercase());
        for h in &hosts {
            if let Some(why) = host_mistake(h) {
                return Err(err("CALLBACK_ALLOWED_HOSTS", why));
            }
        }
        Ok(hosts)
    }

    /// `CALLBACK_SIGNING_SECRET`, when set, decodes.
    pub fn check_secret(&self) -> Result<(), ConfigError> {
        if let Some(s) = &self.callback_signing_secret {
            // The variable is named once, by ConfigError's Display.
            crate::clients::webhook::decode_secret(s)
                .map_err(|e| err("CALLBACK_SIGNING_SECRET", e.to_string()))?;
        }
        Ok(())
    }
}

/// What is wrong with one `CALLBACK_ALLOWED_HOSTS` entry, if anything: it must be a bare
/// host name (`hooks.example.com`), which is what a callback URL's host is compared with.
fn host_mistake(h: &str) -> Option<String> {
    if let Some((scheme, rest)) = h.split_once("://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        return Some(format!(
            "{h:?} has a scheme ({scheme}://); list the host only, e.g. {host:?}"
        ));
    }
    if h.contains('/') {
        let host = h.split('/').next().unwrap_or_default();
        return Some(format!(
            "{h:?} has a path; list the host only, e.g. {host:?}"
        ));
    }
    if let Some((host, _port)) = h.rsplit_once(':') {
        return Some(format!(
            "{h:?} has a port; hosts are matched without one, list {host:?}"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if h.len() > 253 || !h.split('.').all(label_ok) {
        return Some(format!(
            "{h:?} is not a host name (letters, digits, hyphens and dots, e.g. hooks.example.com)"
        ));
    }
    None
}

#[cfg(test)]
mod host_tests {
    use super::host_mistake;

    #[test]
    fn callback_allowed_hosts_must_be_bare_host_names_and_the_error_says_what_to_list() {
        assert_eq!(host_mistake("hooks.example.com"), None);
        assert_eq!(host_mistake("127.0.0.1"), None);
        let cases = [
            (
                "https://hooks.example.com",
                "has a scheme",
                "\"hooks.example.com\"",
            ),
            (
                "hooks.example.com:443",
                "has a port",
                "\"hooks.example.com\"",
            ),
            (
                "hooks.example.com/copy",
                "has a path",
                "\"hooks.example.com\"",
            ),
            (
                "hooks example.com",
                "is not a host name",
                "hooks.example.com",
            ),
            (
                "-bad.example.com",
                "is not a host name",
                "hooks.example.com",
            ),
        ];
        for (entry, why, fix) in cases {
            let e = host_mistake(entry).unwrap_or_else(|| panic!("{entry} accepted"));
            assert!(e.contains(why) && e.contains(fix), "{entry}: {e}");
        }
    }
}
