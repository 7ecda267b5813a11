//! Creates the Pub/Sub topology of DESIGN.md §2 on the emulator and publishes test messages.
//!
//! Everything goes through the official `google-cloud-pubsub` client, pointed at the emulator
//! with anonymous credentials, exactly as the worker does when `PUBSUB_EMULATOR_HOST` is set.
//!
//! # What the emulator does (checked by `testkit/tests/emulator.rs`)
//! - It accepts push subscriptions with a retry policy *and* a dead-letter policy, and honours
//!   both: a push answered with any non-2xx is redelivered after roughly the retry backoff (with
//!   backoff 1 s–2 s: 1 s, then about 3 s between attempts; its push loop is coarse), and after
//!   `max_delivery_attempts` deliveries the message is published to the dead-letter topic with
//!   `CloudPubSubDeadLetterSource{DeliveryCount,Subscription,SubscriptionProject,TopicPublishTime}`
//!   attributes (`…Subscription` is the short name). Like the real service it refuses
//!   `max_delivery_attempts` below 5 (`OUT_OF_RANGE`), so a dead-letter test takes ≥ 5 pushes.
//! - Push requests carry no `Authorization` header (no OIDC token) and no `deliveryAttempt`.
//! - The push envelope is
//!   `{"subscription":"projects/p/subscriptions/s","message":{"data":"<base64>","attributes":{..},
//!   "messageId":"1","message_id":"1","publishTime":"…Z","publish_time":"…Z"}}`: both spellings
//!   of the id and time, `attributes` present (`{}`) even when empty, and `/` escaped as `\/`
//!   inside strings, which any JSON parser accepts. Message ids are small sequential numbers
//!   shared by all projects of one emulator.

mod inbox;

pub use inbox::{Inbox, Received};

use anyhow::Context;
use copy_worker::topology::{
    self, CALLBACKS_PUSH, DEAD_LETTER_REPLAY, DeadLetter, PushSubscription, REQUESTS_PUSH,
};
use google_cloud_gax::error::rpc::Code;
use google_cloud_pubsub::client::{Publisher, SubscriptionAdmin, TopicAdmin};
use google_cloud_pubsub::model::{DeadLetterPolicy, Message, PushConfig, RetryPolicy};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Topic names of DESIGN.md §2, from `copy_worker::topology`.
pub const COPY_REQUESTS: &str = topology::REQUESTS_TOPIC;
/// The previous release's topic of watch messages (upgrade tests only).
pub const COPY_OPERATIONS: &str = topology::legacy::OPERATIONS_TOPIC;
/// Topic of completion events.
pub const COPY_COMPLETIONS: &str = topology::COMPLETIONS_TOPIC;
/// Dead-letter topic.
pub const COPY_DEAD_LETTER: &str = topology::DEAD_LETTER_TOPIC;
/// Push subscription of the request stage.
pub const COPY_REQUESTS_PUSH: &str = REQUESTS_PUSH.name;
/// The previous release's push subscription of watch messages (upgrade tests only).
pub const COPY_OPERATIONS_PUSH: &str = topology::legacy::OPERATIONS_SUBSCRIPTION;
/// Internal topic of webhook callbacks (DESIGN.md §7).
pub const COPY_CALLBACKS: &str = topology::CALLBACKS_TOPIC;
/// Its push subscription, to `/pubsub/copy-callbacks`, dead-lettering like `copy-requests-push`.
pub const COPY_CALLBACKS_PUSH: &str = CALLBACKS_PUSH.name;
/// Pull subscription that `copy-worker replay` reads.
pub const COPY_DEAD_LETTER_REPLAY: &str = DEAD_LETTER_REPLAY.name;
/// Pull subscription that sees every completion event (tests and the demo only).
pub const COPY_COMPLETIONS_ALL: &str = "copy-completions-all";

/// Settings of [`Topology::create`]; `Default` gives the values of DESIGN.md §2.
#[derive(Clone, Debug)]
pub struct TopologyOptions {
    /// Base URL of the worker; push endpoints are `{base}/pubsub/copy-requests` and
    /// `{base}/pubsub/copy-callbacks`.
    pub push_base_url: String,
    /// Ack deadline of `copy-requests-push`.
    pub request_ack_deadline: Duration,
    /// Minimum and maximum retry backoff of `copy-requests-push`.
    pub request_backoff: (Duration, Duration),
    /// Deliveries of a request before Pub/Sub dead-letters it (5 to 100, also on the emulator).
    pub max_delivery_attempts: i32,
    /// Also create the previous release's `copy-operations` and `copy-operations-push`
    /// (pushing to `/pubsub/copy-operations`, no dead-letter policy): an upgrade in progress.
    pub legacy_operations: bool,
    /// `false` leaves out `copy-completions` (and `copy-completions-all`) so that a test can
    /// simulate a missing topic and create both later with [`Topology::create_topic`] and
    /// [`Topology::create_pull_subscription`].
    pub create_completions_topic: bool,
    /// Message retention of `copy-completions`, as Terraform sets it (7 days), so that a new
    /// subscription seeked back finds earlier events (`status`, `wait`). `None`: no retention,
    /// the topic's default. The emulator retains only for a topic created with it.
    pub completions_retention: Option<Duration>,
    /// The OIDC token the push subscriptions are configured to send, as the Terraform module
    /// sets it. The emulator stores it and returns it from GetSubscription, but sends no
    /// token with its pushes (DESIGN.md §8), so a worker under test runs with PUSH_AUTH=none;
    /// `copy-worker doctor` reads it.
    pub push_oidc: Option<PushOidc>,
}

/// `pushConfig.oidcToken` of a push subscription.
#[derive(Clone, Debug)]
pub struct PushOidc {
    pub service_account_email: String,
    /// Empty means the push endpoint URL, as on the real service.
    pub audience: String,
}

impl Default for TopologyOptions {
    fn default() -> Self {
        Self {
            push_base_url: "http://127.0.0.1:8080".into(),
            request_ack_deadline: REQUESTS_PUSH.ack_deadline,
            request_backoff: REQUESTS_PUSH.backoff,
            max_delivery_attempts: topology::MAX_DELIVERY_ATTEMPTS,
            legacy_operations: false,
            create_completions_topic: true,
            completions_retention: None,
            push_oidc: None,
        }
    }
}

/// Admin and publish access to one project on the emulator.
///
/// The clients it holds run background tasks on the tokio runtime that created them, so use a
/// `Topology` within one runtime (one test).
#[derive(Debug)]
pub struct Topology {
    /// Project id on the emulator (a fresh one per test keeps tests apart).
    pub project: String,
    /// Emulator endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    topics: TopicAdmin,
    subscriptions: SubscriptionAdmin,
    /// One batching publisher per topic, built on first use.
    publishers: Mutex<HashMap<String, Publisher>>,
}

impl Topology {
    /// Creates the topics and subscriptions of DESIGN.md §2 in `project`.
    pub async fn create(
        emulator_endpoint: &str,
        project: &str,
        opts: &TopologyOptions,
    ) -> anyhow::Result<Topology> {
        let topology = Self::connect(emulator_endpoint, project).await?;
        for topic in [COPY_REQUESTS, COPY_DEAD_LETTER, COPY_CALLBACKS] {
            topology.create_topic(topic).await?;
        }
        for spec in [REQUESTS_PUSH, CALLBACKS_PUSH] {
            topology.create_push(&spec, opts).await?;
        }
        if opts.legacy_operations {
            topology.create_legacy_operations(opts).await?;
        }
        let replay = topology
            .subscriptions
            .create_subscription()
            .set_name(topology.subscription(COPY_DEAD_LETTER_REPLAY))
            .set_topic(topology.topic(DEAD_LETTER_REPLAY.topic))
            .set_ack_deadline_seconds(DEAD_LETTER_REPLAY.ack_deadline.as_secs() as i32)
            .set_message_retention_duration(wkt_duration(DEAD_LETTER_REPLAY.retention));
        ignore_already_exists(replay.send().await)
            .with_context(|| format!("creating {COPY_DEAD_LETTER_REPLAY}"))?;
        if opts.create_completions_topic {
            let completions = topology
                .topics
                .create_topic()
                .set_name(topology.topic(COPY_COMPLETIONS))
                .set_or_clear_message_retention_duration(
                    opts.completions_retention.map(wkt_duration),
                );
            ignore_already_exists(completions.send().await)
                .with_context(|| format!("creating topic {COPY_COMPLETIONS}"))?;
            topology
                .create_pull_subscription(COPY_COMPLETIONS_ALL, COPY_COMPLETIONS)
                .await?;
        }
        Ok(topology)
    }

    /// Connects to `project` on the emulator without creating anything.
    pub async fn connect(emulator_endpoint: &str, project: &str) -> anyhow::Result<Topology> {
        let topics = TopicAdmin::builder()
            .with_endpoint(emulator_endpoint)
            .with_credentials(anonymous())
            .build()
            .await
            .context("building TopicAdmin for the emulator")?;
        let subscriptions = SubscriptionAdmin::builder()
            .with_endpoint(emulator_endpoint)
            .with_credentials(anonymous())
            .build()
            .await
            .context("building SubscriptionAdmin for the emulator")?;
        Ok(Topology {
            project: project.to_string(),
            endpoint: emulator_endpoint.to_string(),
            topics,
            subscriptions,
            publishers: Mutex::new(HashMap::new()),
        })
    }

    /// `projects/{project}/topics/{short}`; a name that is already full is returned unchanged.
    pub fn topic(&self, short: &str) -> String {
        full_name(&self.project, "topics", short)
    }

    /// `projects/{project}/subscriptions/{short}`; full names are returned unchanged.
    pub fn subscription(&self, short: &str) -> String {
        full_name(&self.project, "subscriptions", short)
    }

    /// Creates a topic; one that already exists is fine.
    pub async fn create_topic(&self, short: &str) -> anyhow::Result<()> {
        let result = self
            .topics
            .create_topic()
            .set_name(self.topic(short))
            .send()
            .await;
        ignore_already_exists(result).with_context(|| format!("creating topic {short}"))
    }

    /// Deletes a topic; one that does not exist is fine. Its subscriptions stay, detached.
    pub async fn delete_topic(&self, short: &str) -> anyhow::Result<()> {
        self.publishers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.topic(short));
        match self
            .topics
            .delete_topic()
            .set_topic(self.topic(short))
            .send()
            .await
        {
            Err(e) if e.status().is_some_and(|s| s.code == Code::NotFound) => Ok(()),
            other => other.with_context(|| format!("deleting topic {short}")),
        }
    }

    /// Creates a pull subscription (ack deadline 60 s); one that already exists is fine.
    pub async fn create_pull_subscription(
        &self,
        short_sub: &str,
        short_topic: &str,
    ) -> anyhow::Result<()> {
        let result = self
            .subscriptions
            .create_subscription()
            .set_name(self.subscription(short_sub))
            .set_topic(self.topic(short_topic))
            .set_ack_deadline_seconds(60)
            .send()
            .await;
        ignore_already_exists(result)
            .with_context(|| format!("creating subscription {short_sub} on {short_topic}"))
    }

    /// Publishes one message and returns its message id once the emulator has stored it.
    pub async fn publish(
        &self,
        short_topic: &str,
        data: &[u8],
        attributes: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let publisher = self.publisher(short_topic).await?;
        let message = Message::new().set_data(data.to_vec()).set_attributes(
            attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        publisher
            .publish(message)
            .await
            .with_context(|| format!("publishing to {short_topic}"))
    }

    /// Ends the emulator's leftover streaming pulls on a pull subscription (full or short
    /// name) and releases every message they hold, so that the next reader sees at once what
    /// the real service would hand it when the earlier reader's lease ran out.
    ///
    /// Why a test needs this (emulator 0.8.20, read from its bytecode with `javap -c -p`):
    /// - When a streaming pull's client goes away without half-closing first (a process exit,
    ///   a dropped stream), the emulator's gRPC layer throws `NoSuchMethodError` in
    ///   `ServerImpl$JumpToApplicationThreadServerStreamListener.closedInternal` (a gRPC
    ///   version mismatch inside the jar), so the call's cancel never reaches
    ///   `FakePubsubServer$StreamingPullRequestObserver` and its
    ///   `FakePubsubServer$StreamingPullPusher` thread runs on: every 50 ms it pulls from the
    ///   subscription and writes to the dead call, where the messages vanish.
    /// - `MessageBacklog.streamingPull` ignores the stream id: whichever pusher polls first
    ///   takes the batch and leases it for its stream's deadline. Expired leases go back only
    ///   when some pull runs (`updateExpiredAckDeadlines`), so the dead pusher, polling on its
    ///   own rhythm, often wins again. Measured: a new reader got a message 10, 30 or 50 s
    ///   (and in one CI run, not within 120 s) after a 10 s-lease reader died.
    /// - A pusher leaves its loop only when `checkSubscription` fails, which it does once the
    ///   subscription has a push endpoint (`FAILED_PRECONDITION`); and a Seek to a time before
    ///   every message marks them all unacked, dropping their leases.
    ///
    /// So this sets a push endpoint nobody listens on, waits for the dead pushers to see it,
    /// makes the subscription pull again and seeks it to 1970. Any live reader's stream ends
    /// too, and acked messages stay acked (no test subscription retains acked messages).
    pub async fn release_closed_streams(&self, subscription: &str) -> anyhow::Result<()> {
        let name = if subscription.starts_with("projects/") {
            subscription.to_owned()
        } else {
            self.subscription(subscription)
        };
        // Port 9 (discard): nothing listens there on a test machine; the emulator's push loop
        // may try it once, and the Seek below returns whatever it leased meanwhile.
        let dead = PushConfig::new().set_push_endpoint("http://127.0.0.1:9/released");
        self.subscriptions
            .modify_push_config()
            .set_subscription(&name)
            .set_push_config(dead)
            .send()
            .await
            .with_context(|| format!("pointing {name} at a dead push endpoint"))?;
        // The pushers check every 50 ms; a loaded machine gets 20 times that.
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.subscriptions
            .modify_push_config()
            .set_subscription(&name)
            .set_push_config(PushConfig::new())
            .send()
            .await
            .with_context(|| format!("making {name} a pull subscription again"))?;
        self.subscriptions
            .seek()
            .set_subscription(&name)
            .set_time(google_cloud_wkt::Timestamp::clamp(0, 0))
            .send()
            .await
            .with_context(|| format!("seeking {name} to 1970"))?;
        Ok(())
    }

    /// The official subscription admin client, for checks this type has no helper for.
    pub fn subscription_admin(&self) -> &SubscriptionAdmin {
        &self.subscriptions
    }

    /// The official topic admin client.
    pub fn topic_admin(&self) -> &TopicAdmin {
        &self.topics
    }

    async fn publisher(&self, short_topic: &str) -> anyhow::Result<Publisher> {
        let topic = self.topic(short_topic);
        if let Some(p) = self
            .publishers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&topic)
        {
            return Ok(p.clone());
        }
        let publisher = Publisher::builder(topic.clone())
            .with_endpoint(&self.endpoint)
            .with_credentials(anonymous())
            .set_delay_threshold(Duration::ZERO)
            .build()
            .await
            .with_context(|| format!("building publisher for {topic}"))?;
        self.publishers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic, publisher.clone());
        Ok(publisher)
    }

    /// The previous release's watch topic and its push subscription, as that release's
    /// Terraform made them (ack deadline 300 s, retry 10–60 s, no dead-letter policy), with
    /// `opts`' backoff so that a test sees its redeliveries in seconds.
    async fn create_legacy_operations(&self, opts: &TopologyOptions) -> anyhow::Result<()> {
        self.create_topic(COPY_OPERATIONS).await?;
        let base = opts.push_base_url.trim_end_matches('/');
        let create = self.push_subscription(
            COPY_OPERATIONS_PUSH,
            COPY_OPERATIONS,
            &format!("{base}{}", topology::legacy::OPERATIONS_ROUTE),
            Duration::from_secs(300),
            opts.request_backoff,
            opts.push_oidc.as_ref(),
        );
        ignore_already_exists(create.send().await)
            .with_context(|| format!("creating {COPY_OPERATIONS_PUSH}"))
    }

    /// One of the worker's push subscriptions, as `spec` describes it, with `opts`' deadlines
    /// and backoffs (as Terraform sets them).
    async fn create_push(
        &self,
        spec: &PushSubscription,
        opts: &TopologyOptions,
    ) -> anyhow::Result<()> {
        let base = opts.push_base_url.trim_end_matches('/');
        let mut create = self.push_subscription(
            spec.name,
            spec.topic,
            &format!("{base}{}", spec.route),
            opts.request_ack_deadline,
            opts.request_backoff,
            opts.push_oidc.as_ref(),
        );
        {
            let DeadLetter::ToDeadLetterTopic { .. } = spec.dead_letter;
            create = create.set_dead_letter_policy(
                DeadLetterPolicy::new()
                    .set_dead_letter_topic(self.topic(COPY_DEAD_LETTER))
                    .set_max_delivery_attempts(opts.max_delivery_attempts),
            );
        }
        ignore_already_exists(create.send().await)
            .with_context(|| format!("creating {}", spec.name))
    }

    fn push_subscription(
        &self,
        short_sub: &str,
        short_topic: &str,
        push_endpoint: &str,
        ack_deadline: Duration,
        (min_backoff, max_backoff): (Duration, Duration),
        oidc: Option<&PushOidc>,
    ) -> google_cloud_pubsub::builder::subscription_admin::CreateSubscription {
        let mut push = PushConfig::new().set_push_endpoint(push_endpoint);
        if let Some(o) = oidc {
            push = push.set_oidc_token(
                google_cloud_pubsub::model::push_config::OidcToken::new()
                    .set_service_account_email(&o.service_account_email)
                    .set_audience(&o.audience),
            );
        }
        self.subscriptions
            .create_subscription()
            .set_name(self.subscription(short_sub))
            .set_topic(self.topic(short_topic))
            .set_push_config(push)
            .set_ack_deadline_seconds(ack_deadline.as_secs() as i32)
            .set_retry_policy(
                RetryPolicy::new()
                    .set_minimum_backoff(wkt_duration(min_backoff))
                    .set_maximum_backoff(wkt_duration(max_backoff)),
            )
    }
}

/// Anonymous credentials: the emulator accepts no others, and none should be sent to it.
pub fn anonymous() -> google_cloud_auth::credentials::Credentials {
    google_cloud_auth::credentials::anonymous::Builder::new().build()
}

fn full_name(project: &str, kind: &str, short: &str) -> String {
    if short.starts_with("projects/") {
        short.to_string()
    } else {
        format!("projects/{project}/{kind}/{short}")
    }
}

fn wkt_duration(d: Duration) -> google_cloud_wkt::Duration {
    google_cloud_wkt::Duration::clamp(d.as_secs() as i64, d.subsec_nanos() as i32)
}

fn ignore_already_exists<T>(result: google_cloud_pubsub::Result<T>) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.status().is_some_and(|s| s.code == Code::AlreadyExists) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
