//! A waiter's own pull subscription on `copy-completions`: filtered to its request ids,
//! expiring on its own if the waiter dies, deleted when the waiter exits.
//!
//! Each waiter reading its own subscription is what lets it ack every event it reads: other
//! waiters get their own copy of every event from their own subscriptions, so nothing is handed
//! back and nothing circles between waiters (issue #14).
//!
//! The filter only saves traffic; correctness never depends on it. Pub/Sub limits a filter to
//! 256 bytes (<https://cloud.google.com/pubsub/docs/subscription-message-filter>), so a long
//! list of ids is narrowed by their common prefix instead, or not at all. The local emulator
//! accepts filters but does not apply them (tests/it/publish.rs shows it), so the waiter
//! checks each event's `request_id` itself as well.

use std::time::Duration;

use google_cloud_pubsub::client::SubscriptionAdmin;
use google_cloud_pubsub::model::ExpirationPolicy;

use super::pubsub::Connection;
use crate::contract::attr;
use crate::domain::sha256_hex;

/// Pub/Sub's limit on a filter expression.
pub const MAX_FILTER_BYTES: usize = 256;

/// Pub/Sub's shortest allowed expiration TTL: an abandoned subscription is deleted a day after
/// its last use.
pub const EXPIRATION_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a read event stays leased before Pub/Sub offers it again: Pub/Sub's minimum. A
/// waiter acks each event as soon as it reads it (the client extends the lease meanwhile),
/// so a short deadline costs nothing, and an event leased to a waiter that died is offered to
/// the next reader of a kept subscription (`copy-worker wait --subscription`) within seconds,
/// not a minute. (The local emulator keeps a dead waiter's stream taking events for far
/// longer; docs/reliability.md.)
const ACK_DEADLINE_SECS: i32 = 10;

/// Creating or deleting the subscription failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TempSubscriptionError {
    #[error("connecting to Pub/Sub: {0}")]
    Connect(#[from] google_cloud_gax::client_builder::Error),
    /// Typically the topic does not exist, the caller lacks `pubsub.subscriptions.create` on
    /// the project or `pubsub.topics.attachSubscription` on the topic, or Pub/Sub is out of
    /// reach; `hint` says which fix applies.
    #[error("creating subscription {name} on {topic}: {source} ({hint})")]
    Create {
        name: String,
        topic: String,
        hint: &'static str,
        #[source]
        source: google_cloud_pubsub::Error,
    },
    #[error("deleting subscription {name}: {source} (it expires on its own within a day)")]
    Delete {
        name: String,
        #[source]
        source: google_cloud_pubsub::Error,
    },
}

/// A subscription this process created and deletes with [`TempSubscription::delete`].
#[derive(Debug)]
pub struct TempSubscription {
    pub name: String,
    /// The filter it was created with (empty: none).
    pub filter: String,
    admin: SubscriptionAdmin,
}

impl TempSubscription {
    /// Creates `projects/{project}/subscriptions/{prefix}-{hash}` on `topic` (full name),
    /// filtered to `request_ids` as far as the filter limit allows.
    pub async fn create(
        conn: &Connection,
        topic: &str,
        prefix: &str,
        request_ids: &[String],
    ) -> Result<Self, TempSubscriptionError> {
        let filter = request_id_filter(request_ids);
        let seed = request_ids.first().map(String::as_str).unwrap_or_default();
        Self::create_filtered(conn, topic, prefix, filter, seed).await
    }

    /// Creates the subscription with `filter` (at most [`MAX_FILTER_BYTES`]; empty: none);
    /// `seed` goes into the unique name.
    pub async fn create_filtered(
        conn: &Connection,
        topic: &str,
        prefix: &str,
        filter: String,
        seed: &str,
    ) -> Result<Self, TempSubscriptionError> {
        let admin = conn.subscription_admin().await?;
        let project = topic.split('/').nth(1).unwrap_or_default();
        // Unique per waiter: two waiters of one process, or of two hosts, never share it.
        let nonce = format!(
            "{}:{:?}:{seed}",
            std::process::id(),
            std::time::SystemTime::now(),
        );
        let name = format!(
            "projects/{project}/subscriptions/{prefix}-{}",
            &sha256_hex(nonce.as_bytes())[..16]
        );
        let ttl = google_cloud_wkt::Duration::clamp(EXPIRATION_TTL.as_secs() as i64, 0);
        admin
            .create_subscription()
            .set_name(&name)
            .set_topic(topic)
            .set_ack_deadline_seconds(ACK_DEADLINE_SECS)
            .set_filter(&filter)
            .set_expiration_policy(ExpirationPolicy::new().set_ttl(ttl))
            .send()
            .await
            .map_err(|source| TempSubscriptionError::Create {
                name: name.clone(),
                topic: topic.to_owned(),
                hint: create_hint(&source),
                source,
            })?;
        Ok(Self {
            name,
            filter,
            admin,
        })
    }

    /// A waiting subscription created earlier (kept by a `publish --wait` that timed out), to
    /// be read and then deleted like a new one.
    pub async fn existing(conn: &Connection, name: &str) -> Result<Self, TempSubscriptionError> {
        Ok(Self {
            name: name.to_owned(),
            filter: String::new(),
            admin: conn.subscription_admin().await?,
        })
    }

    /// Deletes the subscription (bounded: an unreachable service must not hold the exit).
    pub async fn delete(self) -> Result<(), TempSubscriptionError> {
        let call = self
            .admin
            .delete_subscription()
            .set_subscription(&self.name)
            .send();
        match tokio::time::timeout(Duration::from_secs(10), call).await {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(source)) => Err(TempSubscriptionError::Delete {
                name: self.name,
                source,
            }),
        }
    }
}

/// A waiter's streaming pull of `subscription` (`publish --wait`, `wait`, `events`).
///
/// NackImmediately: on exit, acks are sent and whatever is still leased goes back at once
/// instead of after a lease expires. The stream's lease (default 60 s) is how long the
/// service keeps events assigned to a reader that went away: 10 s, the minimum, lets the
/// next reader (a resumed `wait`) see them soon.
pub fn read_stream(
    subscriber: &google_cloud_pubsub::client::Subscriber,
    subscription: &str,
) -> google_cloud_pubsub::subscriber::MessageStream {
    subscriber
        .subscribe(subscription)
        .set_shutdown_behavior(google_cloud_pubsub::subscriber::ShutdownBehavior::NackImmediately)
        .set_max_lease_extension(Duration::from_secs(10))
        .build()
}

/// The fix for a failed create, by what failed.
fn create_hint(e: &google_cloud_pubsub::Error) -> &'static str {
    use google_cloud_gax::error::rpc::Code;
    match e.status().map(|s| s.code) {
        Some(Code::PermissionDenied) => {
            "the caller needs pubsub.subscriptions.create on the project and pubsub.topics.attachSubscription on the topic; Terraform grants both to the publisher account"
        }
        Some(Code::NotFound) => {
            "the topic does not exist: create it, or name the right one with COPY_COMPLETIONS_TOPIC and the right project with GOOGLE_CLOUD_PROJECT"
        }
        Some(_) => "Pub/Sub refused the subscription; the message above says why",
        None => super::pubsub::UNREACHABLE_HINT,
    }
}

/// The narrowest filter on `request_id` within [`MAX_FILTER_BYTES`]: the ids themselves, else
/// their common prefix, else none (empty).
pub fn request_id_filter(ids: &[String]) -> String {
    let quoted = |s: &str| format!("{:?}", s); // request ids are [A-Za-z0-9._:-]: no escapes
    let exact = ids
        .iter()
        .map(|id| format!("attributes.{} = {}", attr::REQUEST_ID, quoted(id)))
        .collect::<Vec<_>>()
        .join(" OR ");
    if !ids.is_empty() && exact.len() <= MAX_FILTER_BYTES {
        return exact;
    }
    let prefix = common_prefix(ids);
    let by_prefix = format!(
        "hasPrefix(attributes.{}, {})",
        attr::REQUEST_ID,
        quoted(prefix)
    );
    if !prefix.is_empty() && by_prefix.len() <= MAX_FILTER_BYTES {
        return by_prefix;
    }
    String::new()
}

fn common_prefix(ids: &[String]) -> &str {
    let Some(first) = ids.first() else {
        return "";
    };
    let mut len = first.len();
    for id in &ids[1..] {
        len = first
            .bytes()
            .zip(id.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    &first[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize, prefix: &str) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:04}")).collect()
    }

    #[test]
    fn a_few_ids_are_filtered_exactly() {
        let f = request_id_filter(&["a".into(), "b-2".into()]);
        assert_eq!(
            f,
            r#"attributes.request_id = "a" OR attributes.request_id = "b-2""#
        );
    }

    #[test]
    fn many_ids_fall_back_to_their_common_prefix_then_to_no_filter() {
        let f = request_id_filter(&ids(60, "nightly-2026-11-22-"));
        assert_eq!(
            f,
            r#"hasPrefix(attributes.request_id, "nightly-2026-11-22-00")"#
        );
        assert!(f.len() <= MAX_FILTER_BYTES);
        let mut mixed = ids(60, "a");
        mixed.push("zzz".into());
        assert_eq!(request_id_filter(&mixed), "");
        assert_eq!(request_id_filter(&[]), "");
    }

    #[test]
    fn the_filter_never_exceeds_pubsubs_limit() {
        for n in [1, 5, 9, 10, 11, 50] {
            let f = request_id_filter(&ids(n, "r"));
            assert!(f.len() <= MAX_FILTER_BYTES, "{n}: {}", f.len());
        }
    }
}
