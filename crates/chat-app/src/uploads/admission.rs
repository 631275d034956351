//! Who may start sending an upload body now: slots per user, per client address and per
//! node, and the bytes all bodies being received hold in memory.
//!
//! A body is buffered while it arrives (it is sniffed and, for an image, decoded before
//! anything is written), so a receiving upload costs a slot and its bytes. Without a
//! per-user cap one user's trickling uploads took every slot of the node and everyone
//! else got 503 for as long as the trickle lasted; so a user holds at most
//! [`AdmissionLimits::per_user`] slots, an address (several accounts behind it) at most
//! [`AdmissionLimits::per_address`], both well under the node's
//! [`AdmissionLimits::at_once`]. The bytes are counted as the buffers grow, not as
//! `Content-Length` declares, so a declared-but-unsent body holds nothing
//! ([`ByteBudget`]); `uploads::body` cuts off a body slower than the minimum rate, so a
//! slot cannot be held by a trickle either.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Upload bodies one user may send at once by default.
pub const DEFAULT_PER_USER: usize = 2;
/// Upload bodies one client address (IPv4 address, IPv6 /64) may send at once by default.
pub const DEFAULT_PER_ADDRESS: usize = 4;
/// Upload bodies a node receives at once by default.
pub const DEFAULT_AT_ONCE: usize = 32;
/// Bytes all bodies being received may hold at once by default: 64 MiB.
pub const DEFAULT_BUFFER_BYTES: u64 = 64 * 1024 * 1024;

/// The slot bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Bodies one user sends at once.
    pub per_user: usize,
    /// Bodies one client address sends at once.
    pub per_address: usize,
    /// Bodies the node receives at once.
    pub at_once: usize,
    /// Bytes of every body being received, together.
    pub buffer_bytes: u64,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self {
            per_user: DEFAULT_PER_USER,
            per_address: DEFAULT_PER_ADDRESS,
            at_once: DEFAULT_AT_ONCE,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
        }
    }
}

/// Which slot bound refused an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    /// The user has `n` uploads in progress.
    #[error("you already have {0} uploads in progress: wait for one to finish")]
    User(usize),
    /// The address has `n` uploads in progress.
    #[error("{0} uploads are in progress from your address: wait for one to finish")]
    Address(usize),
    /// Every slot of the node is taken.
    #[error("too many uploads in progress: try again shortly")]
    Node,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    users: HashMap<i64, usize>,
    addresses: HashMap<IpAddr, usize>,
}

/// The slot table of a node. The tables hold only users and addresses with an upload in
/// progress, so they never have more than [`AdmissionLimits::at_once`] entries.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    counts: Arc<Mutex<Counts>>,
    bytes: ByteBudget,
}

impl Admission {
    /// A table within `limits` (each at least 1).
    pub fn new(limits: AdmissionLimits) -> Self {
        let limits = AdmissionLimits {
            per_user: limits.per_user.max(1),
            per_address: limits.per_address.max(1),
            at_once: limits.at_once.max(1),
            buffer_bytes: limits.buffer_bytes.max(1),
        };
        Self {
            bytes: ByteBudget::new(limits.buffer_bytes),
            limits,
            counts: Arc::default(),
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// The shared byte budget the bodies draw from.
    pub fn bytes(&self) -> &ByteBudget {
        &self.bytes
    }

    /// A slot for `user` at `address`, or the bound that refuses it. The three counts
    /// are checked and taken in one step, so racing requests cannot pass a bound.
    pub fn admit(&self, user: i64, address: IpAddr) -> Result<Slot, Full> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let by_user = counts.users.get(&user).copied().unwrap_or(0);
        if by_user >= self.limits.per_user {
            return Err(Full::User(by_user));
        }
        let by_address = counts.addresses.get(&address).copied().unwrap_or(0);
        if by_address >= self.limits.per_address {
            return Err(Full::Address(by_address));
        }
        if counts.total >= self.limits.at_once {
            return Err(Full::Node);
        }
        counts.total += 1;
        counts.users.insert(user, by_user + 1);
        counts.addresses.insert(address, by_address + 1);
        Ok(Slot {
            counts: self.counts.clone(),
            user,
            address,
        })
    }

    /// Slots taken now (tests, metrics).
    pub fn in_progress(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// A receiving slot; given back when dropped, however the request ends.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    user: i64,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        release(&mut counts.users, self.user);
        release(&mut counts.addresses, self.address);
    }
}

fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&key);
        }
    }
}

/// Bytes held by bodies being received, together: a buffer takes its capacity from the
/// budget before it grows and gives it back when the upload ends.
#[derive(Clone, Debug)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
}

/// Semaphore permits are `u32` per call and at most `usize::MAX >> 3` in all; a KiB per
/// permit keeps any budget far under both.
const UNIT: u64 = 1024;

impl ByteBudget {
    /// A budget of `bytes` (rounded up to a KiB).
    pub fn new(bytes: u64) -> Self {
        let units = usize::try_from(bytes.div_ceil(UNIT)).unwrap_or(usize::MAX);
        Self {
            permits: Arc::new(Semaphore::new(units.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// `bytes` more for `held`, at once or not at all (`false`: the budget is spent).
    pub fn try_take(&self, held: &mut Held, bytes: u64) -> bool {
        let units = bytes.div_ceil(UNIT);
        let Ok(units) = u32::try_from(units) else {
            return false;
        };
        if units == 0 {
            return true;
        }
        match self.permits.clone().try_acquire_many_owned(units) {
            Ok(permit) => {
                match &mut held.0 {
                    Some(all) => all.merge(permit),
                    none => *none = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Bytes left now (tests).
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }
}

/// Bytes taken from a [`ByteBudget`]; given back when dropped.
#[derive(Debug, Default)]
pub struct Held(Option<OwnedSemaphorePermit>);

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
    }

    fn limits(per_user: usize, per_address: usize, at_once: usize) -> AdmissionLimits {
        AdmissionLimits {
            per_user,
            per_address,
            at_once,
            buffer_bytes: 1 << 20,
        }
    }

    #[test]
    fn one_user_cannot_take_more_than_their_share_of_the_node() {
        let admission = Admission::new(limits(2, 100, 4));
        let a1 = admission.admit(1, addr(1)).unwrap();
        let _a2 = admission.admit(1, addr(2)).unwrap();
        assert_eq!(admission.admit(1, addr(3)).unwrap_err(), Full::User(2));
        // Another user still gets in, up to the node's pool.
        let _b1 = admission.admit(2, addr(4)).unwrap();
        let _b2 = admission.admit(3, addr(5)).unwrap();
        assert_eq!(admission.admit(4, addr(6)).unwrap_err(), Full::Node);
        drop(a1);
        assert_eq!(admission.in_progress(), 3);
        admission.admit(4, addr(6)).unwrap();
    }

    #[test]
    fn one_address_cannot_fill_the_node_with_many_accounts() {
        let admission = Admission::new(limits(2, 3, 100));
        let slots: Vec<Slot> = (0..3)
            .map(|user| admission.admit(user, addr(1)).unwrap())
            .collect();
        assert_eq!(admission.admit(9, addr(1)).unwrap_err(), Full::Address(3));
        assert!(admission.admit(9, addr(2)).is_ok());
        drop(slots);
        assert_eq!(admission.in_progress(), 0);
        // Emptied entries are removed: the tables only hold uploads in progress.
        let counts = admission.counts.lock().unwrap();
        assert!(counts.users.is_empty() && counts.addresses.is_empty());
    }

    #[test]
    fn the_byte_budget_is_shared_and_given_back() {
        let budget = ByteBudget::new(10 * 1024);
        let (mut a, mut b) = (Held::default(), Held::default());
        assert!(budget.try_take(&mut a, 6 * 1024));
        assert!(budget.try_take(&mut a, 1));
        assert!(!budget.try_take(&mut b, 4 * 1024), "7 KiB of 10 taken");
        assert!(budget.try_take(&mut b, 3 * 1024));
        assert_eq!(budget.available(), 0);
        drop(a);
        assert_eq!(budget.available(), 7 * 1024);
        assert!(!budget.try_take(&mut b, u64::MAX), "never overflows");
    }
}
