//! A queue's settings: [`QueueConfig`], its documented defaults and bounds.

use std::time::Duration;

/// A queue's rate limits and retry configuration (Queue.rate_limits, Queue.retry_config).
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// RateLimits.max_dispatches_per_second: the refill rate of the token bucket (at most 500).
    pub max_dispatches_per_second: f64,
    /// RateLimits.max_concurrent_dispatches: attempts in flight at once (at most 5,000).
    pub max_concurrent_dispatches: u32,
    /// RetryConfig.min_backoff: the wait before the first retry.
    pub min_backoff: Duration,
    /// RetryConfig.max_backoff: the longest wait between attempts.
    pub max_backoff: Duration,
    /// RetryConfig.max_doublings: how many times the wait doubles before growing linearly.
    pub max_doublings: u32,
    /// RetryConfig.max_attempts, the first attempt included; -1 is unlimited.
    pub max_attempts: i32,
    /// RetryConfig.max_retry_duration, from the first attempt; zero is unlimited.
    pub max_retry_duration: Duration,
    /// RateLimits.max_burst_size is output only and picked by Cloud Tasks; `None` takes
    /// [`QueueConfig::burst_size`]'s documented floor, `Some` stands for a larger pick (the
    /// worst case for a caller that must stay under a quota).
    pub max_burst_size: Option<u32>,
}

impl Default for QueueConfig {
    /// The values a queue created without settings shows
    /// (cloud.google.com/tasks/docs/configuring-queues, `gcloud tasks queues describe`).
    fn default() -> QueueConfig {
        QueueConfig {
            max_dispatches_per_second: 500.0,
            max_concurrent_dispatches: 1000,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3600),
            max_doublings: 16,
            max_attempts: 100,
            max_retry_duration: Duration::ZERO,
            max_burst_size: None,
        }
    }
}

impl QueueConfig {
    /// A queue that dispatches at most `rate` tasks a second, with the other defaults.
    pub fn with_rate(rate: f64) -> QueueConfig {
        QueueConfig {
            max_dispatches_per_second: rate,
            ..QueueConfig::default()
        }
    }

    /// The bucket size. RateLimits.max_burst_size: "Cloud Tasks automatically sets an
    /// appropriate max_burst_size based on the value of max_dispatches_per_second ... It is
    /// generally at least equal to max_dispatches_per_second but might be higher"
    /// (google/cloud/tasks/v2/queue.proto). The fake takes that floor, rounded up to a whole
    /// token, at least 1 and at most 500 (the maximum the v2beta3 reference gives), unless
    /// [`QueueConfig::max_burst_size`] picks another.
    pub fn burst_size(&self) -> u32 {
        self.max_burst_size.unwrap_or_else(|| {
            let floor = self.max_dispatches_per_second.ceil();
            floor.clamp(1.0, 500.0) as u32
        })
    }

    /// Whether Cloud Tasks would accept these settings: the bounds of RateLimits and
    /// RetryConfig (queue.proto). The error names the field and its allowed values.
    pub fn check(&self) -> Result<(), String> {
        let rate = self.max_dispatches_per_second;
        if !(rate > 0.0 && rate <= 500.0) {
            return Err(format!(
                "max_dispatches_per_second is {rate}: it must be more than 0 and at most 500"
            ));
        }
        let concurrent = self.max_concurrent_dispatches;
        if !(1..=5000).contains(&concurrent) {
            return Err(format!(
                "max_concurrent_dispatches is {concurrent}: it must be 1 to 5000"
            ));
        }
        if self.max_attempts < -1 {
            return Err(format!(
                "max_attempts is {}: it must be -1 (unlimited) or more",
                self.max_attempts
            ));
        }
        if self.min_backoff > self.max_backoff {
            return Err(format!(
                "min_backoff {:?} is more than max_backoff {:?}",
                self.min_backoff, self.max_backoff
            ));
        }
        Ok(())
    }
}

/// Checks `name` is `projects/P/locations/L/queues/Q`, saying what is wrong otherwise.
pub fn check_queue_name(name: &str) -> Result<(), String> {
    let segments: Vec<&str> = name.split('/').collect();
    let shaped = matches!(segments.as_slice(), ["projects", p, "locations", l, "queues", q]
        if !p.is_empty() && !l.is_empty() && !q.is_empty() && !q.contains(':'));
    if shaped {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a queue name: projects/P/locations/L/queues/Q"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_outside_the_documented_bounds_are_named() {
        let bad = [
            (QueueConfig::with_rate(0.0), "max_dispatches_per_second"),
            (QueueConfig::with_rate(501.0), "max_dispatches_per_second"),
            (
                QueueConfig::with_rate(f64::NAN),
                "max_dispatches_per_second",
            ),
            (
                QueueConfig {
                    max_concurrent_dispatches: 0,
                    ..QueueConfig::default()
                },
                "max_concurrent_dispatches",
            ),
            (
                QueueConfig {
                    max_attempts: -2,
                    ..QueueConfig::default()
                },
                "max_attempts",
            ),
        ];
        for (config, field) in bad {
            let e = config.check().expect_err(field);
            assert!(e.starts_with(field), "{e}");
        }
        assert_eq!(QueueConfig::with_rate(3.5).check(), Ok(()));
        assert!(check_queue_name("projects/p/locations/l/queues/q").is_ok());
        assert!(check_queue_name("projects/p/locations/l/queues/").is_err());
        assert!(check_queue_name("queues/q").is_err());
    }
}
