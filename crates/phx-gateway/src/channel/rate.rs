//! The token bucket of a `broadcast` rule's `rate_limit` (one per channel).

use std::time::Instant;

use crate::config::BroadcastRate;

#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(rate: BroadcastRate, now: Instant) -> Self {
        let capacity = f64::from(rate.burst.max(1));
        Self {
            rate: f64::from(rate.per_second.max(1)),
            capacity,
            tokens: capacity,
            at: now,
        }
    }

    /// Takes a token if one is there.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            BroadcastRate {
                per_second: 2,
                burst: 3,
            },
            t0,
        );
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(500)));
        assert!(!b.take(t0 + Duration::from_millis(500)));
    }
}
