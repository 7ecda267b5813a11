//! One deadline per delivery (DESIGN.md §4), counted from the delivery's arrival and derived
//! from its subscription's ack deadline.
//!
//! Pub/Sub sends a push again when its ack deadline passes without an answer, and it backs
//! off push delivery for the whole subscription when that happens. For a watch it is worse:
//! the late answer still continues as new, so the copy ends up with two watch chains (two
//! events, two callbacks). Every wait, call, retry and publish of a stage therefore ends by
//! one instant:
//!
//! 1. the **hard** end, [`Deadline::at`]: the ack deadline less a margin for the push's way
//!    to the instance (a cold start included) and clocks. The stage is cut there and answers
//!    503, which Pub/Sub redelivers;
//! 2. the **soft** end, [`Deadline::soft`]: the hard end less a reserve for the one publish a
//!    stage makes at the end (continue as new). Polling, waiting for a budget slot and each
//!    poll's own call stop there, so the last publish still fits and the steady-state answer
//!    stays a 204.

use std::time::Duration;

use tokio::time::Instant;

/// The longest a publish may take (the publisher's own limit, `clients::pubsub`): what the
/// soft end keeps free before the hard end.
pub const PUBLISH_RESERVE: Duration = Duration::from_secs(20);

/// When a delivery must have been answered, and when its waiting must stop.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    soft: Instant,
}

/// What a delivery may use of an ack deadline: the margin is a quarter of it, at least 1 s
/// and at most 30 s (60 s → 45 s, 300 s → 270 s, 600 s → 570 s).
pub fn usable(ack_deadline: Duration) -> Duration {
    let margin = (ack_deadline / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
    ack_deadline.saturating_sub(margin)
}

impl Deadline {
    /// The deadline of a delivery that arrives now on a subscription with `ack_deadline`.
    #[cfg(test)]
    pub fn for_delivery(ack_deadline: Duration) -> Deadline {
        Deadline::since(Instant::now(), ack_deadline)
    }

    /// The deadline of a delivery that arrived at `arrival` (before authentication and the
    /// body were read) on a subscription with `ack_deadline`.
    pub fn since(arrival: Instant, ack_deadline: Duration) -> Deadline {
        let usable = usable(ack_deadline);
        let reserve = PUBLISH_RESERVE.min(usable / 4);
        Deadline {
            at: arrival + usable,
            soft: arrival + usable - reserve,
        }
    }

    /// The hard end: the stage is cut here (503).
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The soft end: polling and waiting stop here, so the last publish fits.
    pub fn soft(&self) -> Instant {
        self.soft
    }

    /// Time left until the hard end.
    #[cfg(test)]
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Time left until the soft end.
    #[cfg(test)]
    pub fn soft_remaining(&self) -> Duration {
        self.soft.saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usable_share_leaves_a_quarter_between_one_and_thirty_seconds() {
        let s = Duration::from_secs;
        for (ack, want) in [(60, 45), (300, 270), (600, 570), (8, 6)] {
            assert_eq!(usable(s(ack)), s(want), "ack deadline {ack}s");
        }
        assert_eq!(usable(s(2)), s(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_soft_end_keeps_the_publish_reserve_before_the_hard_end() {
        let d = Deadline::for_delivery(Duration::from_secs(300));
        assert_eq!(d.remaining(), Duration::from_secs(270));
        assert_eq!(d.soft_remaining(), Duration::from_secs(250));
        // Short deadlines (tests) keep a quarter of the usable time for the publish.
        let short = Deadline::for_delivery(Duration::from_secs(8));
        assert_eq!(short.remaining(), Duration::from_secs(6));
        assert_eq!(short.soft_remaining(), Duration::from_millis(4500));
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(short.remaining(), Duration::ZERO);
    }
}
