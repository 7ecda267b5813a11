//! The end of a wait, shared by `publish --wait` and `copy-worker wait`: one stderr line of
//! what was read, one JSON summary on stdout, the waiting subscription deleted or (when
//! requests are still pending) kept for `copy-worker wait --subscription`, and the exit code.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use super::follow::{self, Followed, WaitOutcome};
use crate::cli::exit;
use crate::clients::pubsub::Connection;
use crate::clients::temp_subscription::WaitSource;

/// `"timed_out"` etc.: the summary's `outcome`.
fn outcome_name(o: &WaitOutcome) -> &'static str {
    match o {
        WaitOutcome::AllSucceeded => "succeeded",
        WaitOutcome::SomeFailed => "failed",
        WaitOutcome::TimedOut { .. } => "timed_out",
        WaitOutcome::Interrupted { .. } => "interrupted",
    }
}

/// The command that carries on waiting for `pending` on `source`.
pub fn resume_command(source: &WaitSource, pending: &[String]) -> String {
    format!(
        "copy-worker wait {} {} --request-id {}",
        source.resume_flag(),
        source.name(),
        pending.join(",")
    )
}

/// The summary line: `{"summary":{…}}`.
pub fn summary(f: &Followed, source: &WaitSource) -> serde_json::Value {
    let pending = match &f.outcome {
        WaitOutcome::TimedOut { pending } | WaitOutcome::Interrupted { pending } => pending.clone(),
        _ => vec![],
    };
    let w = &f.waiting;
    let other = w.finished() - w.count("succeeded") - w.count("failed") - w.count("rejected");
    let mut s = json!({
        "outcome": outcome_name(&f.outcome),
        "requests": w.total(),
        "succeeded": w.count("succeeded"),
        "failed": w.count("failed"),
        "rejected": w.count("rejected"),
        "other_status": other,
        "pending": pending,
        "subscription": source.name(),
    });
    if !pending.is_empty() {
        s["resume"] = json!(resume_command(source, &pending));
    }
    json!({ "summary": s })
}

/// Follows `ids` on `source`, prints the summary, settles the subscription, and returns the
/// exit code. `who` prefixes stderr lines (`copy-worker publish`).
pub async fn follow_and_finish(
    who: &str,
    conn: &Connection,
    source: WaitSource,
    ids: Vec<String>,
    timeout: Duration,
    out: &mut (dyn Write + Send),
) -> u8 {
    let followed = follow::wait(conn, &source, ids, timeout, out).await;
    let followed = match followed {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{who}: {e:#}");
            // Unreadable: keep an own subscription only if it may still hold events.
            if let WaitSource::Own(sub) = source {
                eprintln!(
                    "{who}: the waiting subscription {} is kept (the next waiter deletes it once this wait's timeout has passed; Pub/Sub a day after its last use)",
                    sub.name
                );
            }
            return exit::PUBSUB;
        }
    };
    let c = &followed.counts;
    eprintln!(
        "{who}: read {} events on {}: {} ours, {} repeated, {} of other requests",
        c.ours + c.duplicates + c.others,
        source.name(),
        c.ours,
        c.duplicates,
        c.others
    );
    let line = summary(&followed, &source);
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    let code = match &followed.outcome {
        WaitOutcome::AllSucceeded => exit::OK,
        WaitOutcome::SomeFailed => exit::FAILED,
        WaitOutcome::TimedOut { pending } | WaitOutcome::Interrupted { pending } => {
            let how = if matches!(followed.outcome, WaitOutcome::TimedOut { .. }) {
                format!("timed out after {}", humantime::format_duration(timeout))
            } else {
                let by = crate::clients::interrupt::requested().unwrap_or("Ctrl-C");
                format!("interrupted ({by})")
            };
            eprintln!("{who}: {how} waiting for {}", pending.join(", "));
            eprintln!(
                "{who}: to carry on waiting: {}",
                resume_command(&source, pending)
            );
            exit::TIMEOUT
        }
    };
    settle(who, source, code).await;
    code
}

/// Deletes an own subscription once the wait is over, or keeps it for a resume when requests
/// are still pending (exit 3), moving its `expires` label so that other waiters leave it alone.
async fn settle(who: &str, source: WaitSource, code: u8) {
    let WaitSource::Own(sub) = source else {
        return;
    };
    if code == exit::TIMEOUT {
        let kept_for = crate::clients::temp_subscription::KEPT_FOR;
        let until = std::time::SystemTime::now() + kept_for;
        let why = if super::own::keep_until(who, &sub, until).await {
            format!(
                "other waiters leave it alone for {}h, and Pub/Sub deletes it a day after its last use",
                kept_for.as_secs() / 3600
            )
        } else {
            "Pub/Sub deletes it a day after its last use".to_owned()
        };
        eprintln!("{who}: kept {} for that ({why})", sub.name);
    } else if let Err(e) = sub.delete().await {
        eprintln!("{who}: warning: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::waiting::follow::{Counts, Waiting};

    #[test]
    fn a_timed_out_summary_names_what_is_pending_and_how_to_resume() {
        let mut w = Waiting::new(["a", "b", "c"].map(String::from));
        w.judge(Some("a"), Some("succeeded"));
        w.judge(Some("b"), Some("rejected"));
        let f = Followed {
            outcome: w.outcome(false),
            counts: Counts::default(),
            waiting: w,
        };
        let source = WaitSource::Shared("projects/p/subscriptions/s".into());
        let s = &summary(&f, &source)["summary"];
        assert_eq!(s["outcome"], "timed_out");
        assert_eq!(
            (
                s["requests"].as_u64(),
                s["succeeded"].as_u64(),
                s["rejected"].as_u64()
            ),
            (Some(3), Some(1), Some(1))
        );
        assert_eq!(s["pending"], json!(["c"]));
        assert_eq!(
            s["resume"],
            "copy-worker wait --completions-subscription projects/p/subscriptions/s --request-id c"
        );
    }

    #[test]
    fn a_finished_summary_has_no_resume() {
        let mut w = Waiting::new(["a".to_string()]);
        w.judge(Some("a"), Some("failed"));
        let f = Followed {
            outcome: w.outcome(false),
            counts: Counts::default(),
            waiting: w,
        };
        let s = &summary(&f, &WaitSource::Shared("s".into()))["summary"];
        assert_eq!(s["outcome"], "failed");
        assert_eq!(s["failed"], 1);
        assert!(s.get("resume").is_none());
    }
}
