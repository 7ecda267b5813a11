//! A push subscription's dead-letter policy (docs/DESIGN.md §2): to the dead-letter topic after
//! enough attempts, on `copy-requests-push` and `copy-callbacks-push` alike.

use google_cloud_pubsub::model::{DeadLetterPolicy, Subscription};

use super::{DeadLetterExpect, PushExpect};
use crate::cli::doctor::report::Check;
use crate::topology::MAX_DELIVERY_ATTEMPTS;

pub(super) fn check(e: &PushExpect, sub: &Subscription) -> Check {
    let has = sub
        .dead_letter_policy
        .as_ref()
        .filter(|d| !d.dead_letter_topic.is_empty());
    match (&e.dead_letter, has) {
        (DeadLetterExpect::To { topic, .. }, None) => Check::fail(
            e.subject(),
            "dead-letter policy",
            "none: a message that keeps failing is redelivered until retention ends, then lost",
        )
        .fix(e.update(&format!(
            "--dead-letter-topic={topic} --max-delivery-attempts={MAX_DELIVERY_ATTEMPTS}"
        ))),
        (
            DeadLetterExpect::To {
                topic,
                min_attempts,
            },
            Some(d),
        ) => to_topic(e, topic, *min_attempts, d),
    }
}

/// A policy exists where one is expected: its topic, then its attempts.
fn to_topic(e: &PushExpect, topic: &str, min_attempts: i32, d: &DeadLetterPolicy) -> Check {
    if d.dead_letter_topic != topic {
        return Check::fail(
            e.subject(),
            "dead-letter policy",
            format!(
                "dead-letters to {}, not {topic}: `copy-worker replay` will not see those messages",
                d.dead_letter_topic
            ),
        )
        .fix(e.update(&format!("--dead-letter-topic={topic}")));
    }
    if d.max_delivery_attempts < min_attempts {
        return Check::warn(
            e.subject(),
            "dead-letter policy",
            format!(
                "dead-letters after {} deliveries, before the worker's own limit of {min_attempts} (CALLBACK_MAX_ATTEMPTS); the dead letter then lacks the receiver's answer",
                d.max_delivery_attempts
            ),
        )
        .fix(e.update(&format!("--max-delivery-attempts={min_attempts}")));
    }
    Check::ok(
        e.subject(),
        "dead-letter policy",
        format!(
            "to {} after {} deliveries",
            d.dead_letter_topic, d.max_delivery_attempts
        ),
    )
}
