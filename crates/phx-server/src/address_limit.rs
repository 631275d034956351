//! Caps on what clients hold at once, in all and per client address: the long-poll
//! sessions of an endpoint and its TCP connections are counted this way, so that neither
//! a flood from many addresses can grow memory without bound nor one address take every
//! slot for itself.
//!
//! A holder keeps a [`Slot`] for as long as it lives; dropping the slot (whatever ended
//! the holder, a panic included) gives it back.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// Which cap refused a new slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitError {
    /// The endpoint holds its maximum in all (answered 503 Service Unavailable).
    #[error("the endpoint is at its limit")]
    Endpoint,
    /// The client's address holds its maximum (answered 429 Too Many Requests).
    #[error("this client address is at its limit")]
    Address,
}

/// Live counts, global and per client address.
#[derive(Debug)]
pub(crate) struct AddressLimit {
    max_total: usize,
    max_per_address: usize,
    total: AtomicUsize,
    /// Only addresses holding at least one slot have an entry, so the map never has more
    /// entries than `max_total`.
    per_address: DashMap<IpAddr, usize>,
}

impl AddressLimit {
    pub(crate) fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            total: AtomicUsize::new(0),
            per_address: DashMap::new(),
        })
    }

    /// Takes a slot for a client at `peer`, or says which cap is reached.
    pub(crate) fn acquire(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, LimitError> {
        self.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_total).then_some(n + 1)
            })
            .map_err(|_| LimitError::Endpoint)?;
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
            return Err(LimitError::Address);
        }
        Ok(Slot {
            limit: self.clone(),
            address,
        })
    }

    /// Slots held now.
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

/// One holder's place under the caps; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    limit: Arc<AddressLimit>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limit.release(self.address);
    }
}

/// A TCP connection's slot under the endpoint's connection caps, carried in the request
/// extensions to whatever outlives the HTTP connection (an upgraded WebSocket): the slot
/// is given back when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct HeldConnection(#[allow(dead_code)] pub(crate) Arc<Slot>);

/// The address a per-client cap counts under. An IPv6 client usually controls a whole
/// /64 (one LAN, one home), so IPv6 addresses count per /64 prefix: otherwise one client
/// could take every slot by changing its low 64 bits. IPv4-mapped addresses count as
/// their IPv4 address.
pub(crate) fn client_address(peer: IpAddr) -> IpAddr {
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
        let limit = AddressLimit::new(2, 10);
        let a = limit.acquire(ip("10.0.0.1")).unwrap();
        let _b = limit.acquire(ip("10.0.0.2")).unwrap();
        assert_eq!(
            limit.acquire(ip("10.0.0.3")).unwrap_err(),
            LimitError::Endpoint
        );
        assert_eq!(limit.live(), 2);
        drop(a);
        assert_eq!(limit.live(), 1);
        assert!(limit.acquire(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn address_cap_refuses_one_address_but_not_others() {
        let limit = AddressLimit::new(100, 2);
        let _a = limit.acquire(ip("10.0.0.1")).unwrap();
        let _b = limit.acquire(ip("10.0.0.1")).unwrap();
        assert_eq!(
            limit.acquire(ip("10.0.0.1")).unwrap_err(),
            LimitError::Address
        );
        // The refused attempt gave its global slot back.
        assert_eq!(limit.live(), 2);
        assert!(limit.acquire(ip("10.0.0.2")).is_ok());
    }

    #[test]
    fn address_entries_are_removed_when_their_count_drops_to_zero() {
        let limit = AddressLimit::new(1000, 10);
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
        let limit = AddressLimit::new(100, 1);
        let _a = limit.acquire(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            limit.acquire(ip("2001:db8:1:2:ffff::9")).unwrap_err(),
            LimitError::Address
        );
        assert!(limit.acquire(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let limit = AddressLimit::new(100, 1);
        let _a = limit.acquire(ip("192.0.2.7")).unwrap();
        assert_eq!(
            limit.acquire(ip("::ffff:192.0.2.7")).unwrap_err(),
            LimitError::Address
        );
    }

    #[test]
    fn zero_caps_refuse_everything() {
        assert_eq!(
            AddressLimit::new(0, 10)
                .acquire(ip("10.0.0.1"))
                .unwrap_err(),
            LimitError::Endpoint
        );
        let limit = AddressLimit::new(10, 0);
        assert_eq!(
            limit.acquire(ip("10.0.0.1")).unwrap_err(),
            LimitError::Address
        );
        assert_eq!(limit.live(), 0);
    }
}
