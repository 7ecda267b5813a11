//! A waiter's own subscription, as `publish --wait` and `copy-worker wait` settle it: the
//! abandoned subscriptions of dead waiters swept away before it is created (best effort), and
//! its `expires` label moved when it is kept or resumed (DESIGN.md §6).

use std::time::{Duration, SystemTime};

use crate::clients::pubsub::Connection;
use crate::clients::temp_subscription::{
    self, FilterBy, TempSubscription, TempSubscriptionError, WaitSource, WaiterTag,
};

/// The project of a waiter's own subscription: `--waiter-project` (`COPY_WAITER_PROJECT`), or
/// the completions topic's (`projects/P/topics/T`).
pub fn waiter_project(flag: &Option<String>, topic: &str) -> Result<String, String> {
    match flag.as_deref().filter(|p| !p.is_empty()) {
        Some(p) if crate::domain::names::is_project(p) => Ok(p.to_owned()),
        Some(p) => Err(format!(
            "--waiter-project (COPY_WAITER_PROJECT): {p:?} is not a project id"
        )),
        None => Ok(topic.split('/').nth(1).unwrap_or_default().to_owned()),
    }
}

/// Deletes the waiting subscriptions in `project` whose waiters gave up, and says so
/// on stderr; run before a waiter creates its own. Never fails: a waiter that may not list
/// subscriptions still waits, and Pub/Sub's own expiration deletes what is left a day after
/// its last use. `who` prefixes the stderr lines.
pub async fn sweep(who: &str, conn: &Connection, project: &str) {
    match temp_subscription::delete_abandoned(conn, project).await {
        Ok(s) => {
            if !s.deleted.is_empty() {
                eprintln!(
                    "{who}: deleted {} abandoned waiting subscription(s), past their waiters' timeout: {}",
                    s.deleted.len(),
                    s.deleted.join(", ")
                );
            }
            for (name, e) in &s.failed {
                eprintln!("{who}: note: could not delete the abandoned subscription {name}: {e}");
            }
        }
        Err(e) => eprintln!(
            "{who}: note: abandoned waiting subscriptions were not looked for ({e}); that needs pubsub.subscriptions.list on the project"
        ),
    }
}

/// Creates a new subscription of its own ([`WaitSource::New`]) once the abandoned ones of its
/// project are swept away; any other source is returned as it is.
pub async fn open(
    who: &str,
    conn: &Connection,
    source: WaitSource,
    tag: &WaiterTag,
    by: FilterBy<'_>,
    timeout: Duration,
) -> Result<WaitSource, TempSubscriptionError> {
    if let WaitSource::New { project, .. } = &source {
        sweep(who, conn, project).await;
    }
    source.open(conn, tag, by, timeout).await
}

/// Moves a kept or resumed subscription's `expires` label to `until`. Returns whether it
/// did; if not, says on stderr from when the next waiter may delete the subscription.
pub async fn keep_until(who: &str, sub: &TempSubscription, until: SystemTime) -> bool {
    match sub.keep_until(until).await {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "{who}: note: {e}; the next waiter may delete {} once its first timeout (plus {}) has passed",
                sub.name,
                humantime::format_duration(temp_subscription::ABANDON_MARGIN)
            );
            false
        }
    }
}

/// Creates a new subscription of its own for requests this command did not publish (they
/// carry no tag of its own, so it filters on their ids) and seeks it back to `since`, so that
/// it holds the events published since then that the topic retains. A failed seek is said
/// on stderr and the wait goes on with the events from now on.
pub async fn open_since(
    who: &str,
    conn: &Connection,
    new: WaitSource,
    ids: &[String],
    timeout: Duration,
    since: SystemTime,
) -> Result<WaitSource, TempSubscriptionError> {
    let source = open(
        who,
        conn,
        new,
        &WaiterTag::generate(),
        FilterBy::RequestIds(ids),
        timeout,
    )
    .await?;
    let from = humantime::format_rfc3339_seconds(since);
    match source.seek_back(since).await {
        Ok(()) => eprintln!(
            "{who}: reading through a new subscription {}: events published since {from} are seen, as far as the topic retains them",
            source.name()
        ),
        Err(e) => eprintln!(
            "{who}: note: {e}; reading through {} sees only events published from now on",
            source.name()
        ),
    }
    Ok(source)
}
