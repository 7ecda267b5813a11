//! One replay run: the resolved flags, the errors that stop a run, and the clients it uses.

use std::time::Duration;

use google_cloud_gax::error::rpc::Code;
use google_cloud_pubsub::client::{Publisher, Subscriber};
use google_cloud_pubsub::error::PublishError;

use super::rules::Rules;
use crate::cli::exit;
use crate::clients::pubsub::Connection;

/// One run, resolved from the flags.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Full name of the dead-letter subscription.
    pub subscription: String,
    /// Full name of the topic to republish to.
    pub topic: String,
    pub rules: Rules,
    /// Stop after this many matching messages.
    pub limit: Option<u64>,
    /// Messages per second over the whole run.
    pub rate: Option<f64>,
    /// Stop after this long without a message not seen before (and nothing in flight).
    pub idle_timeout: Duration,
    pub dry_run: bool,
    pub conn: Connection,
}

/// Why a run stopped early. Every dead letter not yet replayed is left on the subscription.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The Pub/Sub clients could not be built (credentials, endpoint).
    #[error("cannot connect to Pub/Sub: {0}")]
    Connect(String),
    /// Reading the dead-letter subscription failed; check that it exists and that the caller
    /// may consume it.
    #[error("reading {subscription} failed: {message}")]
    Pull {
        subscription: String,
        message: String,
    },
    /// The target topic does not exist (checked before reading): nothing was read or moved.
    #[error(
        "the target topic {topic} does not exist; nothing was read or moved (create it, or name another with --topic)"
    )]
    TopicNotFound { topic: String },
    /// Ctrl-C or SIGTERM stopped the run: the republishes under way finished, and the rest
    /// is still on the subscription; the same command carries on.
    #[error(
        "interrupted ({by}): every dead letter not yet replayed is still on {subscription}; run the same command again to carry on"
    )]
    Interrupted {
        by: &'static str,
        subscription: String,
    },
    /// A republish failed, so the run stopped; fix the target topic and run again.
    #[error("{}", publish_message(.topic, .message, *.not_found))]
    Publish {
        topic: String,
        message: String,
        not_found: bool,
    },
}

fn publish_message(topic: &str, message: &str, not_found: bool) -> String {
    let hint = if not_found {
        "the target topic does not exist; "
    } else {
        ""
    };
    format!(
        "republishing to {topic} failed ({hint}{message}); the run stopped and every dead letter \
         not yet replayed was left on the subscription"
    )
}

impl ReplayError {
    /// Exit code of `copy-worker replay`: 3 when interrupted, as a wait is; every other stop
    /// is a Pub/Sub error (4), as for `publish`.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReplayError::Interrupted { .. } => exit::TIMEOUT,
            _ => exit::PUBSUB,
        }
    }
}

/// The clients of a run: a subscriber, and a publisher unless it is a dry run.
pub(super) async fn connect(plan: &Plan) -> Result<(Subscriber, Option<Publisher>), ReplayError> {
    let connect_err = |e: &dyn std::fmt::Display| ReplayError::Connect(e.to_string());
    let subscriber = plan.conn.subscriber().await.map_err(|e| connect_err(&e))?;
    if plan.dry_run {
        return Ok((subscriber, None));
    }
    check_topic(plan).await?;
    let base = plan
        .conn
        .base_publisher()
        .await
        .map_err(|e| connect_err(&e))?;
    let publisher = base
        .publisher(plan.topic.clone())
        .set_delay_threshold(Duration::from_millis(5))
        .build();
    Ok((subscriber, Some(publisher)))
}

/// A target topic that does not exist stops the run before anything is read (also on an
/// empty subscription, where no republish would reveal it). A caller that may publish but not
/// read the topic's metadata (`roles/pubsub.publisher` alone) gets PERMISSION_DENIED: then
/// the first republish is the check.
async fn check_topic(plan: &Plan) -> Result<(), ReplayError> {
    let admin = plan
        .conn
        .topic_admin()
        .await
        .map_err(|e| ReplayError::Connect(e.to_string()))?;
    match admin.get_topic().set_topic(&plan.topic).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.status().is_some_and(|s| s.code == Code::NotFound) => {
            Err(ReplayError::TopicNotFound {
                topic: plan.topic.clone(),
            })
        }
        Err(e) => {
            tracing::debug!(error.message = %e, "cannot read the target topic; the first republish will tell");
            Ok(())
        }
    }
}

impl ReplayError {
    /// A failed republish; `NOT_FOUND` gets a hint that the topic is missing.
    pub fn publish(topic: &str, e: &PublishError) -> Self {
        let not_found = match e {
            PublishError::Rpc(rpc) => rpc.status().is_some_and(|s| s.code == Code::NotFound),
            _ => false,
        };
        ReplayError::Publish {
            topic: topic.to_owned(),
            message: e.to_string(),
            not_found,
        }
    }
}
