//! Flood limits: a rate per key (a token bucket), kept in a table that cannot grow
//! without bound and never refuses a key for being new.
//!
//! Users: `typing` broadcasts per user per room (`room.rs`; ten tabs of one user share
//! one key, so they cannot multiply the rate), room creations per client address
//! (`directory.rs`; every new room is a permanent `rooms` row), uploads per user, and
//! the account API's login and registration budgets (`accounts::api`).
//!
//! The clock is a parameter (`now`), never read here, so tests drive time by hand.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most keys one limit tracks. At the cap, the keys whose buckets are nearest to full
/// are forgotten to make room (see [`RateLimit`]): a new key is never refused for the
/// table being full, since that would let one client with many keys (an IPv6 /48 holds
/// 65 536 /64s) lock every other client out. Measured at the cap (`tests/limit_memory.rs`,
/// SECURITY.md): 4.1 MiB with 16-byte keys (hashed usernames), 5.1 MiB with addresses,
/// 24.5 MiB with the longest `typing` keys (a 64-character room and a 32-character user
/// name, all 4-byte characters: `validate` bounds both).
pub const MAX_KEYS: usize = 65_536;

/// At the key cap, this fraction of the keys (the ones nearest to a full bucket) is
/// forgotten at once, so the pass over the table that finds them is paid once per
/// `MAX_KEYS / EVICT_DIVISOR` new keys, not once per key.
const EVICT_DIVISOR: usize = 8;

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
/// `burst × period`, and never more than [`MAX_KEYS`]. When it is full of keys still
/// refilling, the eighth nearest to full are forgotten: they lose at most what they
/// would have earned back soonest, while a key that is being hammered (far from full)
/// keeps its debt, and a newcomer always gets its own bucket.
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
        self.acquire(key, now).is_ok()
    }

    /// Spends one event of `key` at `now`, or says how long after `now` one is earned
    /// back (what a refusal tells the client: `Retry-After`).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use chat_app::limit::{Rate, RateLimit};
    ///
    /// let limit = RateLimit::new(Rate::new(1, Duration::from_secs(60)));
    /// let t0 = Instant::now();
    /// assert_eq!(limit.acquire("ann", t0), Ok(()));
    /// let later = t0 + Duration::from_secs(18);
    /// assert_eq!(limit.acquire("ann", later), Err(Duration::from_secs(42)));
    /// ```
    pub fn acquire<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
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
            let ahead = start.saturating_duration_since(now);
            if ahead > tolerance {
                return Err(ahead - tolerance);
            }
            *full_at = start + period;
            return Ok(());
        }
        let refill = period.saturating_mul(self.rate.burst);
        table.make_room(now, self.max_keys, refill);
        table.full_at.insert(key.to_owned(), now + period);
        Ok(())
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
    /// Makes space for one new key: sweeps full buckets when the table has doubled since
    /// the last sweep (amortised O(1) per key), or when every bucket seen at the last
    /// sweep has had time to refill (so memory comes back after a burst); at the cap,
    /// forgets the keys nearest to a full bucket.
    fn make_room(&mut self, now: Instant, max_keys: usize, refill: Duration) {
        let len = self.full_at.len();
        let stale = len >= MIN_SWEEP_AT.min(max_keys)
            && self
                .last_sweep
                .is_none_or(|t| now >= t + refill.max(SWEEP_PAUSE));
        if len < self.sweep_at && !stale {
            return;
        }
        let at_cap = len >= max_keys;
        // At the cap a sweep is a pass over every key: at most one per `SWEEP_PAUSE`.
        if !(at_cap && self.last_sweep.is_some_and(|t| now < t + SWEEP_PAUSE)) {
            self.full_at.retain(|_, full_at| *full_at > now);
            self.last_sweep = Some(now);
        }
        if self.full_at.len() >= max_keys {
            self.evict_nearest_full((max_keys / EVICT_DIVISOR).max(1));
            if !self.saturated {
                tracing::warn!(
                    max_keys,
                    "rate limit table full: the keys nearest to a full bucket are forgotten"
                );
            }
            self.saturated = true;
        } else {
            self.saturated = false;
        }
        let len = self.full_at.len();
        if self.full_at.capacity() > 4 * len.max(MIN_SWEEP_AT) {
            self.full_at.shrink_to(2 * len);
        }
        self.sweep_at = (2 * len).clamp(MIN_SWEEP_AT.min(max_keys), max_keys);
    }

    /// Forgets the `count` keys whose buckets are full soonest (ties broken arbitrarily).
    fn evict_nearest_full(&mut self, count: usize) {
        let mut times: Vec<Instant> = self.full_at.values().copied().collect();
        let Some(nth) = count.checked_sub(1).filter(|&n| n < times.len()) else {
            self.full_at.clear();
            return;
        };
        let (_, &mut threshold, _) = times.select_nth_unstable(nth);
        drop(times);
        // Everything strictly before the threshold goes, then ties until `count`.
        let before = self.full_at.values().filter(|t| **t < threshold).count();
        let mut ties = count.saturating_sub(before);
        self.full_at
            .retain(|_, full_at| match (*full_at).cmp(&threshold) {
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal if ties > 0 => {
                    ties -= 1;
                    false
                }
                _ => true,
            });
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
    fn at_the_key_cap_a_new_key_is_never_refused_and_a_hammered_key_keeps_its_debt() {
        let limit = RateLimit::with_max_keys(Rate::new(10, 6 * SEC), 100);
        let t0 = Instant::now();
        // Key 0 spends its whole burst: its bucket is full again only in 60 s.
        assert_eq!((0..10).filter(|_| limit.try_acquire(&0, t0)).count(), 10);
        assert!(!limit.try_acquire(&0, t0));
        // 99 keys that spent one event each, a millisecond apart: full in about 6 s.
        for i in 1..100u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            assert!(limit.try_acquire(&i, now));
        }
        assert_eq!(limit.len(), 100);
        // The table is full of buckets still refilling: new keys still get one.
        let now = t0 + SEC;
        for new in 1000..1100u32 {
            assert!(limit.try_acquire(&new, now), "new key {new} refused");
            assert!(limit.len() <= 100, "{} keys", limit.len());
        }
        // The keys nearest to full were forgotten, the hammered one was not.
        // (Burst spent at t0, one back every 6 s: the next at t0 + 6 s.)
        assert_eq!(limit.acquire(&0, now), Err(5 * SEC), "key 0 lost its debt");
        assert!(
            limit.try_acquire(&1, now),
            "key 1 was forgotten (fresh bucket)"
        );
    }

    #[test]
    fn a_refusal_says_when_the_next_event_is_earned() {
        let limit = RateLimit::new(Rate::new(2, 10 * SEC));
        let t0 = Instant::now();
        assert_eq!(limit.acquire("ip", t0), Ok(()));
        assert_eq!(limit.acquire("ip", t0 + SEC), Ok(()));
        assert_eq!(limit.acquire("ip", t0 + 2 * SEC), Err(8 * SEC));
        assert_eq!(limit.acquire("ip", t0 + 9 * SEC), Err(SEC));
        assert_eq!(limit.acquire("ip", t0 + 10 * SEC), Ok(()));
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
