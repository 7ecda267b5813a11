//! Deleting the waiting subscriptions of waiters that died (DESIGN.md §6).
//!
//! Pub/Sub cannot expire a subscription sooner than a day after its last use, and a waiter
//! killed mid-wait never deletes its own. So every waiting subscription is labelled with the
//! time after which its waiter has surely given up (`expires`, see
//! [`super::TempSubscription::for_waiter`]), and each new waiter first lists the project's
//! subscriptions and deletes those past it. Best effort: a sweep that cannot list or delete
//! never fails the command; what it deleted, or why it could not look, goes to stderr.
//!
//! Only subscriptions named `copy-worker-wait-*` that carry both labels are ever deleted, so a
//! mislabelled pipeline subscription (`copy-operations-push`) is safe from it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use google_cloud_gax::paginator::ItemPaginator as _;

use super::{EXPIRES_LABEL, WAITER_LABEL, wait_tag_of};
use crate::clients::pubsub::Connection;

/// The longest a sweep may hold up a command: listing, then the deletes.
const SWEEP_BOUND: Duration = Duration::from_secs(15);

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Full names of the abandoned subscriptions it deleted.
    pub deleted: Vec<String>,
    /// Abandoned subscriptions it could not delete, with the error.
    pub failed: Vec<(String, String)>,
}

/// The sweep could not look for abandoned subscriptions at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    #[error("connecting to Pub/Sub: {0}")]
    Connect(#[from] google_cloud_gax::client_builder::Error),
    /// Typically the caller lacks `pubsub.subscriptions.list` on the project.
    #[error("listing the subscriptions of projects/{project}: {source}")]
    List {
        project: String,
        #[source]
        source: google_cloud_pubsub::Error,
    },
    /// Listing took longer than the sweep may hold up the command.
    #[error("listing the subscriptions of projects/{project} took over {}s", SWEEP_BOUND.as_secs())]
    TimedOut { project: String },
}

/// Whether the waiting subscription `name` with `labels` was abandoned by `now_unix` (seconds):
/// a `copy-worker-wait-*` name, the waiter label, and an `expires` label in the past. Anything
/// else, including an unreadable `expires`, is left alone.
pub fn is_abandoned(name: &str, labels: &HashMap<String, String>, now_unix: u64) -> bool {
    let ours = wait_tag_of(name).is_some() && labels.contains_key(WAITER_LABEL);
    let expires = labels
        .get(EXPIRES_LABEL)
        .and_then(|s| s.parse::<u64>().ok());
    ours && expires.is_some_and(|t| t < now_unix)
}

/// Deletes the abandoned waiting subscriptions of `project` (an id), within [`SWEEP_BOUND`].
pub async fn delete_abandoned(conn: &Connection, project: &str) -> Result<Sweep, SweepError> {
    let admin = conn.subscription_admin().await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let started = tokio::time::Instant::now();
    let list = async {
        let mut found = Vec::new();
        let mut items = admin
            .list_subscriptions()
            .set_project(format!("projects/{project}"))
            .by_item();
        while let Some(sub) = items.next().await {
            let sub = sub.map_err(|source| SweepError::List {
                project: project.to_owned(),
                source,
            })?;
            if is_abandoned(&sub.name, &sub.labels, now) {
                found.push(sub.name);
            }
        }
        Ok::<_, SweepError>(found)
    };
    let abandoned = tokio::time::timeout(SWEEP_BOUND, list)
        .await
        .map_err(|_| SweepError::TimedOut {
            project: project.to_owned(),
        })??;
    let left = SWEEP_BOUND.saturating_sub(started.elapsed());
    let deletes = abandoned.iter().map(|name| {
        let call = admin.delete_subscription().set_subscription(name).send();
        tokio::time::timeout(left, call)
    });
    let mut sweep = Sweep::default();
    for (name, result) in abandoned.iter().zip(join_all(deletes).await) {
        match result {
            Ok(Ok(())) => sweep.deleted.push(name.clone()),
            // Another waiter's sweep got there first.
            Ok(Err(e))
                if e.status().map(|s| s.code)
                    == Some(google_cloud_gax::error::rpc::Code::NotFound) => {}
            Ok(Err(e)) => sweep.failed.push((name.clone(), e.to_string())),
            Err(_) => sweep.failed.push((name.clone(), "timed out".to_owned())),
        }
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_a_labelled_waiting_subscription_past_its_expiry_is_abandoned() {
        let wait = "projects/p/subscriptions/copy-worker-wait-3f2a9c1e0b7d4a58";
        let expired = labels(&[(WAITER_LABEL, "3f2a9c1e0b7d4a58"), (EXPIRES_LABEL, "1000")]);
        assert!(is_abandoned(wait, &expired, 1001));
        assert!(!is_abandoned(wait, &expired, 1000), "not before it expires");
        assert!(!is_abandoned(wait, &expired, 999));
        let cases = [
            // A pipeline subscription is never ours, whatever its labels.
            (
                "projects/p/subscriptions/copy-operations-push",
                expired.clone(),
            ),
            (
                "projects/p/subscriptions/copy-worker-events-3f2a",
                expired.clone(),
            ),
            (
                "projects/p/subscriptions/copy-worker-wait-",
                expired.clone(),
            ),
            (wait, labels(&[(EXPIRES_LABEL, "1000")])),
            (wait, labels(&[(WAITER_LABEL, "x")])),
            (
                wait,
                labels(&[(WAITER_LABEL, "x"), (EXPIRES_LABEL, "soon")]),
            ),
        ];
        for (name, l) in cases {
            assert!(!is_abandoned(name, &l, 5000), "{name} {l:?}");
        }
    }
}
