//! A waiter's own pull subscription on `copy-completions`: filtered to its waiter tag (or
//! its request ids), labelled with when its waiter gives up, deleted when the waiter exits.
//!
//! Each waiter reading its own subscription is what lets it ack every event it reads: other
//! waiters get their own copy of every event from their own subscriptions, so nothing is handed
//! back and nothing circles between waiters (DESIGN.md §6). Where a waiter reads, its own
//! subscription or a shared one, is one enum: [`WaitSource`].
//!
//! **The filter** only saves traffic; correctness never depends on it. `publish --wait` tags
//! every request it publishes with a [`WaiterTag`] (the `waiter` attribute, which the worker
//! carries onto the event), so one short filter, `attributes.waiter = "<tag>"`, fits any
//! batch. `copy-worker wait` follows requests it did not publish, which carry no tag of its
//! own: it filters on their ids, which Pub/Sub's 256-byte limit
//! (<https://cloud.google.com/pubsub/docs/subscription-message-filter>) allows for about five,
//! then on their common prefix, then not at all. The local emulator accepts filters but does
//! not apply them (tests/it/publish.rs shows it), so the waiter checks each event's
//! `request_id` itself as well. `copy-worker events` filters its own subscription on the
//! events' attributes. One builder makes all three ([`FilterBy`]).
//!
//! **Abandoned subscriptions.** Pub/Sub expires an unused subscription no sooner than a day
//! after its last use, so a waiter that dies (killed, host lost) would leave its subscription
//! collecting events for a day. Each waiting subscription is therefore labelled
//! `copy-worker-waiter=<tag>` and `expires=<unix seconds>`, the time after which its waiter
//! has surely given up, and each new waiter first deletes the expired ones ([`stale`]).

mod filter;
mod source;
mod stale;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use google_cloud_pubsub::client::SubscriptionAdmin;
use google_cloud_pubsub::model::{ExpirationPolicy, Subscription};

pub use self::filter::{EventFilter, FilterBy};
pub use self::source::WaitSource;
pub use self::stale::delete_abandoned;
use super::pubsub::Connection;
use crate::domain::sha256_hex;

/// Pub/Sub's shortest allowed expiration TTL: an abandoned subscription is deleted a day after
/// its last use.
pub const EXPIRATION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Name prefix of every waiting subscription (`copy-worker-wait-<tag>`). The sweep deletes
/// nothing else, whatever its labels say.
pub const WAIT_PREFIX: &str = "copy-worker-wait";
/// Label of a waiting subscription: its waiter's tag.
pub const WAITER_LABEL: &str = "copy-worker-waiter";
/// Label of a waiting subscription: the unix time (seconds) after which its waiter has given
/// up, so that the next waiter may delete it.
pub const EXPIRES_LABEL: &str = "expires";
/// How long after its timeout a waiter's subscription is left alone: time to exit and delete
/// it, and for clocks of different hosts to disagree.
pub const ABANDON_MARGIN: Duration = Duration::from_secs(3600);
/// How long a subscription kept for `copy-worker wait --subscription` (after a timeout or
/// Ctrl-C) is left alone: as long as Pub/Sub's own expiration would keep it.
pub const KEPT_FOR: Duration = EXPIRATION_TTL;

/// How long a read event stays leased before Pub/Sub offers it again: Pub/Sub's minimum. A
/// waiter acks each event as soon as it reads it (the client extends the lease meanwhile),
/// so a short deadline costs nothing, and an event leased to a waiter that died is offered to
/// the next reader of a kept subscription (`copy-worker wait --subscription`) within seconds,
/// not a minute. (The local emulator keeps a dead waiter's stream taking events for far
/// longer; docs/reliability.md.)
const ACK_DEADLINE_SECS: i32 = 10;

/// One waiter's tag: 16 lowercase hex digits, unique per waiter. It is the `waiter` attribute
/// of the requests `publish --wait` publishes, the value of its subscription's filter and
/// `copy-worker-waiter` label, and the end of the subscription's name. Lowercase hex is valid
/// in all four places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiterTag(String);

impl WaiterTag {
    /// A new tag: 64 bits from the process id, the time and the process's random hash keys,
    /// so two waiters of one process, or of two hosts, never share one.
    pub fn generate() -> Self {
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_u32(std::process::id());
        let nonce = format!(
            "{}:{:?}:{}",
            std::process::id(),
            SystemTime::now(),
            random.finish()
        );
        Self(sha256_hex(nonce.as_bytes())[..16].to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
    /// Typically the caller lacks `pubsub.subscriptions.update`, or (the local emulator)
    /// labels cannot be updated.
    #[error("labelling subscription {name}: {source}")]
    Relabel {
        name: String,
        #[source]
        source: google_cloud_pubsub::Error,
    },
    /// Typically the caller lacks `pubsub.subscriptions.consume`.
    #[error("seeking subscription {name} back to {to}: {source}")]
    Seek {
        name: String,
        to: String,
        #[source]
        source: google_cloud_pubsub::Error,
    },
    #[error("deleting subscription {name}: {source} (it expires on its own within a day)")]
    Delete {
        name: String,
        #[source]
        source: google_cloud_pubsub::Error,
    },
    /// A shared subscription to wait on does not exist; it must exist before the requests
    /// are published, since it only holds events published after it was created.
    #[error(
        "--completions-subscription {name} does not exist; create it on copy-completions before publishing (it only sees events published after it exists), or leave the flag out to wait through a subscription of its own"
    )]
    SharedMissing { name: String },
    /// A shared subscription's settings could not be read (but not for want of permission).
    #[error("checking --completions-subscription {name}: {source}")]
    SharedCheck {
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
    /// Creates a waiter's `projects/{project}/subscriptions/copy-worker-wait-{tag}` on `topic`
    /// (full name), filtered `by` its tag or request ids, and labelled to be abandoned
    /// [`ABANDON_MARGIN`] after `timeout` from now. `project` may differ from the topic's: a
    /// subscription may live in another project than its topic
    /// (cloud.google.com/pubsub/docs/create-subscription, "subscriptions in a different
    /// project"), which keeps the waiter's permissions away from the worker's pipeline.
    pub async fn for_waiter(
        conn: &Connection,
        topic: &str,
        project: &str,
        tag: &WaiterTag,
        by: FilterBy<'_>,
        timeout: Duration,
    ) -> Result<Self, TempSubscriptionError> {
        let filter = by.expression(tag);
        let name = format!(
            "projects/{project}/subscriptions/{WAIT_PREFIX}-{}",
            tag.as_str()
        );
        let expires = SystemTime::now() + timeout + ABANDON_MARGIN;
        let labels = waiter_labels(tag.as_str(), expires);
        Self::create_named(conn, topic, name, filter, labels).await
    }

    /// Creates `projects/{project}/subscriptions/{prefix}-{hash}` filtered `by` (at most
    /// [`MAX_FILTER_BYTES`](filter::MAX_FILTER_BYTES)), with no labels; `seed` goes into the
    /// unique name. For `copy-worker events`, whose end is not known in advance.
    pub async fn create_filtered(
        conn: &Connection,
        topic: &str,
        prefix: &str,
        by: FilterBy<'_>,
        seed: &str,
    ) -> Result<Self, TempSubscriptionError> {
        let project = topic.split('/').nth(1).unwrap_or_default();
        let tag = WaiterTag::generate();
        let unique = sha256_hex(format!("{}:{seed}", tag.as_str()).as_bytes());
        let name = format!(
            "projects/{project}/subscriptions/{prefix}-{}",
            &unique[..16]
        );
        Self::create_named(conn, topic, name, by.expression(&tag), HashMap::new()).await
    }

    async fn create_named(
        conn: &Connection,
        topic: &str,
        name: String,
        filter: String,
        labels: HashMap<String, String>,
    ) -> Result<Self, TempSubscriptionError> {
        let admin = conn.subscription_admin().await?;
        let ttl = google_cloud_wkt::Duration::clamp(EXPIRATION_TTL.as_secs() as i64, 0);
        admin
            .create_subscription()
            .set_name(&name)
            .set_topic(topic)
            .set_ack_deadline_seconds(ACK_DEADLINE_SECS)
            .set_filter(&filter)
            .set_labels(labels)
            .set_expiration_policy(ExpirationPolicy::new().set_ttl(ttl))
            .send()
            .await
            .map_err(|source| TempSubscriptionError::Create {
                name: name.clone(),
                topic: topic.to_owned(),
                hint: create_hint(conn, &source),
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

    /// Moves the `expires` label of a waiting subscription to `until`: a kept subscription
    /// stays for its resume, a resumed one for its new timeout. Bounded like `delete`. Only
    /// for `copy-worker-wait-*` names: a subscription of any other name is left unlabelled,
    /// so the sweep never touches it.
    pub async fn keep_until(&self, until: SystemTime) -> Result<(), TempSubscriptionError> {
        let Some(tag) = wait_tag_of(&self.name) else {
            return Ok(());
        };
        let sub = Subscription::new()
            .set_name(&self.name)
            .set_labels(waiter_labels(tag, until));
        let call = self
            .admin
            .update_subscription()
            .set_subscription(sub)
            .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["labels"]))
            .send();
        match tokio::time::timeout(Duration::from_secs(10), call).await {
            Ok(Ok(_)) | Err(_) => Ok(()),
            Ok(Err(source)) => Err(TempSubscriptionError::Relabel {
                name: self.name.clone(),
                source,
            }),
        }
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

/// The fix for a failed create, by what failed.
fn create_hint(conn: &Connection, e: &google_cloud_pubsub::Error) -> &'static str {
    use google_cloud_gax::error::rpc::Code;
    match e.status().map(|s| s.code) {
        Some(Code::PermissionDenied) => {
            "the caller needs pubsub.subscriptions.create on the project and pubsub.topics.attachSubscription on the topic; Terraform grants both to the publisher account"
        }
        Some(Code::NotFound) => {
            "the topic does not exist: create it, or name the right one with COPY_COMPLETIONS_TOPIC and the right project with GOOGLE_CLOUD_PROJECT"
        }
        Some(_) => "Pub/Sub refused the subscription; the message above says why",
        None => super::pubsub::unreachable_hint(conn, e).unwrap_or_default(),
    }
}

/// The labels of a waiting subscription whose waiter gives up at `expires`.
pub fn waiter_labels(tag: &str, expires: SystemTime) -> HashMap<String, String> {
    let secs = expires
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    HashMap::from([
        (WAITER_LABEL.to_owned(), tag.to_owned()),
        (EXPIRES_LABEL.to_owned(), secs.to_string()),
    ])
}

/// The tag at the end of a waiting subscription's name (`…/copy-worker-wait-<tag>`), when it
/// is one.
fn wait_tag_of(name: &str) -> Option<&str> {
    let short = name.rsplit('/').next()?;
    let tag = short.strip_prefix(WAIT_PREFIX)?.strip_prefix('-')?;
    let valid = !tag.is_empty()
        && tag.len() <= 63
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    valid.then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::stale::is_abandoned;
    use super::*;

    #[test]
    fn tags_are_unique_and_valid_as_attribute_label_and_name() {
        let tags: std::collections::BTreeSet<String> = (0..200)
            .map(|_| WaiterTag::generate().as_str().to_owned())
            .collect();
        assert_eq!(tags.len(), 200);
        for t in &tags {
            assert_eq!(t.len(), 16);
            let name = format!("projects/p/subscriptions/{WAIT_PREFIX}-{t}");
            assert_eq!(wait_tag_of(&name), Some(t.as_str()));
        }
        assert_eq!(
            wait_tag_of("projects/p/subscriptions/copy-worker-events-ab"),
            None
        );
        assert_eq!(
            wait_tag_of("projects/p/subscriptions/copy-worker-waitab"),
            None
        );
        assert_eq!(
            wait_tag_of("projects/p/subscriptions/copy-worker-wait-AB"),
            None
        );
    }

    #[test]
    fn waiter_labels_name_the_tag_and_the_unix_second_it_expires() {
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let l = waiter_labels("3f2a9c1e0b7d4a58", at);
        assert_eq!(l[WAITER_LABEL], "3f2a9c1e0b7d4a58");
        assert_eq!(l[EXPIRES_LABEL], "1800000000");
        assert!(is_abandoned(
            "projects/p/subscriptions/copy-worker-wait-3f2a9c1e0b7d4a58",
            &l,
            1_800_000_001
        ));
    }
}
