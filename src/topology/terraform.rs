//! The Terraform module against [`crate::topology`] (docs/DESIGN.md §2, §12): the names it
//! creates by default, the routes its push subscriptions post to, their ack deadlines,
//! backoffs and dead-letter policies. A rename on either side fails here.

use std::collections::BTreeSet;
use std::time::Duration;

use hcl::{Body, Expression};

use super::tf_files::{self as tf, attr, block, blocks, entries};
use super::*;

/// The module, with what the tests look up in it.
struct Module {
    all: Body,
}

impl Module {
    fn read() -> Module {
        Module { all: tf::module() }
    }

    /// The default of `names.<key>` (variables.tf: `key = optional(string, "value")` in the
    /// variable's `object({ … })` type).
    fn name(&self, key: &str) -> String {
        let ty = attr(block(&self.all, "variable", &["names"]), "type").expect("names' type");
        let Expression::FuncCall(object) = ty else {
            panic!("names' type is not object({{ … }}): {ty}")
        };
        let field = object
            .args
            .first()
            .and_then(|fields| tf::entry(fields, key))
            .unwrap_or_else(|| panic!("no names.{key} in variables.tf"));
        match field {
            Expression::FuncCall(f)
                if f.name.name.as_str() == "optional"
                    && f.args.len() == 2
                    && f.args[0].to_string() == "string" =>
            {
                tf::string(&f.args[1]).to_owned()
            }
            _ => panic!("names.{key} has no string default: {field}"),
        }
    }

    /// A name as a resource spells it: `local.names.KEY`, resolved to its default.
    fn resolve_name(&self, value: &Expression) -> Option<String> {
        let value = value.to_string();
        value.strip_prefix("local.names.").map(|k| self.name(k))
    }

    /// A topic reference, `google_pubsub_topic.topic["KEY"].id`, resolved to its default name
    /// through `local.topics` (pubsub.tf).
    fn resolve_topic(&self, value: &Expression) -> String {
        let value = value.to_string();
        let key = value
            .strip_prefix("google_pubsub_topic.topic[\"")
            .and_then(|r| r.strip_suffix("\"].id"))
            .unwrap_or_else(|| panic!("not one of the worker's topics: {value}"));
        let name =
            tf::entry(self.local("topics"), key).unwrap_or_else(|| panic!("no local.topics.{key}"));
        self.resolve_name(name)
            .unwrap_or_else(|| panic!("local.topics.{key} is not a default name: {name}"))
    }

    /// `local.NAME`, from whichever `locals` block sets it.
    fn local(&self, name: &str) -> &Expression {
        let found: Vec<&Expression> = blocks(&self.all, "locals", &[])
            .filter_map(|b| attr(b, name))
            .collect();
        assert_eq!(found.len(), 1, "expected one local.{name}");
        found[0]
    }

    /// The default of `var.NAME`.
    fn var(&self, name: &str) -> &Expression {
        attr(block(&self.all, "variable", &[name]), "default")
            .unwrap_or_else(|| panic!("var.{name} has no default"))
    }

    /// A number of seconds: a literal, `var.X`, or `"${var.X}s"`.
    fn seconds(&self, value: &Expression) -> Duration {
        let written = value.to_string();
        let value = written
            .strip_prefix("\"${")
            .and_then(|v| v.strip_suffix("}s\""))
            .unwrap_or(&written);
        if let Some(v) = value.strip_prefix("var.") {
            return self.seconds(self.var(v));
        }
        let number = value.trim_matches('"').trim_end_matches('s');
        Duration::from_secs(number.parse().unwrap_or_else(|e| panic!("{value}: {e}")))
    }

    /// Every subscription with a default name, by that name.
    fn subscriptions(&self) -> Vec<(String, &Body)> {
        blocks(&self.all, "resource", &["google_pubsub_subscription"])
            .filter_map(|b| Some((self.resolve_name(attr(b, "name")?)?, b)))
            .collect()
    }

    fn subscription(&self, name: &str) -> &Body {
        self.subscriptions()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("Terraform creates no subscription named {name}"))
    }
}

/// A quoted template without its quotes (`"${a}/b"` → `${a}/b`).
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a quoted string: {value}"))
}

#[test]
fn terraform_creates_the_topics_of_the_topology() {
    let m = Module::read();
    let created: BTreeSet<String> = entries(m.local("topics"))
        .into_iter()
        .map(|(_, v)| m.resolve_name(v).expect("local.names.*"))
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
        let topic = m.resolve_topic(attr(tf, "topic").expect("topic"));
        assert_eq!(topic, s.topic, "{}: topic", s.name);

        let endpoint = attr(block(tf, "push_config", &[]), "push_endpoint");
        let endpoint = endpoint.expect("push_endpoint").to_string();
        let route = unquote(&endpoint)
            .strip_prefix("${google_cloud_run_v2_service.worker.uri}")
            .unwrap_or_else(|| {
                panic!("{}: push_endpoint is not the service URL + a route", s.name)
            });
        assert_eq!(route, s.route, "{}: push route", s.name);

        let ack = attr(tf, "ack_deadline_seconds").expect("ack_deadline_seconds");
        assert_eq!(
            ack.to_string(),
            format!("var.{}", s.ack_variable),
            "{}: ack variable",
            s.name
        );
        assert_eq!(m.seconds(ack), s.ack_deadline, "{}: ack deadline", s.name);

        let retry = block(tf, "retry_policy", &[]);
        let min = m.seconds(attr(retry, "minimum_backoff").expect("minimum_backoff"));
        let max = m.seconds(attr(retry, "maximum_backoff").expect("maximum_backoff"));
        assert_eq!((min, max), s.backoff, "{}: retry backoff", s.name);
        dead_letter_policy_matches(&m, tf, s);
    }
}

fn dead_letter_policy_matches(m: &Module, tf: &Body, s: PushSubscription) {
    let policy = blocks(tf, "dead_letter_policy", &[]).next();
    match (s.dead_letter, policy) {
        (DeadLetter::ToDeadLetterTopic { floor }, Some(p)) => {
            let topic = m.resolve_topic(attr(p, "dead_letter_topic").expect("dead_letter_topic"));
            assert_eq!(topic, DEAD_LETTER_TOPIC, "{}: dead-letter topic", s.name);
            let attempts = attr(p, "max_delivery_attempts").expect("max_delivery_attempts");
            let attempts = attempts.to_string();
            let attempts: i32 = match attempts.strip_prefix("var.") {
                Some(v) => m.var(v).to_string().parse().expect("a number"),
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
    assert_eq!(m.resolve_topic(attr(tf, "topic").expect("topic")), s.topic);
    assert_eq!(blocks(tf, "push_config", &[]).count(), 0);
    let ack = attr(tf, "ack_deadline_seconds").expect("ack_deadline_seconds");
    assert_eq!(m.seconds(ack), s.ack_deadline);
    let retention = attr(tf, "message_retention_duration").expect("retention");
    assert_eq!(m.seconds(retention), s.retention);
}

/// Every attribute `key`, at any depth of blocks.
fn attrs_anywhere<'a>(body: &'a Body, key: &str, out: &mut Vec<&'a Expression>) {
    out.extend(attr(body, key));
    for b in body.blocks() {
        attrs_anywhere(b.body(), key, out);
    }
}

#[test]
fn cloud_run_probes_the_health_route() {
    let run = tf::file("run.tf");
    let mut paths = Vec::new();
    attrs_anywhere(&run, "path", &mut paths);
    let paths: Vec<&str> = paths.into_iter().map(tf::string).collect();
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
    let number = |key: &str| m.local(key).to_string();
    let reads: f64 = number("reads_per_start").parse().expect("a number");
    assert_eq!(reads, READS_PER_START);
    assert_eq!(
        number("copy_poll_rate_per_minute"),
        "var.vertex_read_rate - local.reads_per_start * var.vertex_copy_rate"
    );
    let deadline: u64 = number("task_dispatch_deadline_seconds")
        .parse()
        .expect("a number");
    assert_eq!(Duration::from_secs(deadline), DISPATCH_DEADLINE);
}
