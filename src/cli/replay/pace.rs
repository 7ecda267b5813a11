//! `--rate`: the n-th replay may not start before `start + n / rate`, so the rate holds over
//! the whole run (a slow stretch is not followed by a burst above the rate).

use std::time::Duration;

use tokio::time::Instant;

/// Hands out start times for replays, in order.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    /// Time between two replays; `None` means no limit.
    interval: Option<Duration>,
    issued: u32,
}

impl Pacer {
    /// `rate` is in messages per second; `None` means as fast as Pub/Sub allows.
    pub fn new(rate: Option<f64>) -> Self {
        Self {
            start: Instant::now(),
            interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            issued: 0,
        }
    }

    /// The earliest time the next replay may publish.
    pub fn next_slot(&mut self) -> Instant {
        let Some(interval) = self.interval else {
            return Instant::now();
        };
        let at = self.start + interval * self.issued;
        self.issued += 1;
        at
    }

    /// How many replays to keep in flight: about two seconds' worth at the rate, so waiting
    /// replays do not sit on leases for long, and at most `cap`.
    pub fn window(&self, cap: usize) -> usize {
        match self.interval {
            None => cap,
            Some(i) => ((2.0 / i.as_secs_f64()).ceil() as usize).clamp(1, cap),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_the_rate_from_the_start_of_the_run() {
        let mut p = Pacer::new(Some(4.0));
        let t0 = Instant::now();
        let slots: Vec<Duration> = (0..5).map(|_| p.next_slot() - t0).collect();
        assert_eq!(
            slots,
            [0, 250, 500, 750, 1000].map(Duration::from_millis).to_vec()
        );
        // A late request does not reset the clock: the average rate holds.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(p.next_slot() - t0, Duration::from_millis(1250));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_rate_every_slot_is_now() {
        let mut p = Pacer::new(None);
        assert_eq!(p.next_slot(), Instant::now());
        assert_eq!(p.window(500), 500);
        assert_eq!(Pacer::new(Some(0.1)).window(500), 1);
        assert_eq!(Pacer::new(Some(50.0)).window(500), 100);
    }
}
