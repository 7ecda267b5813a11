//! The limits Cloud Tasks applies to a queue: the token bucket of RateLimits and the retry
//! backoff of RetryConfig.

use super::QueueConfig;
use std::time::{Duration, Instant};

/// The token bucket of RateLimits: it holds up to `max_burst_size` tokens, each dispatch takes
/// one, and it refills continuously at `max_dispatches_per_second` (RateLimits.max_burst_size,
/// google/cloud/tasks/v2/queue.proto). It starts full: the fake does not model the slow
/// ramp-up of a new or idle queue, so a test sees the largest burst the limits allow.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    capacity: f64,
    rate: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(config: &QueueConfig, now: Instant) -> Bucket {
        let capacity = f64::from(config.burst_size());
        Bucket {
            tokens: capacity,
            capacity,
            rate: config.max_dispatches_per_second,
            at: now,
        }
    }

    pub fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.at = now;
    }

    /// Takes a token if one is there (a hair of float error counts as a whole token).
    pub fn take(&mut self) -> bool {
        let ok = self.tokens >= 1.0 - 1e-9;
        if ok {
            self.tokens = (self.tokens - 1.0).max(0.0);
        }
        ok
    }

    /// When the next whole token will be there.
    pub fn next_token(&self) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        self.at + Duration::from_secs_f64(missing / self.rate.max(1e-9))
    }
}

/// The wait before retry number `retry` (1 = the first retry), as RetryConfig.max_doublings
/// describes it: "A task's retry interval starts at min_backoff, then doubles max_doublings
/// times, then increases linearly, and finally retries at intervals of max_backoff up to
/// max_attempts times. For example, if min_backoff is 10s, max_backoff is 300s, and
/// max_doublings is 3, then ... the requests will retry at 10s, 20s, 40s, 80s, 160s, 240s,
/// 300s, 300s" (google/cloud/tasks/v2/queue.proto).
pub(crate) fn backoff(config: &QueueConfig, retry: u32) -> Duration {
    let step = retry.saturating_sub(1);
    let min = config.min_backoff.as_secs_f64();
    let doublings = step.min(config.max_doublings).min(60);
    let doubled = min * 2f64.powi(doublings as i32);
    let linear = f64::from(step.saturating_sub(config.max_doublings));
    let interval = doubled * (1.0 + linear);
    Duration::from_secs_f64(interval.min(config.max_backoff.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(min_ms: u64, max_ms: u64, doublings: u32) -> QueueConfig {
        QueueConfig {
            min_backoff: Duration::from_millis(min_ms),
            max_backoff: Duration::from_millis(max_ms),
            max_doublings: doublings,
            ..QueueConfig::default()
        }
    }

    #[test]
    fn backoff_doubles_then_grows_linearly_then_caps_like_the_documented_example() {
        let c = config(10_000, 300_000, 3);
        let got: Vec<u64> = (1..=8).map(|r| backoff(&c, r).as_secs()).collect();
        assert_eq!(got, [10, 20, 40, 80, 160, 240, 300, 300]);
    }

    #[test]
    fn default_backoff_starts_at_a_tenth_of_a_second_and_caps_at_an_hour() {
        let c = QueueConfig::default();
        assert_eq!(backoff(&c, 1), Duration::from_millis(100));
        assert_eq!(backoff(&c, 2), Duration::from_millis(200));
        assert_eq!(backoff(&c, 99), Duration::from_secs(3600));
    }

    #[test]
    fn bucket_allows_its_burst_then_one_token_per_interval() {
        let now = Instant::now();
        let c = QueueConfig {
            max_dispatches_per_second: 4.0,
            ..QueueConfig::default()
        };
        let mut bucket = Bucket::new(&c, now);
        assert!((0..4).all(|_| bucket.take()));
        assert!(!bucket.take());
        assert_eq!(bucket.next_token(), now + Duration::from_millis(250));
        bucket.refill(now + Duration::from_millis(250));
        assert!(bucket.take());
    }
}
