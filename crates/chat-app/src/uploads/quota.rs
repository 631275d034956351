//! Disk space per user: the rate limit bounds how fast one user fills the disk, the
//! quota bounds how much. Usage is counted from the metadata on disk at start, then
//! kept in memory as uploads are stored.
//!
//! In a cluster each node counts what it saw at its start plus what it stored since, so
//! a user spreading uploads over `n` nodes could store up to `n` quotas before a
//! restart evens the counts out: a bound, if a looser one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Bytes one user may keep by default: 1 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 1024 * 1024 * 1024;

/// Refused: the upload would take the user over the quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("over the upload quota of {quota} bytes per user")]
pub struct OverQuota {
    /// The quota.
    pub quota: u64,
}

/// Bytes stored per user, against one quota.
#[derive(Debug)]
pub struct Quota {
    quota: u64,
    used: Arc<Mutex<HashMap<i64, u64>>>,
}

impl Quota {
    /// `quota` bytes per user, starting from `usage` (owner, bytes) pairs.
    pub fn new(quota: u64, usage: impl IntoIterator<Item = (i64, u64)>) -> Self {
        let mut used = HashMap::new();
        for (owner, bytes) in usage {
            *used.entry(owner).or_insert(0u64) += bytes;
        }
        Self {
            quota,
            used: Arc::new(Mutex::new(used)),
        }
    }

    /// The bytes `owner` has stored (or reserved).
    pub fn used(&self, owner: i64) -> u64 {
        let used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        used.get(&owner).copied().unwrap_or(0)
    }

    /// Gives back `bytes` of `owner` (a stored upload was removed).
    pub fn release(&self, owner: i64, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        give_back(&mut used, owner, bytes);
    }

    /// Sets `bytes` aside for `owner`, or refuses if that passes the quota. Two uploads
    /// at once cannot both pass the last bytes: the check and the count are one step.
    /// Dropping the [`Reservation`] without [`Reservation::keep`] gives the bytes back.
    pub fn reserve(&self, owner: i64, bytes: u64) -> Result<Reservation, OverQuota> {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let now = used.get(&owner).copied().unwrap_or(0);
        if now.saturating_add(bytes) > self.quota {
            return Err(OverQuota { quota: self.quota });
        }
        used.insert(owner, now + bytes);
        Ok(Reservation {
            used: self.used.clone(),
            owner,
            bytes,
            kept: false,
        })
    }
}

/// Bytes set aside for an upload being stored.
#[derive(Debug)]
pub struct Reservation {
    used: Arc<Mutex<HashMap<i64, u64>>>,
    owner: i64,
    bytes: u64,
    kept: bool,
}

impl Reservation {
    /// The upload was stored: the bytes stay counted.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        give_back(&mut used, self.owner, self.bytes);
    }
}

fn give_back(used: &mut HashMap<i64, u64>, owner: i64, bytes: u64) {
    if let Some(n) = used.get_mut(&owner) {
        *n = n.saturating_sub(bytes);
        if *n == 0 {
            used.remove(&owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_starts_from_disk_and_the_quota_refuses_past_it() {
        let quota = Quota::new(100, [(1, 30), (1, 30), (2, 100)]);
        assert_eq!(quota.used(1), 60);
        quota.reserve(1, 40).unwrap().keep();
        assert_eq!(quota.used(1), 100);
        assert_eq!(quota.reserve(1, 1).unwrap_err(), OverQuota { quota: 100 });
        assert!(quota.reserve(2, 1).is_err());
        assert!(quota.reserve(3, 100).is_ok());
    }

    #[test]
    fn a_dropped_reservation_gives_its_bytes_back() {
        let quota = Quota::new(100, []);
        let first = quota.reserve(7, 80).unwrap();
        assert!(quota.reserve(7, 30).is_err(), "reserved bytes count");
        drop(first);
        assert_eq!(quota.used(7), 0);
        quota.reserve(7, 100).unwrap().keep();
        assert_eq!(quota.used(7), 100);
        // A removed upload gives its bytes back.
        quota.release(7, 60);
        assert_eq!(quota.used(7), 40);
        quota.release(7, 1000);
        assert_eq!(quota.used(7), 0);
    }
}
