//! Fail fast on an endpoint that is not there: before a command talks to an endpoint the user
//! named (the Pub/Sub emulator, a Vertex AI endpoint), one TCP connection within
//! [`REACH_TIMEOUT`] tells whether anything listens. Otherwise the clients retry for their
//! whole budget (20 s a call, minutes for a `doctor`) and then report the same failure once
//! per call. The answer is one line that names the endpoint and where its value came from.
//!
//! Google's own endpoints are not probed: behind a proxy a direct connection may fail while
//! the client works, and an unreachable Google shows up at once as a credentials problem.

use std::time::Duration;

/// How long the probe may take (DNS and TCP connect).
pub const REACH_TIMEOUT: Duration = Duration::from_secs(3);

/// An endpoint named by the user, and where the name came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// What it is: `the Pub/Sub emulator`, `Vertex AI`.
    pub what: &'static str,
    /// `host:port`.
    pub address: String,
    /// The flag or variable that set it (see [`origin`]).
    pub from: &'static str,
}

/// Nothing answered at an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot reach {what} at {address} (set by {from}): {cause}; start it, or fix {from}",
    what = .endpoint.what, address = .endpoint.address, from = .endpoint.from
)]
pub struct Unreachable {
    pub endpoint: Endpoint,
    /// `connection refused`, `no answer within 3 s`, a DNS error.
    pub cause: String,
}

impl Endpoint {
    /// The Pub/Sub emulator at `host:port`.
    pub fn emulator(address: &str) -> Self {
        Self {
            what: "the Pub/Sub emulator",
            address: address.to_owned(),
            from: origin("--pubsub-emulator-host", "PUBSUB_EMULATOR_HOST"),
        }
    }

    /// A Vertex AI endpoint given as a URL (`VERTEX_ENDPOINT`); `None` when it has no host.
    pub fn vertex(url: &str) -> Option<Self> {
        let u = url::Url::parse(url).ok()?;
        Some(Self {
            what: "Vertex AI",
            address: format!("{}:{}", u.host_str()?, u.port_or_known_default()?),
            from: origin("--vertex-endpoint", "VERTEX_ENDPOINT"),
        })
    }

    /// Connects once, within [`REACH_TIMEOUT`].
    pub async fn check(&self) -> Result<(), Unreachable> {
        let connect = tokio::net::TcpStream::connect(self.address.as_str());
        let cause = match tokio::time::timeout(REACH_TIMEOUT, connect).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                "connection refused".to_owned()
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", REACH_TIMEOUT.as_secs()),
        };
        Err(Unreachable {
            endpoint: self.clone(),
            cause,
        })
    }
}

/// Where a setting came from: `flag` when it is on this process's command line, else `var`.
pub fn origin(flag: &'static str, var: &'static str) -> &'static str {
    let prefix = format!("{flag}=");
    let on_argv = std::env::args().any(|a| a == flag || a.starts_with(&prefix));
    if on_argv { flag } else { var }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_one_line_naming_the_endpoint_and_its_variable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = Endpoint::emulator(&format!("127.0.0.1:{port}"))
            .check()
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "cannot reach the Pub/Sub emulator at 127.0.0.1:{port} (set by PUBSUB_EMULATOR_HOST): connection refused; start it, or fix PUBSUB_EMULATOR_HOST"
            )
        );
        assert!(!e.contains('\n'));
    }

    #[tokio::test]
    async fn a_listening_port_passes() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let v = Endpoint::vertex(&url).unwrap();
        assert_eq!(v.from, "VERTEX_ENDPOINT");
        assert!(v.check().await.is_ok());
        assert_eq!(
            Endpoint::vertex("https://us-central1-aiplatform.googleapis.com").map(|e| e.address),
            Some("us-central1-aiplatform.googleapis.com:443".to_owned())
        );
    }
}
