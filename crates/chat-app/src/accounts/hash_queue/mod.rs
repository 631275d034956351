//! Password hashing, rationed: Argon2id is the costliest thing a client can ask of the
//! app without an account (19 MiB and tens of milliseconds of a core per hash), so every
//! hash (login and registration) goes through one [`HashQueue`]:
//!
//! - **At most `permits` hashes run at once**, and the permit belongs to the hash, not to
//!   the request: it moves into the blocking task and is given back when the hash ends,
//!   however the request ended meanwhile (client gone, timeout, cancelled). So at most
//!   `permits` blocking threads are ever busy hashing.
//! - **Argon2 memory is at most `permits × 19 MiB`**, exactly: a permit carries its
//!   hash's work area ([`Memory`]), handed with the permit straight to the next waiter,
//!   and freed only when nobody waits. Under a flood no area is allocated or freed, so
//!   what the allocator keeps of freed memory does not grow either.
//! - **Waiting is bounded**: at most `per_group` requests of one fairness group wait, and
//!   at most `total` in all; past either, the request is refused at once with the time to
//!   retry (the API answers 429 and `Retry-After`) instead of waiting without end. When
//!   the whole queue is full, a newcomer whose group waits at least two fewer than the
//!   longest group takes the place of that group's newest waiter (longest-queue drop),
//!   so a full queue refuses the groups that fill it, not a newcomer. (An attacker with
//!   more groups than the queue has places can still keep it full; the per-address login
//!   rate, `api::LOGIN_PER_ADDRESS`, bounds what each of them sends.)
//! - **Fair across groups**: a free permit goes to the groups with waiters in turn
//!   (round robin), first come first served within a group. A group that floods gets one
//!   hash per round, like everybody else, so a legitimate login waits for at most one
//!   round: the number of groups waiting (≤ `total`) times a hash, over `permits`.
//!
//! The fairness group of a client is its IPv4 address, or the /48 of its IPv6 address.
//! A /64 (the rate limits' unit, `limit::address_key`) is far too fine for this: an end
//! site is given a /56 (homes) or a /48 (businesses, RIPE-690 and RFC 6177), so one
//! attacker would count as 256 or 65 536 groups and take that many turns per round. The
//! /48 is the largest block one site is normally given, so an attacker holding one counts
//! once. The cost: clients of an ISP that hands out /56s share one group with up to 255
//! neighbours; they only notice when one of them floods (they then share its turn and
//! its `per_group` waiting places).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::password::Memory;

/// Hashes computed at once.
pub const DEFAULT_PERMITS: usize = 4;
/// Requests waiting for a hash, in all.
pub const DEFAULT_QUEUE: usize = 256;
/// Requests of one fairness group (IPv4 address, IPv6 /48) waiting for a hash.
pub const DEFAULT_QUEUE_PER_GROUP: usize = 4;

/// What a queue allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashLimits {
    /// Hashes computed at once (each holds Argon2's memory while it runs). At least 1.
    pub permits: usize,
    /// Requests waiting, in all.
    pub queue: usize,
    /// Requests of one fairness group waiting.
    pub queue_per_group: usize,
}

impl Default for HashLimits {
    fn default() -> Self {
        Self {
            permits: DEFAULT_PERMITS,
            queue: DEFAULT_QUEUE,
            queue_per_group: DEFAULT_QUEUE_PER_GROUP,
        }
    }
}

/// Why a hash was not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashRefused {
    /// The queue (the client's group's share of it, or all of it) is full.
    #[error("too many sign-ins in progress: try again in {} s", retry_secs(*retry_after))]
    Busy {
        /// A guess at when a place will be free: the queue's length in hashes.
        retry_after: Duration,
    },
    /// The blocking task did not complete (the runtime is shutting down).
    #[error("the hash did not complete")]
    Failed,
}

/// Whole seconds to tell a client to wait: rounded up, at least 1.
pub fn retry_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The fairness group of a client address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 its
/// /48 (see the module docs for why).
pub fn fairness_group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 80) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Password hashes run through here: see the module docs.
#[derive(Clone)]
pub struct HashQueue {
    shared: Arc<Shared>,
}

struct Shared {
    limits: HashLimits,
    state: Mutex<State>,
    running: AtomicUsize,
    peak: AtomicUsize,
    /// Argon2 work areas alive (with a running hash, or on their way to the next).
    areas: AtomicUsize,
    /// Exponential average of a hash's duration, in microseconds (for `Retry-After`).
    average_us: AtomicU64,
}

struct State {
    /// Permits not held by a hash. Invariant: `free > 0` only while nobody waits.
    free: usize,
    /// Waiters per group, oldest first.
    queues: HashMap<IpAddr, VecDeque<Waiter>>,
    /// Groups with waiters, in the order their turns come.
    turns: VecDeque<IpAddr>,
    waiting: usize,
    next_id: u64,
}

struct Waiter {
    id: u64,
    grant: oneshot::Sender<Grant>,
}

enum Grant {
    /// A permit, now held by the receiver, with the work area of the hash that held it
    /// before (none if it was free).
    Permit(Option<Memory>),
    /// Pushed out of a full queue by a group that waited less.
    Refused,
}

impl HashQueue {
    /// A queue with these limits.
    pub fn new(limits: HashLimits) -> Self {
        let limits = HashLimits {
            permits: limits.permits.max(1),
            ..limits
        };
        Self {
            shared: Arc::new(Shared {
                limits,
                state: Mutex::new(State {
                    free: limits.permits,
                    queues: HashMap::new(),
                    turns: VecDeque::new(),
                    waiting: 0,
                    next_id: 0,
                }),
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                areas: AtomicUsize::new(0),
                // A first guess before any hash is timed: 100 ms.
                average_us: AtomicU64::new(100_000),
            }),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> HashLimits {
        self.shared.limits
    }

    /// Hashes running now.
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::Relaxed)
    }

    /// Most hashes that ever ran at once.
    pub fn peak(&self) -> usize {
        self.shared.peak.load(Ordering::Relaxed)
    }

    /// Argon2 work areas allocated now (at most `permits`).
    pub fn memory_areas(&self) -> usize {
        self.shared.areas.load(Ordering::Relaxed)
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.shared.lock().waiting
    }

    /// Runs `work` (a hash, in the work area it is given) on the blocking pool once a
    /// permit is free for `peer`, or refuses at once when the queue has no place for
    /// it. The permit and its area stay with `work` until it returns, even if the caller
    /// stops waiting.
    pub async fn run<T, F>(&self, peer: IpAddr, work: F) -> Result<T, HashRefused>
    where
        F: FnOnce(&mut Memory) -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.acquire(fairness_group(peer)).await?;
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            // Dropped when the hash ends: the next waiter gets the permit only then.
            let mut permit = permit;
            let memory = permit.memory.get_or_insert_with(|| {
                shared.areas.fetch_add(1, Ordering::Relaxed);
                Memory::new()
            });
            let running = Running::start(&shared);
            let started = Instant::now();
            let out = work(memory);
            shared.timed(started.elapsed());
            drop(running);
            metrics::counter!("chat_password_hashes_total").increment(1);
            out
        })
        .await
        .map_err(|_| HashRefused::Failed)
    }

    async fn acquire(&self, group: IpAddr) -> Result<Permit, HashRefused> {
        let (id, grant) = {
            let mut state = self.shared.lock();
            if state.free > 0 {
                state.free -= 1;
                return Ok(Permit {
                    shared: self.shared.clone(),
                    memory: None,
                });
            }
            let busy = HashRefused::Busy {
                retry_after: self.shared.wait_estimate(state.turns.len() + 1),
            };
            let mine = state.queues.get(&group).map_or(0, VecDeque::len);
            if mine >= self.shared.limits.queue_per_group {
                metrics::counter!("chat_password_hash_refusals_total", "why" => "group")
                    .increment(1);
                return Err(busy);
            }
            if state.waiting >= self.shared.limits.queue && !state.push_out_longest(mine) {
                metrics::counter!("chat_password_hash_refusals_total", "why" => "queue")
                    .increment(1);
                return Err(busy);
            }
            let (tx, rx) = oneshot::channel();
            let id = state.next_id;
            state.next_id += 1;
            state.enqueue(group, Waiter { id, grant: tx });
            (id, rx)
        };
        let mut ticket = Ticket {
            shared: self.shared.clone(),
            group,
            id,
            grant: Some(grant),
        };
        ticket.wait().await
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn timed(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let old = self.average_us.load(Ordering::Relaxed);
        // New sample weighs 1/8; races between hashes only lose a sample.
        let new = old - old / 8 + took / 8;
        self.average_us.store(new, Ordering::Relaxed);
    }

    /// How long `ahead` hashes take on all permits. Asked with the number of groups
    /// waiting: one round, about when a refused client's group is served next.
    fn wait_estimate(&self, ahead: usize) -> Duration {
        let per_hash = Duration::from_micros(self.average_us.load(Ordering::Relaxed));
        let rounds = u32::try_from(ahead.div_ceil(self.limits.permits)).unwrap_or(u32::MAX);
        per_hash.saturating_mul(rounds)
    }

    /// A permit came back: it goes with its area to the next group's oldest waiter, or
    /// stays free. Returns the area to free (after the lock) when nobody waits.
    #[must_use]
    fn release(&self, state: &mut State, mut memory: Option<Memory>) -> Option<Memory> {
        while let Some(waiter) = state.next_waiter() {
            match waiter.grant.send(Grant::Permit(memory)) {
                Ok(()) => return None,
                // Its request is gone (the ticket is being dropped): try the next one.
                Err(Grant::Permit(back)) => memory = back,
                Err(Grant::Refused) => memory = None,
            }
        }
        state.free += 1;
        if memory.is_some() {
            self.areas.fetch_sub(1, Ordering::Relaxed);
        }
        memory
    }
}

impl State {
    fn enqueue(&mut self, group: IpAddr, waiter: Waiter) {
        let queue = self.queues.entry(group).or_default();
        if queue.is_empty() {
            self.turns.push_back(group);
        }
        queue.push_back(waiter);
        self.set_waiting(self.waiting + 1);
    }

    fn set_waiting(&mut self, waiting: usize) {
        self.waiting = waiting;
        metrics::gauge!("chat_password_hash_queue_waiting").set(waiting as f64);
    }

    /// The oldest waiter of the group whose turn it is; that group goes to the back.
    fn next_waiter(&mut self) -> Option<Waiter> {
        let group = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&group)?;
        let waiter = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&group);
        } else {
            self.turns.push_back(group);
        }
        if waiter.is_some() {
            self.set_waiting(self.waiting - 1);
        }
        waiter
    }

    /// The queue is full: refuses the newest waiter of the longest group if that group
    /// waits more than the newcomer's (`mine`). `false` if none does.
    fn push_out_longest(&mut self, mine: usize) -> bool {
        let Some((&group, _)) = self
            .queues
            .iter()
            .filter(|(_, queue)| queue.len() > mine + 1)
            .max_by_key(|(_, queue)| queue.len())
        else {
            return false;
        };
        let Some(pushed) = self.remove_newest(group) else {
            return false;
        };
        let _ = pushed.grant.send(Grant::Refused);
        metrics::counter!("chat_password_hash_refusals_total", "why" => "pushed out").increment(1);
        true
    }

    fn remove_newest(&mut self, group: IpAddr) -> Option<Waiter> {
        let queue = self.queues.get_mut(&group)?;
        let waiter = queue.pop_back();
        if queue.is_empty() {
            self.queues.remove(&group);
            self.turns.retain(|g| *g != group);
        }
        if waiter.is_some() {
            self.set_waiting(self.waiting - 1);
        }
        waiter
    }

    /// Removes waiter `id` of `group` if it still waits: `true` if it did.
    fn remove(&mut self, group: IpAddr, id: u64) -> bool {
        let Some(queue) = self.queues.get_mut(&group) else {
            return false;
        };
        let Some(at) = queue.iter().position(|w| w.id == id) else {
            return false;
        };
        queue.remove(at);
        if queue.is_empty() {
            self.queues.remove(&group);
            self.turns.retain(|g| *g != group);
        }
        self.set_waiting(self.waiting - 1);
        true
    }
}

/// Counts a hash as running while it lives (also if the hash panics).
struct Running<'a>(&'a Shared);

impl<'a> Running<'a> {
    fn start(shared: &'a Shared) -> Self {
        let running = shared.running.fetch_add(1, Ordering::Relaxed) + 1;
        let peak = shared
            .peak
            .fetch_max(running, Ordering::Relaxed)
            .max(running);
        metrics::gauge!("chat_password_hashes_running").increment(1.0);
        metrics::gauge!("chat_password_hashes_peak").set(peak as f64);
        Self(shared)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("chat_password_hashes_running").decrement(1.0);
    }
}

/// A running hash's right to run, and its work area once it has one; given back (to
/// the next waiter) when dropped.
struct Permit {
    shared: Arc<Shared>,
    memory: Option<Memory>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let unused = self.shared.release(&mut state, self.memory.take());
        drop(state);
        drop(unused);
    }
}

/// A place in the queue. Dropped before its grant arrived (the request went away), it
/// leaves the queue; dropped after a permit was sent but before it was taken, it gives
/// the permit back, so no permit is ever lost with a request.
struct Ticket {
    shared: Arc<Shared>,
    group: IpAddr,
    id: u64,
    grant: Option<oneshot::Receiver<Grant>>,
}

impl Ticket {
    async fn wait(&mut self) -> Result<Permit, HashRefused> {
        let Some(grant) = self.grant.as_mut() else {
            return Err(HashRefused::Failed);
        };
        let outcome = grant.await;
        // Taken: from here on the permit (if any) is the caller's, not the ticket's.
        self.grant = None;
        match outcome {
            Ok(Grant::Permit(memory)) => Ok(Permit {
                shared: self.shared.clone(),
                memory,
            }),
            Ok(Grant::Refused) => {
                let groups = self.shared.lock().turns.len();
                Err(HashRefused::Busy {
                    retry_after: self.shared.wait_estimate(groups + 1),
                })
            }
            Err(_) => Err(HashRefused::Failed),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(mut grant) = self.grant.take() else {
            return;
        };
        // Grants are sent with the lock held, so under it the outcome is settled.
        let mut state = self.shared.lock();
        if state.remove(self.group, self.id) {
            return;
        }
        if let Ok(Grant::Permit(memory)) = grant.try_recv() {
            let unused = self.shared.release(&mut state, memory);
            drop(state);
            drop(unused);
        }
    }
}

#[cfg(test)]
mod tests;
