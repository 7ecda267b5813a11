//! The Terraform module against [`crate::topology`] (docs/DESIGN.md §2, §12): the names it
//! creates by default, the routes its push subscriptions post to, their ack deadlines,
//! backoffs and dead-letter policies. A rename on either side fails here.

use std::collections::BTreeSet;
use std::time::Duration;

use super::hcl::{self, Hcl, unquote};
use super::*;

/// The module, with what the tests look up in it.
struct Module {
    all: Hcl,
}

impl Module {
    fn read() -> Module {
        Module { all: hcl::module() }
    }

    /// The default of `names.<key>` (variables.tf: `key = optional(string, "value")`).
    fn name(&self, key: &str) -> String {
        let names = self.all.block(r#"variable "names""#).0;
        let line = names
            .lines()
            .map(str::trim)
            .find(|l| {
                l.strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with('='))
            })
            .unwrap_or_else(|| panic!("no names.{key} in variables.tf"));
        let default = line
            .split_once("optional(string,")
            .and_then(|(_, d)| d.trim().strip_suffix(')'))
            .unwrap_or_else(|| panic!("names.{key} has no string default: {line}"));
        unquote(default.trim()).to_owned()
    }

    /// A name as a resource spells it: `local.names.KEY`, resolved to its default.
    fn resolve_name(&self, value: &str) -> Option<String> {
        value.strip_prefix("local.names.").map(|k| self.name(k))
    }

    /// A topic reference, `google_pubsub_topic.topic["KEY"].id`, resolved to its default name
    /// through `local.topics` (pubsub.tf).
    fn resolve_topic(&self, value: &str) -> String {
        let key = value
            .strip_prefix("google_pubsub_topic.topic[\"")
            .and_then(|r| r.strip_suffix("\"].id"))
            .unwrap_or_else(|| panic!("not one of the worker's topics: {value}"));
        let topics = self.local("topics");
        let name = topics
            .attr(key)
            .unwrap_or_else(|| panic!("no local.topics.{key}"));
        self.resolve_name(&name)
            .unwrap_or_else(|| panic!("local.topics.{key} is not a default name: {name}"))
    }

    /// `local.NAME`, when it is a block (`NAME = { … }` in one of the `locals`).
    fn local(&self, name: &str) -> Hcl {
        let found: Vec<Hcl> = self
            .all
            .blocks()
            .into_iter()
            .filter(|(h, _)| h == "locals")
            .flat_map(|(_, b)| b.blocks())
            .filter(|(h, _)| h == name)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(found.len(), 1, "expected one local.{name}");
        found.into_iter().next().unwrap()
    }

    /// The default of `var.NAME`.
    fn var(&self, name: &str) -> String {
        self.all
            .block(&format!("variable \"{name}\""))
            .attr("default")
            .unwrap_or_else(|| panic!("var.{name} has no default"))
    }

    /// A number of seconds: a literal, `var.X`, or `"${var.X}s"`.
    fn seconds(&self, value: &str) -> Duration {
        let value = value
            .strip_prefix("\"${")
            .and_then(|v| v.strip_suffix("}s\""))
            .unwrap_or(value);
        if let Some(v) = value.strip_prefix("var.") {
            return self.seconds(&self.var(v));
        }
        let number = value.trim_matches('"').trim_end_matches('s');
        Duration::from_secs(number.parse().unwrap_or_else(|e| panic!("{value}: {e}")))
    }

    /// Every subscription with a default name, by that name.
    fn subscriptions(&self) -> Vec<(String, Hcl)> {
        let prefix = r#"resource "google_pubsub_subscription" "#;
        self.all
            .blocks()
            .into_iter()
            .filter(|(h, _)| h.starts_with(prefix))
            .filter_map(|(_, b)| {
                let name = self.resolve_name(&b.attr("name")?)?;
                Some((name, b))
            })
            .collect()
    }

    fn subscription(&self, name: &str) -> Hcl {
        self.subscriptions()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("Terraform creates no subscription named {name}"))
    }
}

#[test]
fn terraform_creates_the_topics_of_the_topology() {
    let m = Module::read();
    let created: BTreeSet<String> = m
        .local("topics")
        .0
        .lines()
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim().to_owned()))
        .map(|v| m.resolve_name(&v).expect("local.names.*"))
        .collect();
    assert_eq!(created, TOPICS.iter().map(|t| t.to_string()).collect());
}

#[test]
fn terraform_creates_no_worker_subscription_the_topology_lacks() {
    let m = Module::read();
    let created: BTreeSet<String> = m.subscriptions().into_iter().map(|(n, _)| n).collect();
    let known: BTreeSet<String> = PUSH_SUBSCRIPTIONS
        .iter()
        .map(|s| s.name)
        .chain([DEAD_LETTER_REPLAY.name])
        .map(String::from)
        .collect();
    assert_eq!(created, known);
}

#[test]
fn each_push_subscription_is_deployed_as_the_topology_says() {
    let m = Module::read();
    for s in PUSH_SUBSCRIPTIONS {
        let tf = m.subscription(s.name);
        let topic = m.resolve_topic(&tf.attr("topic").expect("topic"));
        assert_eq!(topic, s.topic, "{}: topic", s.name);

        let endpoint = tf.block("push_config").attr("push_endpoint");
        let endpoint = endpoint.expect("push_endpoint");
        let route = unquote(&endpoint)
            .strip_prefix("${google_cloud_run_v2_service.worker.uri}")
            .unwrap_or_else(|| {
                panic!("{}: push_endpoint is not the service URL + a route", s.name)
            });
        assert_eq!(route, s.route, "{}: push route", s.name);

        let ack = tf
            .attr("ack_deadline_seconds")
            .expect("ack_deadline_seconds");
        assert_eq!(
            ack,
            format!("var.{}", s.ack_variable),
            "{}: ack variable",
            s.name
        );
        assert_eq!(m.seconds(&ack), s.ack_deadline, "{}: ack deadline", s.name);

        let retry = tf.block("retry_policy");
        let min = m.seconds(&retry.attr("minimum_backoff").expect("minimum_backoff"));
        let max = m.seconds(&retry.attr("maximum_backoff").expect("maximum_backoff"));
        assert_eq!((min, max), s.backoff, "{}: retry backoff", s.name);
        dead_letter_policy_matches(&m, &tf, s);
    }
}

fn dead_letter_policy_matches(m: &Module, tf: &Hcl, s: PushSubscription) {
    let policy = tf
        .blocks()
        .into_iter()
        .find(|(h, _)| h == "dead_letter_policy");
    match (s.dead_letter, policy) {
        (DeadLetter::ToDeadLetterTopic { floor }, Some((_, p))) => {
            let topic = m.resolve_topic(&p.attr("dead_letter_topic").expect("dead_letter_topic"));
            assert_eq!(topic, DEAD_LETTER_TOPIC, "{}: dead-letter topic", s.name);
            let attempts = p
                .attr("max_delivery_attempts")
                .expect("max_delivery_attempts");
            let attempts: i32 = match attempts.strip_prefix("var.") {
                Some(v) => m.var(v).parse().expect("a number"),
                None => attempts.parse().expect("a number"),
            };
            assert_eq!(attempts, MAX_DELIVERY_ATTEMPTS, "{}", s.name);
            if floor == AttemptFloor::PubSubMinimum {
                assert!(attempts >= MIN_DELIVERY_ATTEMPTS, "{}", s.name);
            }
        }
        (want, got) => panic!(
            "{}: dead-letter policy {want:?}, Terraform has {got:?}",
            s.name
        ),
    }
}

#[test]
fn the_replay_subscription_is_a_pull_subscription_on_the_dead_letter_topic() {
    let m = Module::read();
    let s = DEAD_LETTER_REPLAY;
    let tf = m.subscription(s.name);
    assert_eq!(m.resolve_topic(&tf.attr("topic").expect("topic")), s.topic);
    assert!(tf.blocks().iter().all(|(h, _)| h != "push_config"));
    let ack = tf
        .attr("ack_deadline_seconds")
        .expect("ack_deadline_seconds");
    assert_eq!(m.seconds(&ack), s.ack_deadline);
    let retention = tf.attr("message_retention_duration").expect("retention");
    assert_eq!(m.seconds(&retention), s.retention);
}

#[test]
fn cloud_run_probes_the_health_route() {
    let run = hcl::file("run.tf").0;
    let paths: Vec<&str> = run
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path"))
        .filter_map(|r| r.trim_start().strip_prefix('='))
        .map(|v| unquote(v.trim()))
        .collect();
    assert_eq!(
        paths,
        [HEALTHZ_ROUTE, HEALTHZ_ROUTE],
        "startup and liveness probes"
    );
}

#[test]
fn terraform_names_the_queues_and_the_drained_topic_as_the_topology_does() {
    let m = Module::read();
    assert_eq!(m.name("copy_start_queue"), STARTS_QUEUE.name);
    assert_eq!(m.name("copy_poll_queue"), POLLS_QUEUE.name);
    assert_eq!(m.name("operations_topic"), legacy::OPERATIONS_TOPIC);
    assert_eq!(
        m.name("operations_subscription"),
        legacy::OPERATIONS_SUBSCRIPTION
    );
}

/// The poll queue's rate in `tasks.tf` leaves the starts' reads, as `poll_rate_per_minute`
/// says, and the worker's dispatch deadline is the one Terraform sizes Cloud Run's timeout by.
#[test]
fn terraform_derives_the_poll_rate_and_the_dispatch_deadline_as_the_topology_does() {
    let m = Module::read();
    let locals: Vec<Hcl> = m
        .all
        .blocks()
        .into_iter()
        .filter(|(h, _)| h == "locals")
        .map(|(_, b)| b)
        .collect();
    let local = |key: &str| {
        locals
            .iter()
            .find_map(|b| b.attr(key))
            .unwrap_or_else(|| panic!("no local.{key}"))
    };
    let reads: f64 = local("reads_per_start").parse().expect("a number");
    assert_eq!(reads, READS_PER_START);
    assert_eq!(
        local("copy_poll_rate_per_minute"),
        "var.vertex_read_rate - local.reads_per_start * var.vertex_copy_rate"
    );
    let deadline: u64 = local("task_dispatch_deadline_seconds")
        .parse()
        .expect("a number");
    assert_eq!(Duration::from_secs(deadline), DISPATCH_DEADLINE);
}
