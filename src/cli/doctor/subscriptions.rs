//! What a push subscription must look like for the worker (DESIGN.md §2), checked against the
//! subscription as Pub/Sub returns it. Pure: the calls live in [`super::probe`].
//!
//! - `endpoint`: the push endpoint's path and the OIDC token it sends.
//! - `dead_letter`: the dead-letter policy.

mod dead_letter;
mod endpoint;

use std::time::Duration;

use google_cloud_pubsub::model::Subscription;

use super::report::Check;
use crate::topology::ACK_MARGIN;

/// What push authentication the worker enforces (`PUSH_AUTH=oidc`).
#[derive(Debug, Clone)]
pub struct OidcExpect {
    /// `PUSH_SERVICE_ACCOUNTS`.
    pub service_accounts: Vec<String>,
    /// `PUSH_AUDIENCE`.
    pub audiences: Vec<String>,
}

/// How the subscription must dead-letter.
#[derive(Debug, Clone)]
pub enum DeadLetterExpect {
    /// To this topic, after at least this many attempts (`CALLBACK_MAX_ATTEMPTS` on
    /// callbacks: the worker decides first, the policy is the backstop).
    To { topic: String, min_attempts: i32 },
}

/// One push subscription's expected shape.
#[derive(Debug, Clone)]
pub struct PushExpect {
    /// Full subscription name, as shown and as used in fixes.
    pub name: String,
    /// Full topic name it must be attached to.
    pub topic: String,
    /// Path of the push endpoint: `/pubsub/copy-requests`.
    pub path: &'static str,
    /// The worker's own time budget for one delivery; the ack deadline must cover it plus
    /// [`ACK_MARGIN`].
    pub budget: Duration,
    /// What the budget is, for the message: `the request stage's budget`.
    pub budget_name: String,
    /// The Terraform variable that sets this ack deadline.
    pub ack_variable: &'static str,
    /// The retry policy's backoff as deployed (`topology`), for the fix when it is missing.
    pub backoff: (Duration, Duration),
    pub dead_letter: DeadLetterExpect,
    /// `None` with `PUSH_AUTH=none`.
    pub oidc: Option<OidcExpect>,
}

impl PushExpect {
    fn subject(&self) -> String {
        format!("subscription {}", short(&self.name))
    }

    fn update(&self, flags: &str) -> String {
        format!("gcloud pubsub subscriptions update {} {flags}", self.name)
    }
}

/// The last segment of a full resource name.
pub fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Every check of one subscription that exists.
pub fn check(e: &PushExpect, sub: &Subscription) -> Vec<Check> {
    let mut out = vec![topic(e, sub)];
    out.extend(endpoint::check(e, sub));
    out.push(ack_deadline(e, sub));
    out.push(retry(e, sub));
    out.push(dead_letter::check(e, sub));
    out
}

fn topic(e: &PushExpect, sub: &Subscription) -> Check {
    if sub.topic == e.topic {
        Check::ok(e.subject(), "topic", format!("attached to {}", e.topic))
    } else {
        Check::fail(
            e.subject(),
            "topic",
            format!("attached to {}, expected {}", sub.topic, e.topic),
        )
        .fix(format!(
            "a subscription cannot move to another topic: delete {} and re-apply the Terraform module",
            e.name
        ))
    }
}

/// The ack deadline must cover the worker's budget and [`ACK_MARGIN`], or Pub/Sub sends the
/// message again while the first delivery still works on it.
fn ack_deadline(e: &PushExpect, sub: &Subscription) -> Check {
    let subject = e.subject();
    let ack = Duration::from_secs(sub.ack_deadline_seconds.max(0) as u64);
    let need = e.budget + ACK_MARGIN;
    if ack >= need {
        return Check::ok(
            &subject,
            "ack deadline",
            format!(
                "{} s covers {} ({} s) + {} s",
                ack.as_secs(),
                e.budget_name,
                e.budget.as_secs(),
                ACK_MARGIN.as_secs()
            ),
        );
    }
    Check::fail(
        &subject,
        "ack deadline",
        format!(
            "{} s is below {} ({} s) + {} s: Pub/Sub redelivers while the worker still works on the message",
            ack.as_secs(),
            e.budget_name,
            e.budget.as_secs(),
            ACK_MARGIN.as_secs()
        ),
    )
    .fix(format!(
        "{} (Terraform: {} = {})",
        e.update(&format!("--ack-deadline={}", need.as_secs().max(60))),
        e.ack_variable,
        need.as_secs().max(60)
    ))
}

fn seconds(d: &Option<google_cloud_wkt::Duration>) -> String {
    d.as_ref()
        .map(|d| format!("{} s", d.seconds()))
        .unwrap_or_else(|| "unset".into())
}

/// A retry policy must exist: without one Pub/Sub redelivers at once, and for
/// the worker it would be a tight loop of refusals.
fn retry(e: &PushExpect, sub: &Subscription) -> Check {
    let subject = e.subject();
    match &sub.retry_policy {
        Some(r) => Check::ok(
            &subject,
            "retry policy",
            format!(
                "backoff {} to {}",
                seconds(&r.minimum_backoff),
                seconds(&r.maximum_backoff)
            ),
        ),
        None => Check::fail(
            &subject,
            "retry policy",
            "none: Pub/Sub redelivers a refused message at once, so every 'not yet' and every outage becomes a tight loop",
        )
        .fix(e.update(&format!(
            "--min-retry-delay={}s --max-retry-delay={}s",
            e.backoff.0.as_secs(),
            e.backoff.1.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::report::Status;
    use google_cloud_pubsub::model::{DeadLetterPolicy, PushConfig, RetryPolicy, push_config};

    fn expect() -> PushExpect {
        PushExpect {
            name: "projects/p/subscriptions/copy-requests-push".into(),
            topic: "projects/p/topics/copy-requests".into(),
            path: "/pubsub/copy-requests",
            budget: Duration::from_secs(45),
            budget_name: "the request stage's budget".into(),
            ack_variable: "requests_ack_deadline_seconds",
            backoff: (Duration::from_secs(10), Duration::from_secs(600)),
            dead_letter: DeadLetterExpect::To {
                topic: "projects/p/topics/copy-dead-letter".into(),
                min_attempts: 5,
            },
            oidc: Some(OidcExpect {
                service_accounts: vec!["push@p.iam.gserviceaccount.com".into()],
                audiences: vec!["https://svc.run.app".into()],
            }),
        }
    }

    /// The subscription Terraform creates (terraform/pubsub.tf `requests_push`).
    fn good() -> Subscription {
        Subscription::new()
            .set_topic("projects/p/topics/copy-requests")
            .set_ack_deadline_seconds(60)
            .set_push_config(
                PushConfig::new()
                    .set_push_endpoint("https://svc.run.app/pubsub/copy-requests")
                    .set_oidc_token(
                        push_config::OidcToken::new()
                            .set_service_account_email("push@p.iam.gserviceaccount.com")
                            .set_audience("https://svc.run.app"),
                    ),
            )
            .set_retry_policy(
                RetryPolicy::new()
                    .set_minimum_backoff(google_cloud_wkt::Duration::clamp(10, 0))
                    .set_maximum_backoff(google_cloud_wkt::Duration::clamp(600, 0)),
            )
            .set_dead_letter_policy(
                DeadLetterPolicy::new()
                    .set_dead_letter_topic("projects/p/topics/copy-dead-letter")
                    .set_max_delivery_attempts(10),
            )
    }

    fn status_of(checks: &[Check], what: &str) -> (Status, String) {
        let c = checks
            .iter()
            .find(|c| c.what == what)
            .unwrap_or_else(|| panic!("no {what} check in {checks:?}"));
        (c.status.clone(), c.detail.clone())
    }

    #[test]
    fn the_terraform_shape_passes_every_check() {
        let checks = check(&expect(), &good());
        assert!(checks.iter().all(|c| c.status == Status::Ok), "{checks:#?}");
        assert_eq!(checks.len(), 7, "{checks:#?}");
    }

    #[test]
    fn an_unset_audience_means_the_endpoint_url_and_is_checked_as_that() {
        let mut s = good();
        let pc = s.push_config.take().unwrap().set_oidc_token(
            push_config::OidcToken::new()
                .set_service_account_email("push@p.iam.gserviceaccount.com"),
        );
        s = s.set_push_config(pc);
        let (st, detail) = status_of(&check(&expect(), &s), "push audience");
        assert_eq!(st, Status::Fail, "{detail}");
        assert!(
            detail.contains("https://svc.run.app/pubsub/copy-requests")
                && detail.contains("the push endpoint"),
            "{detail}"
        );
    }

    /// The fix for a missing retry policy restores the backoff Terraform deploys for that
    /// subscription (10-600 s here), not one fixed pair for every subscription.
    #[test]
    fn a_missing_retry_policy_is_fixed_with_the_subscriptions_own_backoff() {
        let mut s = good();
        s.retry_policy = None;
        let checks = check(&expect(), &s);
        let c = checks.iter().find(|c| c.what == "retry policy").unwrap();
        let fix = c.fix.as_deref().unwrap_or_default();
        assert!(
            fix.ends_with("copy-requests-push --min-retry-delay=10s --max-retry-delay=600s"),
            "{fix}"
        );
    }

    #[test]
    fn each_misconfiguration_fails_with_a_fix() {
        let cases: Vec<(&str, Subscription)> = vec![
            ("ack deadline", good().set_ack_deadline_seconds(30)),
            ("retry policy", {
                let mut s = good();
                s.retry_policy = None;
                s
            }),
            ("dead-letter policy", {
                let mut s = good();
                s.dead_letter_policy = None;
                s
            }),
            ("push endpoint", {
                let mut s = good();
                s.push_config = None;
                s
            }),
            (
                "push service account",
                good().set_push_config(
                    PushConfig::new()
                        .set_push_endpoint("https://svc.run.app/pubsub/copy-requests")
                        .set_oidc_token(
                            push_config::OidcToken::new()
                                .set_service_account_email("other@p.iam.gserviceaccount.com")
                                .set_audience("https://svc.run.app"),
                        ),
                ),
            ),
            ("topic", good().set_topic("projects/p/topics/elsewhere")),
        ];
        for (what, sub) in cases {
            let checks = check(&expect(), &sub);
            let c = checks.iter().find(|c| c.what == what).unwrap();
            assert_eq!(c.status, Status::Fail, "{what}: {c:?}");
            assert!(c.fix.is_some(), "{what}: {c:?}");
            let others = checks
                .iter()
                .filter(|c| c.what != what && c.status == Status::Fail)
                .count();
            assert_eq!(others, 0, "{what} alone should fail: {checks:#?}");
        }
        let (st, detail) = status_of(
            &check(&expect(), &good().set_ack_deadline_seconds(30)),
            "ack deadline",
        );
        assert_eq!(st, Status::Fail);
        assert!(detail.starts_with("30 s is below"), "{detail}");
    }

    #[test]
    fn with_push_auth_none_the_token_is_not_checked_and_says_so() {
        let mut e = expect();
        e.oidc = None;
        let (st, detail) = status_of(&check(&e, &good()), "push auth");
        assert_eq!(st, Status::Warn);
        assert!(detail.contains("PUSH_AUTH=none"), "{detail}");
    }
}
