//! `copy-worker doctor --publisher`: the publisher's side of a deployment (an EC2 instance
//! under workload identity federation), checked without publishing anything. It fetches a
//! token the way `publish` does, then asks Pub/Sub whether those credentials may publish to
//! `copy-requests` (testIamPermissions), and names the first link of the chain that broke:
//! the credential file, the instance metadata service, the token exchange, the
//! impersonation of the publisher account, the topic, or the publish grant.

use super::DoctorArgs;
use super::probe;
use super::report::{Check, Report};
use crate::clients::credentials;
use crate::clients::pubsub::{Connection, full_topic};
use crate::clients::reach::Endpoint;

/// Every publisher check, in order; it stops at the first broken link.
pub async fn diagnose(args: &DoctorArgs) -> Report {
    let mut report = Report::default();
    let pubsub = &args.serve.pubsub;
    let topic = match full_topic(&args.serve.topics.requests, pubsub.project()) {
        Ok(t) => t,
        Err(e) => {
            report.push(Check::fail("config", "requests topic", e.to_string()));
            return report;
        }
    };
    let conn = match pubsub.emulator_host() {
        Some(host) => match Endpoint::emulator(&host).check().await {
            Ok(()) => Connection {
                emulator_host: Some(host),
                credentials: None,
            },
            Err(e) => {
                report.push(Check::fail("pubsub", "reachable", e.to_string()));
                return report;
            }
        },
        None => match credentials::check().await {
            Ok(c) => {
                report.push(Check::ok("credentials", "token", "a token was fetched"));
                Connection {
                    emulator_host: None,
                    credentials: Some(c),
                }
            }
            Err(e) => {
                let (link, fix) = broken_link(&e.cause);
                report.push(Check::fail("credentials", link, e.cause).fix(fix));
                return report;
            }
        },
    };
    match probe::PubSub::connect(&conn).await {
        Ok(ps) => report.extend(
            ps.topic(&topic, "COPY_REQUESTS_TOPIC")
                .await
                .into_iter()
                .map(|c| match c.what {
                    "publish" if c.fix.is_some() => c.fix(PUBLISH_FIX),
                    _ => c,
                }),
        ),
        Err(e) => report.push(Check::fail("pubsub", "client", e.to_string())),
    }
    report
}

/// The publisher account's grant, which Terraform makes.
const PUBLISH_FIX: &str = "the publisher account (copy-worker-publisher) needs roles/pubsub.publisher on copy-requests: the Terraform module grants it; check that the credential file's --service-account is that account";

/// Which link of the federation chain a token failure points at (the request that failed is
/// in the cause, [`credentials::root_cause_first`]), and its fix.
fn broken_link(cause: &str) -> (&'static str, &'static str) {
    if cause.contains("169.254.169.254") || cause.contains("fd00:ec2::254") {
        (
            "instance metadata",
            "the instance role could not be read from IMDS: attach an instance profile; from a container, set the IMDSv2 hop limit to 2 (docs/ec2.md, Install)",
        )
    } else if cause.contains("sts.googleapis.com") {
        (
            "token exchange",
            "Google STS refused the AWS identity: check the pool and provider (terraform output wif_provider_name) and that the instance role is in aws_wif.role_names",
        )
    } else if cause.contains("iamcredentials.googleapis.com") {
        (
            "impersonation",
            "the federated identity may not impersonate the publisher account: it needs roles/iam.workloadIdentityUser on copy-worker-publisher (Terraform grants it to aws_wif.role_names)",
        )
    } else {
        ("credential file", credentials::FIX)
    }
}

#[cfg(test)]
mod tests {
    use super::broken_link;

    #[test]
    fn a_token_failure_names_the_link_of_the_chain_that_broke() {
        for (cause, link) in [
            (
                "HTTP status client error (401) (error sending request for url (http://169.254.169.254/latest/api/token))",
                "instance metadata",
            ),
            (
                "invalid_grant (https://sts.googleapis.com/v1/token)",
                "token exchange",
            ),
            (
                "PERMISSION_DENIED (https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/p@x.iam.gserviceaccount.com:generateAccessToken)",
                "impersonation",
            ),
            (
                "GOOGLE_APPLICATION_CREDENTIALS=/x.json: missing field `audience`",
                "credential file",
            ),
        ] {
            assert_eq!(broken_link(cause).0, link, "{cause}");
        }
    }
}
