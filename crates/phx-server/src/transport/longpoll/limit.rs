//! How many long-poll sessions may live at once: a global cap and a cap per client
//! address, so neither a flood of token-less GETs nor one client can grow memory without
//! bound or take every session for itself.
//!
//! A session holds a [`SessionSlot`] from before its origin check and connect hook run
//! until it ends; dropping the slot (whatever ended the session, a panic included) gives
//! it back.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// Default cap on live long-poll sessions of one endpoint (see
/// [`crate::EndpointBuilder::longpoll_max_sessions`]).
///
/// Why this number: an idle session costs ~5 KB and one whose client stopped polling
/// holds at most its outbound budget ([`crate::DEFAULT_OUTBOUND_BYTES`], 256 KiB) before
/// it is ended, so 10 000 sessions are ~50 MB in the common case and 2.5 GiB in the worst
/// (every buffer full at once), the same order as the WebSocket worst case. Long poll is
/// the fallback transport: 10 000 concurrent fallback clients is far above what one node
/// serves that way in practice.
pub const DEFAULT_LONGPOLL_MAX_SESSIONS: usize = 10_000;

/// Default cap on live long-poll sessions per client address (see
/// [`crate::EndpointBuilder::longpoll_max_sessions_per_address`]).
///
/// Why this number: a browser tab holds one session, and a reloaded tab leaves its old
/// session behind for up to three windows (§7.5), so one person rarely holds more than a
/// handful; 100 leaves room for a small office behind one NAT address while a single
/// address can take at most 1 % of [`DEFAULT_LONGPOLL_MAX_SESSIONS`]. Raise it when many
/// users share one address (a corporate proxy that blocks WebSockets sends them all to
/// long poll from its own address).
pub const DEFAULT_LONGPOLL_MAX_SESSIONS_PER_ADDRESS: usize = 100;

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SessionLimitError {
    /// The endpoint holds its maximum number of sessions (answered 503).
    #[error("long-poll sessions of the endpoint at their limit")]
    Endpoint,
    /// The client's address holds its maximum number of sessions (answered 429).
    #[error("long-poll sessions of this client address at their limit")]
    Address,
}

/// Live session counts, global and per client address.
#[derive(Debug)]
pub(crate) struct SessionLimit {
    max_total: usize,
    max_per_address: usize,
    total: AtomicUsize,
    /// Only addresses holding at least one slot have an entry, so the map never has more
    /// entries than `max_total`.
    per_address: DashMap<IpAddr, usize>,
}

impl SessionLimit {
    pub(crate) fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            total: AtomicUsize::new(0),
            per_address: DashMap::new(),
        })
    }

    /// Takes a slot for a session of a client at `peer`, or says which cap is reached.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        peer: IpAddr,
    ) -> Result<SessionSlot, SessionLimitError> {
        self.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_total).then_some(n + 1)
            })
            .map_err(|_| SessionLimitError::Endpoint)?;
        let address = client_address(peer);
        let admitted = match self.per_address.entry(address) {
            Entry::Occupied(mut held) if *held.get() < self.max_per_address => {
                *held.get_mut() += 1;
                true
            }
            Entry::Occupied(_) => false,
            Entry::Vacant(free) => {
                // A cap of zero refuses every address.
                let admitted = self.max_per_address > 0;
                if admitted {
                    free.insert(1);
                }
                admitted
            }
        };
        if !admitted {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(SessionLimitError::Address);
        }
        Ok(SessionSlot {
            limit: self.clone(),
            address,
        })
    }

    /// Sessions holding a slot now.
    pub(crate) fn live(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    fn release(&self, address: IpAddr) {
        if let Entry::Occupied(mut held) = self.per_address.entry(address) {
            *held.get_mut() -= 1;
            if *held.get() == 0 {
                held.remove();
            }
        }
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One live session's place under the caps; given back when dropped.
#[derive(Debug)]
pub(crate) struct SessionSlot {
    limit: Arc<SessionLimit>,
    address: IpAddr,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.limit.release(self.address);
    }
}

/// The address a per-client cap counts under. An IPv6 client usually controls a whole
/// /64 (one LAN, one home), so IPv6 addresses count per /64 prefix: otherwise one client
/// could take every slot by changing its low 64 bits. IPv4-mapped addresses count as
/// their IPv4 address.
fn client_address(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn global_cap_refuses_past_the_limit_and_frees_on_drop() {
        let limit = SessionLimit::new(2, 10);
        let a = limit.acquire(ip("10.0.0.1")).unwrap();
        let _b = limit.acquire(ip("10.0.0.2")).unwrap();
        assert_eq!(
            limit.acquire(ip("10.0.0.3")).unwrap_err(),
            SessionLimitError::Endpoint
        );
        assert_eq!(limit.live(), 2);
        drop(a);
        assert_eq!(limit.live(), 1);
        assert!(limit.acquire(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn address_cap_refuses_one_address_but_not_others() {
        let limit = SessionLimit::new(100, 2);
        let _a = limit.acquire(ip("10.0.0.1")).unwrap();
        let _b = limit.acquire(ip("10.0.0.1")).unwrap();
        assert_eq!(
            limit.acquire(ip("10.0.0.1")).unwrap_err(),
            SessionLimitError::Address
        );
        // The refused attempt gave its global slot back.
        assert_eq!(limit.live(), 2);
        assert!(limit.acquire(ip("10.0.0.2")).is_ok());
    }

    #[test]
    fn address_entries_are_removed_when_their_count_drops_to_zero() {
        let limit = SessionLimit::new(1000, 10);
        let slots: Vec<_> = (0..200u8)
            .map(|i| limit.acquire(ip(&format!("10.0.{i}.1"))).unwrap())
            .collect();
        assert_eq!(limit.per_address.len(), 200);
        drop(slots);
        assert_eq!(limit.per_address.len(), 0);
        assert_eq!(limit.live(), 0);
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_cap() {
        let limit = SessionLimit::new(100, 1);
        let _a = limit.acquire(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            limit.acquire(ip("2001:db8:1:2:ffff::9")).unwrap_err(),
            SessionLimitError::Address
        );
        assert!(limit.acquire(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let limit = SessionLimit::new(100, 1);
        let _a = limit.acquire(ip("192.0.2.7")).unwrap();
        assert_eq!(
            limit.acquire(ip("::ffff:192.0.2.7")).unwrap_err(),
            SessionLimitError::Address
        );
    }

    #[test]
    fn zero_caps_refuse_everything() {
        assert_eq!(
            SessionLimit::new(0, 10)
                .acquire(ip("10.0.0.1"))
                .unwrap_err(),
            SessionLimitError::Endpoint
        );
        let limit = SessionLimit::new(10, 0);
        assert_eq!(
            limit.acquire(ip("10.0.0.1")).unwrap_err(),
            SessionLimitError::Address
        );
        assert_eq!(limit.live(), 0);
    }
}
