//! Pub/Sub through the official client (DESIGN.md §2): resource names, the connection
//! (emulator or ADC), and publishers for the topics the worker hands messages on to.
//!
//! A stage acks its delivery only after `publish` returned a message id, so every method
//! here resolves only once Pub/Sub has confirmed the message.
//!
//! - [`read`]: the CLI's one way to read a subscription without consuming what it leaves.

pub(crate) mod read;

use std::time::Duration;

use async_trait::async_trait;
use google_cloud_gax::client_builder::{ClientBuilder, Result as ClientBuilderResult};
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_pubsub::client::{
    BasePublisher, Publisher, SchemaService, Subscriber, SubscriptionAdmin, TopicAdmin,
};
use google_cloud_pubsub::model::Message;

pub use crate::contract::OutMessage;

/// The worker's outbound topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `copy-completions`: completion events.
    Completions,
    /// `copy-dead-letter`: requests that cannot be served.
    DeadLetter,
    /// `copy-requests`: where direct HTTP callers' requests are enqueued.
    Requests,
    /// `copy-callbacks`: webhook callbacks, each posted inside its own push delivery.
    Callbacks,
}

/// A publish that Pub/Sub did not confirm.
#[derive(Debug, thiserror::Error)]
#[error("publishing to {topic} failed: {source}")]
pub struct PublishError {
    /// Full topic name.
    pub topic: String,
    #[source]
    pub source: google_cloud_pubsub::error::PublishError,
}

impl PublishError {
    /// Whether Pub/Sub refused this message for good: INVALID_ARGUMENT, its answer to a
    /// message that breaks a limit (an attribute value over 1024 bytes, too many attributes,
    /// data over 10 MB; cloud.google.com/pubsub/quotas, "Resource limits"; google.rpc
    /// INVALID_ARGUMENT: "the client specified an invalid argument", not retryable). The same
    /// message fails on every try, so a stage that needs it must dead-letter its delivery
    /// instead of asking for a retry until the retention ends. Everything else (UNAVAILABLE,
    /// NOT_FOUND for a topic not made yet, a shutdown) may pass on a later try.
    pub fn is_permanent(&self) -> bool {
        match &self.source {
            google_cloud_pubsub::error::PublishError::Rpc(e) => e
                .status()
                .is_some_and(|s| s.code == google_cloud_gax::error::rpc::Code::InvalidArgument),
            _ => false,
        }
    }
}

/// Publishes to the worker's topics. A seam so tests can swap it; the integration tests use
/// [`PubSubTopics`] against the emulator.
#[async_trait]
pub trait Topics: Send + Sync {
    /// Publishes and waits for the message id.
    async fn publish(&self, topic: Topic, msg: OutMessage) -> Result<String, PublishError>;
    /// Sends whatever is buffered (shutdown).
    async fn flush(&self);
}

/// Full topic names, resolved from short names and `GOOGLE_CLOUD_PROJECT`.
#[derive(Debug, Clone)]
pub struct TopicNames {
    pub completions: String,
    pub dead_letter: String,
    pub requests: String,
    pub callbacks: String,
}

impl TopicNames {
    pub fn get(&self, t: Topic) -> &str {
        match t {
            Topic::Completions => &self.completions,
            Topic::DeadLetter => &self.dead_letter,
            Topic::Requests => &self.requests,
            Topic::Callbacks => &self.callbacks,
        }
    }
}

/// A topic or subscription name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// A short name, and no project to expand it with: set `GOOGLE_CLOUD_PROJECT` or
    /// `--project`, or give the full name.
    #[error(
        "short {singular} name {name:?} needs GOOGLE_CLOUD_PROJECT or --project (or give projects/P/{kind}/{letter})"
    )]
    NoProject {
        singular: &'static str,
        kind: &'static str,
        letter: &'static str,
        name: String,
    },
    /// Neither a short name nor `projects/P/{kind}/N`.
    #[error("{name:?} is not a {singular} name; use a short name or projects/P/{kind}/{letter}")]
    Malformed {
        singular: &'static str,
        kind: &'static str,
        letter: &'static str,
        name: String,
    },
}

/// Expands a short topic name (`copy-requests`) to `projects/{project}/topics/{name}`.
pub fn full_topic(name: &str, project: Option<&str>) -> Result<String, NameError> {
    full_name(("topics", "topic", "T"), name, project)
}

/// Expands a short subscription name to `projects/{project}/subscriptions/{name}`.
pub fn full_subscription(name: &str, project: Option<&str>) -> Result<String, NameError> {
    full_name(("subscriptions", "subscription", "S"), name, project)
}

/// A full name of `kind` is kept; a short one needs the project (`GOOGLE_CLOUD_PROJECT`).
fn full_name(
    (kind, singular, letter): (&'static str, &'static str, &'static str),
    name: &str,
    project: Option<&str>,
) -> Result<String, NameError> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["projects", p, k, n] if *k == kind && !p.is_empty() && !n.is_empty() => {
            Ok(name.to_owned())
        }
        [n] if !n.is_empty() => project
            .map(|p| format!("projects/{p}/{kind}/{n}"))
            .ok_or_else(|| NameError::NoProject {
                singular,
                kind,
                letter,
                name: name.to_owned(),
            }),
        _ => Err(NameError::Malformed {
            singular,
            kind,
            letter,
            name: name.to_owned(),
        }),
    }
}

/// What to check when a Pub/Sub call failed before the service answered (no status: DNS,
/// connect, TLS, timeout).
pub const UNREACHABLE_HINT: &str = "Pub/Sub was out of reach: check the network or proxy; against the local emulator, set PUBSUB_EMULATOR_HOST";

/// What to check when the emulator named by `PUBSUB_EMULATOR_HOST` did not answer: setting
/// the variable again would not help.
pub const EMULATOR_UNREACHABLE_HINT: &str = "the Pub/Sub emulator at PUBSUB_EMULATOR_HOST (--pubsub-emulator-host) did not answer: is it running, on that port?";

/// What to check when `e` never reached the service, on connection `conn`.
pub fn unreachable_hint(conn: &Connection, e: &google_cloud_pubsub::Error) -> Option<&'static str> {
    let hint = match conn.emulator_host {
        Some(_) => EMULATOR_UNREACHABLE_HINT,
        None => UNREACHABLE_HINT,
    };
    e.status().is_none().then_some(hint)
}

/// How long an admin call (create, get, delete, IAM) retries transient errors.
pub const ADMIN_RETRY_LIMIT: Duration = Duration::from_secs(20);

/// How the worker connects to Pub/Sub.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// `PUBSUB_EMULATOR_HOST`: `host:port` of the emulator, used anonymously.
    pub emulator_host: Option<String>,
    /// Credentials every client shares (one token cache), e.g. the ones
    /// [`super::credentials::check`] returned; `None`: each client builds its own ADC.
    pub credentials: Option<google_cloud_auth::credentials::Credentials>,
}

impl Connection {
    /// A base publisher: anonymous against the emulator, ADC otherwise. Publish retries are
    /// capped at 20 s so a stage asks for a retry well inside its ack deadline instead of hanging.
    pub async fn base_publisher(&self) -> ClientBuilderResult<BasePublisher> {
        let retry = google_cloud_pubsub::retry_policy::RetryableErrors
            .with_time_limit(Duration::from_secs(20));
        let mut b = BasePublisher::builder().with_retry_policy(retry);
        if let Some((endpoint, anonymous)) = self.emulator() {
            b = b.with_endpoint(endpoint).with_credentials(anonymous);
        } else if let Some(shared) = &self.credentials {
            b = b.with_credentials(shared.clone());
        }
        b.build().await
    }

    /// A streaming-pull subscriber: anonymous against the emulator, ADC otherwise.
    pub async fn subscriber(&self) -> ClientBuilderResult<Subscriber> {
        let mut b = Subscriber::builder();
        if let Some((endpoint, anonymous)) = self.emulator() {
            b = b.with_endpoint(endpoint).with_credentials(anonymous);
        } else if let Some(shared) = &self.credentials {
            b = b.with_credentials(shared.clone());
        }
        b.build().await
    }

    /// The subscription admin client (create, delete): anonymous against the emulator, ADC
    /// otherwise.
    pub async fn subscription_admin(&self) -> ClientBuilderResult<SubscriptionAdmin> {
        self.admin(SubscriptionAdmin::builder()).build().await
    }

    /// The topic admin client (get): anonymous against the emulator, ADC otherwise.
    pub async fn topic_admin(&self) -> ClientBuilderResult<TopicAdmin> {
        self.admin(TopicAdmin::builder()).build().await
    }

    /// The client that carries Pub/Sub's IAM methods (getIamPolicy, testIamPermissions on
    /// topics and subscriptions; the crate generates them on SchemaService only).
    pub async fn iam(&self) -> ClientBuilderResult<SchemaService> {
        self.admin(SchemaService::builder()).build().await
    }

    /// Points a generated admin client's builder at the emulator, when one is set, else gives
    /// it the shared credentials, when there are some. Retries stop after 20 s, as publishing
    /// does (the library's default is 60 s): a command facing an unreachable Pub/Sub says so
    /// within 20 s.
    fn admin<F, Cr>(&self, b: ClientBuilder<F, Cr>) -> ClientBuilder<F, Cr>
    where
        google_cloud_auth::credentials::Credentials: Into<Cr>,
    {
        let retry = google_cloud_gax::retry_policy::Aip194Strict
            .with_attempt_limit(10)
            .with_time_limit(ADMIN_RETRY_LIMIT);
        let b = b.with_retry_policy(retry);
        match (self.emulator(), &self.credentials) {
            (Some((endpoint, anonymous)), _) => {
                b.with_endpoint(endpoint).with_credentials(anonymous)
            }
            (None, Some(shared)) => b.with_credentials(shared.clone()),
            (None, None) => b,
        }
    }

    /// The emulator's endpoint and anonymous credentials, when `PUBSUB_EMULATOR_HOST` is set.
    fn emulator(&self) -> Option<(String, google_cloud_auth::credentials::Credentials)> {
        self.emulator_host.as_ref().map(|host| {
            (
                format!("http://{host}"),
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            )
        })
    }
}

/// [`Topics`] over the official Pub/Sub publisher.
pub struct PubSubTopics {
    names: TopicNames,
    completions: Publisher,
    dead_letter: Publisher,
    requests: Publisher,
    callbacks: Publisher,
}

impl PubSubTopics {
    pub async fn new(
        conn: &Connection,
        names: TopicNames,
    ) -> Result<Self, google_cloud_gax::client_builder::Error> {
        let base = conn.base_publisher().await?;
        // Small batches, short delay: every publish is awaited by a waiting push request.
        let make = |t: &str| {
            base.publisher(t)
                .set_delay_threshold(Duration::from_millis(2))
                .build()
        };
        Ok(Self {
            completions: make(&names.completions),
            dead_letter: make(&names.dead_letter),
            requests: make(&names.requests),
            callbacks: make(&names.callbacks),
            names,
        })
    }

    fn publisher(&self, t: Topic) -> &Publisher {
        match t {
            Topic::Completions => &self.completions,
            Topic::DeadLetter => &self.dead_letter,
            Topic::Requests => &self.requests,
            Topic::Callbacks => &self.callbacks,
        }
    }
}

/// Converts an [`OutMessage`] into the client's message type.
pub fn to_message(msg: OutMessage) -> Message {
    Message::new()
        .set_data(bytes::Bytes::from(msg.data))
        .set_attributes(msg.attributes)
}

#[async_trait]
impl Topics for PubSubTopics {
    async fn publish(&self, topic: Topic, msg: OutMessage) -> Result<String, PublishError> {
        self.publisher(topic)
            .publish(to_message(msg))
            .await
            .map_err(|source| PublishError {
                topic: self.names.get(topic).to_owned(),
                source,
            })
    }

    async fn flush(&self) {
        for t in [
            Topic::Completions,
            Topic::DeadLetter,
            Topic::Requests,
            Topic::Callbacks,
        ] {
            self.publisher(t).flush().await;
        }
    }
}

#[cfg(test)]
mod tests;
