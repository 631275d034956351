//! Per-socket inbound rate limits: token buckets over client messages and joins.
//!
//! Off by default, as in Phoenix (which has none); a server facing the internet turns it
//! on with [`crate::SocketConfig::rate_limit`]. The model is Supabase Realtime's quotas:
//! a sustained rate of messages and of channel joins per connection, with a burst above
//! it. A message over the limit is refused with an error reply (`{"reason":"rate
//! limited"}`) when it has a `ref`; a client that keeps sending far beyond its rate is
//! closed (1008, policy violation), and phoenix.js reconnects with its backoff.
//!
//! Heartbeats are never limited: they are answered by the socket itself for a few bytes,
//! their output is bounded by the outbound budget like everything else, and a client at
//! its limit must not lose its connection because a heartbeat was refused.

use std::time::{Duration, Instant};

/// Inbound limits for one socket (see the module docs).
///
/// ```
/// use phx_server::{RateLimit, SocketConfig, AcceptAll};
/// // 50 messages/s sustained with bursts of 100; 10 joins/s with bursts of 20;
/// // closed once 200 messages were refused within one second.
/// let limit = RateLimit::per_second(50).burst(100).joins(10, 20).close_after(200);
/// let config = SocketConfig::new(AcceptAll).rate_limit(limit);
/// # let _ = config;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    messages_per_second: u32,
    burst: u32,
    joins_per_second: u32,
    join_burst: u32,
    close_after: u32,
}

impl RateLimit {
    /// `messages` client messages per second (heartbeats excluded), with a burst of twice
    /// that; joins share the same numbers; a socket is closed once `messages` messages
    /// were refused within one second (that is, when it sends at about twice its rate).
    pub fn per_second(messages: u32) -> Self {
        let messages = messages.max(1);
        Self {
            messages_per_second: messages,
            burst: messages.saturating_mul(2),
            joins_per_second: messages,
            join_burst: messages.saturating_mul(2),
            close_after: messages,
        }
    }

    /// Messages accepted at once above the sustained rate.
    pub fn burst(mut self, messages: u32) -> Self {
        self.burst = messages.max(1);
        self
    }

    /// `phx_join`s per second and their burst (joins also count as messages).
    pub fn joins(mut self, per_second: u32, burst: u32) -> Self {
        self.joins_per_second = per_second.max(1);
        self.join_burst = burst.max(1);
        self
    }

    /// Refused messages within one second after which the socket is closed (1008).
    pub fn close_after(mut self, refused: u32) -> Self {
        self.close_after = refused.max(1);
        self
    }
}

/// What to do with one client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// Answer `{"reason":"rate limited"}` and drop it.
    Refuse,
    /// The client ignores refusals: close the socket.
    Close,
}

/// A token bucket: `rate` tokens per second, at most `capacity`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    capacity: f64,
    rate: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32, capacity: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(capacity),
            capacity: f64::from(capacity),
            rate: f64::from(rate),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.at = now;
    }

    fn has_token(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// The limiter state of one socket.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    messages: Bucket,
    joins: Bucket,
    close_after: u32,
    refused: u32,
    refused_since: Instant,
}

const REFUSAL_WINDOW: Duration = Duration::from_secs(1);

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            messages: Bucket::new(limit.messages_per_second, limit.burst, now),
            joins: Bucket::new(limit.joins_per_second, limit.join_burst, now),
            close_after: limit.close_after,
            refused: 0,
            refused_since: now,
        }
    }

    /// Judges one client message (`join`: it is a `phx_join`) arriving at `now`.
    pub(crate) fn check(&mut self, join: bool, now: Instant) -> Verdict {
        let allowed = self.messages.has_token(now) && (!join || self.joins.has_token(now));
        if allowed {
            self.messages.take();
            if join {
                self.joins.take();
            }
            return Verdict::Allow;
        }
        if now.saturating_duration_since(self.refused_since) >= REFUSAL_WINDOW {
            self.refused = 0;
            self.refused_since = now;
        }
        self.refused += 1;
        if self.refused > self.close_after {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_passes_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(RateLimit::per_second(10).burst(5), t0);
        for _ in 0..5 {
            assert_eq!(limiter.check(false, t0), Verdict::Allow);
        }
        assert_eq!(limiter.check(false, t0), Verdict::Refuse);
        // 100 ms at 10/s refills one token.
        assert_eq!(limiter.check(false, t0 + ms(100)), Verdict::Allow);
        assert_eq!(limiter.check(false, t0 + ms(100)), Verdict::Refuse);
        // The bucket never holds more than the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(limiter.check(false, later), Verdict::Allow);
        }
        assert_eq!(limiter.check(false, later), Verdict::Refuse);
    }

    #[test]
    fn joins_have_their_own_bucket_and_count_as_messages() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(RateLimit::per_second(100).joins(1, 2), t0);
        assert_eq!(limiter.check(true, t0), Verdict::Allow);
        assert_eq!(limiter.check(true, t0), Verdict::Allow);
        assert_eq!(limiter.check(true, t0), Verdict::Refuse);
        assert_eq!(
            limiter.check(false, t0),
            Verdict::Allow,
            "other events still pass"
        );
        assert_eq!(
            limiter.check(true, t0 + Duration::from_secs(1)),
            Verdict::Allow
        );
    }

    #[test]
    fn refusals_past_the_threshold_within_a_second_close() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(RateLimit::per_second(1).burst(1).close_after(3), t0);
        assert_eq!(limiter.check(false, t0), Verdict::Allow);
        for _ in 0..3 {
            assert_eq!(limiter.check(false, t0), Verdict::Refuse);
        }
        assert_eq!(limiter.check(false, t0), Verdict::Close);
    }

    #[test]
    fn refusals_spread_over_seconds_do_not_close() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(RateLimit::per_second(1).burst(1).close_after(2), t0);
        let mut now = t0;
        for _ in 0..20 {
            // One allowed and two refused per second: refusals stay at the threshold.
            assert_eq!(limiter.check(false, now), Verdict::Allow);
            assert_eq!(limiter.check(false, now), Verdict::Refuse);
            assert_eq!(limiter.check(false, now), Verdict::Refuse);
            now += Duration::from_secs(1);
        }
    }
}
