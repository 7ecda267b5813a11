//! The Pub/Sub checks of `copy-worker doctor`: credentials, the topics, each push
//! subscription as [`crate::topology`] describes it (docs/DESIGN.md §2), the service agent's
//! grants for dead-lettering, and the pull subscription `replay` reads.

use google_cloud_auth::credentials::Credentials;
use google_cloud_pubsub::model::Subscription;

use super::DoctorArgs;
use super::probe;
use super::report::{Check, Report};
use super::subscriptions::{self, DeadLetterExpect, OidcExpect, PushExpect};
use crate::cli::config::{Config, PushAuthMode};
use crate::clients::pubsub::{Connection, full_subscription};
use crate::clients::reach::Endpoint;
use crate::topology::{self, AttemptFloor, DeadLetter, PushSubscription};

/// Every Pub/Sub check, in order; returns the checked credentials (None against the
/// emulator, or when there are none) for the checks that follow.
pub async fn check(args: &DoctorArgs, cfg: &Config, report: &mut Report) -> Option<Credentials> {
    let conn = connection(cfg, report).await?;
    let ps = match probe::PubSub::connect(&conn).await {
        Ok(p) => p,
        Err(e) => {
            report.push(
                Check::fail("pubsub", "credentials", format!("no Pub/Sub client: {e}")).fix(
                    "gcloud auth application-default login (or the workload identity federation config on EC2)",
                ),
            );
            return conn.credentials;
        }
    };
    topics(&ps, cfg, report).await;
    push_subscriptions(args, cfg, &ps, report).await;
    match subscription_name(
        cfg,
        "dead-letter-subscription",
        &args.dead_letter_subscription,
    ) {
        Ok(name) => report.push(match ps.subscription(&name).await {
            Ok(s) => replay_subscription(&name, &cfg.topics.dead_letter, &s),
            Err(c) => c,
        }),
        Err(c) => report.push(c),
    }
    conn.credentials
}

/// The emulator, or Application Default Credentials that yield a token; `None` (and a
/// failed check) when there are none.
async fn connection(cfg: &Config, report: &mut Report) -> Option<Connection> {
    let mut conn = Connection {
        emulator_host: cfg.emulator_host.clone(),
        credentials: None,
    };
    if let Some(host) = &conn.emulator_host {
        // One line for a dead emulator, not one per check after minutes of retries.
        if let Err(e) = Endpoint::emulator(host).check().await {
            report.push(Check::fail("pubsub", "reachable", e.to_string()));
            return None;
        }
        return Some(conn);
    }
    match crate::clients::credentials::check().await {
        Ok(checked) => {
            conn.credentials = Some(checked);
            report.push(Check::ok(
                "credentials",
                "token",
                "Application Default Credentials yield a token",
            ));
            Some(conn)
        }
        Err(e) => {
            report.push(
                Check::fail("credentials", "token", format!("none usable: {}", e.cause))
                    .fix(crate::clients::credentials::FIX),
            );
            None
        }
    }
}

/// Each topic exists and may be published to; the service agent may forward dead letters.
async fn topics(ps: &probe::PubSub, cfg: &Config, report: &mut Report) {
    let t = &cfg.topics;
    for (name, var) in [
        (&t.requests, "COPY_REQUESTS_TOPIC"),
        (&t.completions, "COPY_COMPLETIONS_TOPIC"),
        (&t.dead_letter, "COPY_DEAD_LETTER_TOPIC"),
        (&t.callbacks, "COPY_CALLBACKS_TOPIC"),
    ] {
        report.extend(ps.topic(name, var).await);
    }
    report.push(
        ps.agent_grant(&t.dead_letter, "roles/pubsub.publisher")
            .await,
    );
}

/// The full name of the subscription a flag names, or the check that says why it is none.
fn subscription_name(cfg: &Config, flag: &str, name: &str) -> Result<String, Check> {
    full_subscription(name, Some(cfg.worker_project.as_str()))
        .map_err(|e| Check::fail("config", "subscription name", format!("--{flag}: {e}")))
}

/// Each push subscription against its expected shape, and the agent's grant on those that
/// dead-letter.
async fn push_subscriptions(
    args: &DoctorArgs,
    cfg: &Config,
    ps: &probe::PubSub,
    report: &mut Report,
) {
    let t = &cfg.topics;
    for (flag, name, topic, spec) in [
        (
            "requests-subscription",
            &args.requests_subscription,
            &t.requests,
            topology::REQUESTS_PUSH,
        ),
        (
            "callbacks-subscription",
            &args.callbacks_subscription,
            &t.callbacks,
            topology::CALLBACKS_PUSH,
        ),
    ] {
        let name = match subscription_name(cfg, flag, name) {
            Ok(n) => n,
            Err(c) => {
                report.push(c);
                continue;
            }
        };
        let expect = expect(cfg, &spec, name, topic);
        match ps.subscription(&expect.name).await {
            Ok(s) => report.extend(subscriptions::check(&expect, &s)),
            Err(c) => {
                report.push(c);
                continue;
            }
        }
        if matches!(expect.dead_letter, DeadLetterExpect::To { .. }) {
            report.push(
                ps.agent_grant(&expect.name, "roles/pubsub.subscriber")
                    .await,
            );
        }
    }
}

/// What the subscription `name` on `topic` must look like under this configuration.
fn expect(cfg: &Config, spec: &PushSubscription, name: String, topic: &str) -> PushExpect {
    let (budget, budget_name) = (spec.budget, format!("the {} stage's budget", spec.stage));
    let dead_letter = match spec.dead_letter {
        DeadLetter::ToDeadLetterTopic { floor } => DeadLetterExpect::To {
            topic: cfg.topics.dead_letter.clone(),
            min_attempts: match floor {
                AttemptFloor::PubSubMinimum => topology::MIN_DELIVERY_ATTEMPTS,
                AttemptFloor::CallbackMaxAttempts => cfg.settings.callback_max_attempts as i32,
            },
        },
    };
    PushExpect {
        name,
        topic: topic.to_owned(),
        path: spec.route,
        budget,
        budget_name,
        ack_variable: spec.ack_variable,
        backoff: spec.backoff,
        dead_letter,
        oidc: (cfg.push_auth != PushAuthMode::None).then(|| OidcExpect {
            service_accounts: cfg.push_service_accounts.clone(),
            audiences: cfg.push_audiences.clone(),
        }),
    }
}

/// The pull subscription `replay` reads must exist on the dead-letter topic: a topic without
/// a subscription drops what is published to it (DESIGN.md §2).
fn replay_subscription(name: &str, dead_letter: &str, s: &Subscription) -> Check {
    let subject = format!("subscription {}", subscriptions::short(name));
    let push = s
        .push_config
        .as_ref()
        .is_some_and(|p| !p.push_endpoint.is_empty());
    if s.topic != dead_letter {
        Check::fail(
            subject,
            "dead letters kept",
            format!("attached to {}, not {dead_letter}", s.topic),
        )
        .fix("point --dead-letter-subscription at the pull subscription of the dead-letter topic")
    } else if push {
        Check::warn(
            subject,
            "dead letters kept",
            "is a push subscription; `copy-worker replay` pulls",
        )
    } else {
        Check::ok(
            subject,
            "dead letters kept",
            format!("pull subscription on {dead_letter}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Args as _;

    use super::*;

    /// DoctorArgs' defaults are spelled in its flags; they must stay the topology's names.
    #[test]
    fn the_subscription_flags_default_to_the_topology_names() {
        let cmd = DoctorArgs::augment_args(clap::Command::new("doctor"));
        for (id, want) in [
            ("requests_subscription", topology::REQUESTS_PUSH.name),
            ("callbacks_subscription", topology::CALLBACKS_PUSH.name),
            (
                "dead_letter_subscription",
                topology::DEAD_LETTER_REPLAY.name,
            ),
        ] {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
            assert_eq!(arg.get_default_values(), [want], "--{id}");
        }
    }
}
