//! Where a waiter reads completion events (DESIGN.md §6), from the flags to the end of the
//! wait: a subscription of its own (new, or kept by an earlier wait) or a shared one, and so
//! what it does with other requests' events and how it is named to resume.

use std::time::{Duration, SystemTime};

use google_cloud_gax::error::rpc::Code;

use super::{FilterBy, TempSubscription, TempSubscriptionError, WaiterTag};
use crate::clients::pubsub::Connection;

/// Where `publish --wait` and `copy-worker wait` read their events.
#[derive(Debug)]
pub enum WaitSource {
    /// A subscription of its own, still to be created on `topic` (full name) in `project`
    /// before anything is published; [`WaitSource::open`] makes it [`WaitSource::Own`].
    New { topic: String, project: String },
    /// A subscription only this waiter reads (new, or kept by an earlier wait): it acks
    /// every event it reads. Deleted when every request has its event, kept for a resume
    /// when some are pending.
    Own(TempSubscription),
    /// A shared subscription (`--completions-subscription`): events of other requests are
    /// handed back; never deleted.
    Shared(String),
}

impl WaitSource {
    /// The subscription's full name; empty for a [`WaitSource::New`] one, which has none yet.
    pub fn name(&self) -> &str {
        match self {
            WaitSource::New { .. } => "",
            WaitSource::Own(s) => &s.name,
            WaitSource::Shared(s) => s,
        }
    }

    /// Whether events of other requests go back to the subscription (a shared one, where
    /// another waiter may want them) instead of being acked.
    pub fn hands_back_others(&self) -> bool {
        matches!(self, WaitSource::Shared(_))
    }

    /// The `copy-worker wait` flag that reads this subscription again.
    pub fn resume_flag(&self) -> &'static str {
        match self {
            WaitSource::New { .. } | WaitSource::Own(_) => "--subscription",
            WaitSource::Shared(_) => "--completions-subscription",
        }
    }

    /// Checks that a [`WaitSource::Shared`] subscription exists; any other source passes.
    /// `publish --wait` checks before publishing. A caller allowed to consume but not to read
    /// the subscription's settings (`roles/pubsub.subscriber` has no
    /// `pubsub.subscriptions.get`) cannot be checked here; the pull reports it.
    pub async fn check(&self, conn: &Connection) -> Result<(), TempSubscriptionError> {
        let WaitSource::Shared(name) = self else {
            return Ok(());
        };
        let admin = conn.subscription_admin().await?;
        match admin.get_subscription().set_subscription(name).send().await {
            Ok(_) => Ok(()),
            Err(e) => match e.status().map(|s| s.code) {
                Some(Code::PermissionDenied) => Ok(()),
                Some(Code::NotFound) => {
                    Err(TempSubscriptionError::SharedMissing { name: name.clone() })
                }
                _ => Err(TempSubscriptionError::SharedCheck {
                    name: name.clone(),
                    source: e,
                }),
            },
        }
    }

    /// Creates a [`WaitSource::New`] subscription, tagged `tag`, filtered `by`, and labelled
    /// to be abandoned after `timeout` (see [`TempSubscription::for_waiter`]); any other
    /// source is returned as it is.
    pub async fn open(
        self,
        conn: &Connection,
        tag: &WaiterTag,
        by: FilterBy<'_>,
        timeout: Duration,
    ) -> Result<Self, TempSubscriptionError> {
        match self {
            WaitSource::New { topic, project } => {
                TempSubscription::for_waiter(conn, &topic, &project, tag, by, timeout)
                    .await
                    .map(WaitSource::Own)
            }
            other => Ok(other),
        }
    }

    /// Seeks a subscription of its own back to `to`, so that it holds again the events
    /// published since then that the topic still retains: Seek marks every retained message
    /// published after `to` unacknowledged, and with topic message retention
    /// (`copy-completions` keeps 7 days, terraform/pubsub.tf) that includes messages published
    /// before the subscription existed (cloud.google.com/pubsub/docs/replay-overview, "Seek
    /// to a time"; google.pubsub.v1 `Topic.message_retention_duration`: "allows any attached
    /// subscription to seek to a timestamp that is up to message_retention_duration in the
    /// past"). Without retention it finds nothing older than the subscription. A shared
    /// subscription is never moved: that would replay events to its other readers.
    pub async fn seek_back(&self, to: SystemTime) -> Result<(), TempSubscriptionError> {
        let WaitSource::Own(sub) = self else {
            return Ok(());
        };
        let shown = humantime::format_rfc3339_seconds(to).to_string();
        let error = |source| TempSubscriptionError::Seek {
            name: sub.name.clone(),
            to: shown.clone(),
            source,
        };
        let time = google_cloud_wkt::Timestamp::try_from(to)
            .map_err(|e| error(google_cloud_pubsub::Error::ser(e)))?;
        sub.admin
            .seek()
            .set_subscription(&sub.name)
            .set_time(time)
            .send()
            .await
            .map(|_| ())
            .map_err(error)
    }
}
