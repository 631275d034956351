//! Flood limits shared by every room channel: a rate per key (a token bucket), kept in a
//! table that cannot grow without bound.
//!
//! Two limits use it: `typing` broadcasts per user per room (`room.rs`; ten tabs of one
//! user share one key, so they cannot multiply the rate), and room creations per client
//! address (`directory.rs`; every new room is a permanent `rooms` row).
//!
//! The clock is a parameter (`now`), never read here, so tests drive time by hand.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most keys one limit tracks (≈ 5–10 MiB at worst). Past it, new keys are refused
/// until a sweep frees room: a limit that fails open under a flood of keys would not be
/// a limit.
pub const MAX_KEYS: usize = 65_536;

/// Below this many keys the table is never swept.
const MIN_SWEEP_AT: usize = 1_024;

/// At the key cap, sweep at most this often: a sweep is a pass over every key.
const SWEEP_PAUSE: Duration = Duration::from_secs(1);

/// A rate: `burst` events at once, then one more every `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Events allowed at once (a full bucket). At least 1.
    pub burst: u32,
    /// Time to earn one more event back. Zero: no limit.
    pub period: Duration,
}

impl Rate {
    /// `burst` at once (at least 1), then one per `period`.
    pub fn new(burst: u32, period: Duration) -> Self {
        Self {
            burst: burst.max(1),
            period,
        }
    }

    /// One event per `period`, no burst.
    pub fn one_per(period: Duration) -> Self {
        Self::new(1, period)
    }
}

/// A token bucket per key, all in one table behind a lock held for a map lookup.
///
/// Each bucket is kept as one instant, the time at which it is full again (the
/// "theoretical arrival time" of GCRA, equivalent to a token bucket): an event is
/// allowed while that instant is at most `(burst - 1) × period` ahead of now, and moves
/// it one `period` further. A full bucket is the same as no entry, so full buckets are
/// evicted: the table holds only keys that spent something in the last
/// `burst × period`, and never more than [`MAX_KEYS`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use chat_app::limit::{Rate, RateLimit};
///
/// let limit = RateLimit::new(Rate::new(2, Duration::from_secs(1)));
/// let t0 = Instant::now();
/// assert!(limit.try_acquire("ann", t0));
/// assert!(limit.try_acquire("ann", t0));
/// assert!(!limit.try_acquire("ann", t0)); // burst spent
/// assert!(limit.try_acquire("bob", t0)); // keys are independent
/// assert!(limit.try_acquire("ann", t0 + Duration::from_secs(1))); // one earned back
/// ```
#[derive(Debug)]
pub struct RateLimit<K> {
    rate: Rate,
    max_keys: usize,
    table: Mutex<Table<K>>,
}

#[derive(Debug)]
struct Table<K> {
    /// Key → the instant its bucket is full again.
    full_at: HashMap<K, Instant>,
    /// Sweep when a new key arrives and the table holds this many.
    sweep_at: usize,
    last_sweep: Option<Instant>,
    /// Whether the cap was hit (logged once per episode).
    saturated: bool,
}

impl<K: Hash + Eq> RateLimit<K> {
    /// A limit of `rate` per key, at most [`MAX_KEYS`] keys.
    pub fn new(rate: Rate) -> Self {
        Self::with_max_keys(rate, MAX_KEYS)
    }

    /// A limit of `rate` per key that tracks at most `max_keys` keys.
    pub fn with_max_keys(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            max_keys: max_keys.max(1),
            table: Mutex::new(Table {
                full_at: HashMap::new(),
                sweep_at: MIN_SWEEP_AT.min(max_keys.max(1)),
                last_sweep: None,
                saturated: false,
            }),
        }
    }

    /// The rate of each key.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Spends one event of `key` at `now`: `true` if allowed.
    pub fn try_acquire<Q>(&self, key: &Q, now: Instant) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let period = self.rate.period;
        // burst ≥ 1 (`Rate::new`); saturating so a huge burst cannot overflow.
        let tolerance = period.saturating_mul(self.rate.burst.saturating_sub(1));
        let mut table = self.lock();
        if let Some(full_at) = table.full_at.get_mut(key) {
            let start = (*full_at).max(now);
            if start.saturating_duration_since(now) > tolerance {
                return false;
            }
            *full_at = start + period;
            return true;
        }
        let refill = period.saturating_mul(self.rate.burst);
        if !table.make_room(now, self.max_keys, refill) {
            return false;
        }
        table.full_at.insert(key.to_owned(), now + period);
        true
    }

    /// Gives back one event spent by [`RateLimit::try_acquire`] (when what it paid for did
    /// not happen, e.g. the room turned out to exist already).
    pub fn refund<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut table = self.lock();
        if let Some(full_at) = table.full_at.get_mut(key) {
            // Going below now only makes the bucket "full": `try_acquire` starts from
            // max(full_at, now), so a refund never grants more than `burst`.
            if let Some(earlier) = full_at.checked_sub(self.rate.period) {
                *full_at = earlier;
            }
        }
    }

    /// Keys tracked now (full buckets not yet swept included).
    pub fn len(&self) -> usize {
        self.lock().full_at.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table<K>> {
        // Every update leaves the table consistent, so a panic elsewhere while holding
        // the lock (there is no code that can) would not corrupt it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Hash + Eq> Table<K> {
    /// Makes space for one new key if possible: sweeps full buckets when the table has
    /// doubled since the last sweep (amortised O(1) per key), or when every bucket seen
    /// at the last sweep has had time to refill (so memory comes back after a burst),
    /// and refuses at the cap.
    fn make_room(&mut self, now: Instant, max_keys: usize, refill: Duration) -> bool {
        let len = self.full_at.len();
        let stale = len >= MIN_SWEEP_AT.min(max_keys)
            && self
                .last_sweep
                .is_none_or(|t| now >= t + refill.max(SWEEP_PAUSE));
        if len < self.sweep_at && !stale {
            return true;
        }
        let at_cap = len >= max_keys;
        if at_cap && self.last_sweep.is_some_and(|t| now < t + SWEEP_PAUSE) {
            return false;
        }
        self.full_at.retain(|_, full_at| *full_at > now);
        let len = self.full_at.len();
        if self.full_at.capacity() > 4 * len.max(MIN_SWEEP_AT) {
            self.full_at.shrink_to(2 * len);
        }
        self.last_sweep = Some(now);
        self.sweep_at = (2 * len).clamp(MIN_SWEEP_AT.min(max_keys), max_keys);
        let fits = len < max_keys;
        if !fits && !self.saturated {
            tracing::warn!(
                max_keys,
                "rate limit table full: new keys are refused until buckets refill"
            );
        }
        self.saturated = !fits;
        fits
    }
}

/// Default `typing` throttle: one broadcast per user per room per second.
pub const DEFAULT_TYPING_INTERVAL: Duration = Duration::from_secs(1);
/// Default room-creation budget per client address: 10 at once, then one every 6 s.
pub const DEFAULT_ROOM_CREATION: Rate = Rate {
    burst: 10,
    period: Duration::from_secs(6),
};

/// The key a client address is limited under: the address itself for IPv4, its /64
/// for IPv6 (one subscriber usually holds a whole /64, so per-address keys would give
/// a single client 2^64 buckets). IPv4-mapped IPv6 addresses count as IPv4.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_is_allowed_then_one_per_period() {
        let limit = RateLimit::new(Rate::new(10, 6 * SEC));
        let t0 = Instant::now();
        let allowed = (0..30).filter(|_| limit.try_acquire("ip", t0)).count();
        assert_eq!(allowed, 10);
        assert!(!limit.try_acquire("ip", t0 + 5 * SEC), "not earned yet");
        assert!(limit.try_acquire("ip", t0 + 6 * SEC), "one earned");
        assert!(!limit.try_acquire("ip", t0 + 6 * SEC), "only one");
        // A long pause refills the bucket to its burst, not beyond.
        let later = t0 + 3600 * SEC;
        let allowed = (0..30).filter(|_| limit.try_acquire("ip", later)).count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn one_per_period_drops_everything_in_between() {
        let typing = RateLimit::new(Rate::one_per(SEC));
        let t0 = Instant::now();
        let mut allowed = 0;
        // 200 events spread over 2.5 s: one at 0 s, 1 s and 2 s.
        for i in 0..200u32 {
            if typing.try_acquire(
                "lobby/ann",
                t0 + Duration::from_micros(12_500 * u64::from(i)),
            ) {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 3);
    }

    #[test]
    fn keys_are_independent() {
        let typing = RateLimit::new(Rate::one_per(SEC));
        let t0 = Instant::now();
        assert!(typing.try_acquire("lobby/ann", t0));
        assert!(!typing.try_acquire("lobby/ann", t0));
        assert!(typing.try_acquire("lobby/bob", t0));
        assert!(typing.try_acquire("other/ann", t0));
    }

    #[test]
    fn a_zero_period_never_limits() {
        let limit = RateLimit::new(Rate::one_per(Duration::ZERO));
        let t0 = Instant::now();
        assert!((0..100).all(|_| limit.try_acquire("k", t0)));
    }

    #[test]
    fn a_refund_gives_one_event_back_and_never_more_than_the_burst() {
        let limit = RateLimit::new(Rate::new(2, 6 * SEC));
        let t0 = Instant::now();
        assert!(limit.try_acquire("ip", t0));
        assert!(limit.try_acquire("ip", t0));
        assert!(!limit.try_acquire("ip", t0));
        limit.refund("ip");
        assert!(limit.try_acquire("ip", t0), "the refunded event");
        assert!(!limit.try_acquire("ip", t0));
        // Refunds of a full bucket do not bank extra events.
        let later = t0 + 600 * SEC;
        for _ in 0..5 {
            limit.refund("ip");
        }
        let allowed = (0..10).filter(|_| limit.try_acquire("ip", later)).count();
        assert_eq!(allowed, 2);
        limit.refund("unknown"); // no entry: nothing to do, no panic
    }

    #[test]
    fn full_buckets_are_evicted_so_the_table_stays_small() {
        let typing = RateLimit::new(Rate::one_per(SEC));
        let t0 = Instant::now();
        // 100 000 distinct keys over 10 s, 10 per millisecond: at any time only the
        // last second's 10 000 keys are live, and the table holds at most about twice
        // that (it is swept each time it doubles).
        let mut most = 0;
        for i in 0..100_000u64 {
            let now = t0 + Duration::from_micros(100 * i);
            assert!(typing.try_acquire(&format!("k{i}"), now));
            most = most.max(typing.len());
        }
        assert!(most <= 25_000, "held {most} keys");
        assert!(most < MAX_KEYS);
        // Long after, one new key sweeps every stale one away.
        let much_later = t0 + 3600 * SEC;
        typing.try_acquire("fresh", much_later);
        assert!(typing.len() <= 1024, "stale keys kept: {}", typing.len());
    }

    #[test]
    fn at_the_key_cap_new_keys_are_refused_until_buckets_refill() {
        let limit = RateLimit::with_max_keys(Rate::new(10, 6 * SEC), 100);
        let t0 = Instant::now();
        for i in 0..100 {
            assert!(limit.try_acquire(&i, t0));
        }
        assert!(!limit.try_acquire(&1000, t0), "cap reached: fail closed");
        assert!(
            limit.try_acquire(&5, t0),
            "known keys keep their own bucket"
        );
        assert_eq!(limit.len(), 100);
        // Once the buckets have refilled (6 s; 5's second event makes it 12 s) the
        // stale ones are swept and new keys fit again.
        let later = t0 + 7 * SEC;
        assert!(limit.try_acquire(&1000, later));
        assert!(limit.len() <= 3, "{}", limit.len());
    }

    #[test]
    fn ipv6_clients_are_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
        assert_eq!(address_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(address_key(v4), v4);
    }
}
