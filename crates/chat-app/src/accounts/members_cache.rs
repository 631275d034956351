//! A room's members kept in memory between messages: [`MembersCache`] wraps an account
//! store.
//!
//! Why: every stored message tells the room's members (`activity` on `user:<id>`), and
//! asking PostgreSQL each time costs a pool checkout with its verify ping and a `SELECT`
//! per message, in the sender's socket task: once messages were stored by group commit,
//! that lookup was most of a message's cost (see the chat figures in docs/benchmarks.md).
//! Members change only through the calls that write `memberships`
//! ([`AccountStore::add_member`],
//! [`AccountStore::remove_member`], [`AccountStore::enter_room`],
//! [`AccountStore::create_private`], [`AccountStore::accept_invitation`],
//! [`AccountStore::leave_room`]), so this process can keep the lists and forget a room's
//! list whenever one of those runs.
//!
//! Correctness: a list is forgotten before and after each membership change, and a
//! lookup that raced with a change (a change began while it was reading) is not kept, so
//! a change that answered is seen by every later message. The one gap is a change whose
//! call timed out and that commits afterwards: the list may miss it for up to [`TTL`],
//! after which every list is read again. One process only: a node of a cluster
//! (`REDIS_URL`) would not hear the other nodes' changes, so `wiring::account_store`
//! leaves this wrapper out there and every message reads the list.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    AcceptOutcome, AccountStore, Creation, Entry, Invitation, InviteLimits, InviteOutcome,
    Membership, RoomKind, RoomName, User,
};
use crate::store::StoreError;

/// How long a list is kept at most (the bound on the timed-out-change gap above).
pub const TTL: Duration = Duration::from_secs(5);
/// Rooms whose lists are kept at most; past it every list is dropped and read again.
pub const MAX_ROOMS: usize = 10_000;

/// A room's kept list: when it was read, and the members' ids.
type Kept = (Instant, Arc<Vec<i64>>);

/// An [`AccountStore`] whose `members` answers from memory when it can.
pub struct MembersCache<S> {
    inner: S,
    rooms: Mutex<HashMap<String, Kept>>,
    /// Bumped at the start and end of every membership change.
    changes: AtomicU64,
}

impl<S: AccountStore> MembersCache<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rooms: Mutex::default(),
            changes: AtomicU64::new(0),
        }
    }

    /// Whether the room's kept list (not past its TTL) has `user`.
    fn kept_has(&self, room: &str, user: i64) -> bool {
        self.rooms.lock().is_ok_and(|rooms| {
            rooms
                .get(room)
                .is_some_and(|(at, list)| at.elapsed() < TTL && list.binary_search(&user).is_ok())
        })
    }

    fn forget(&self, room: &str) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut rooms) = self.rooms.lock() {
            rooms.remove(room);
        }
    }
}

#[async_trait]
impl<S: AccountStore> AccountStore for MembersCache<S> {
    async fn members(&self, room: &str) -> Result<Vec<i64>, StoreError> {
        if let Ok(rooms) = self.rooms.lock() {
            if let Some((at, list)) = rooms.get(room) {
                if at.elapsed() < TTL {
                    return Ok(list.as_ref().clone());
                }
            }
        }
        let before = self.changes.load(Ordering::SeqCst);
        let started = Instant::now();
        let list = self.inner.members(room).await?;
        if let Ok(mut rooms) = self.rooms.lock() {
            // Kept only if no change began or ended while it was read.
            if self.changes.load(Ordering::SeqCst) == before {
                if rooms.len() >= MAX_ROOMS {
                    rooms.clear();
                }
                rooms.insert(room.to_owned(), (started, Arc::new(list.clone())));
            }
        }
        Ok(list)
    }

    async fn add_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError> {
        self.forget(room);
        let result = self.inner.add_member(room, user_id).await;
        self.forget(room);
        result
    }

    async fn remove_member(&self, room: &str, user_id: i64) -> Result<(), StoreError> {
        self.forget(room);
        let result = self.inner.remove_member(room, user_id).await;
        self.forget(room);
        result
    }

    async fn enter_room(
        &self,
        room: &str,
        fold: &str,
        user: Option<i64>,
    ) -> Result<Entry, StoreError> {
        // A guest's join changes no member list, nor does a member's (the kept list says
        // so): only a join that may add a member forgets the list.
        let unchanged = user.is_none_or(|user| self.kept_has(room, user));
        if unchanged {
            return self.inner.enter_room(room, fold, user).await;
        }
        self.forget(room);
        let result = self.inner.enter_room(room, fold, user).await;
        self.forget(room);
        result
    }

    async fn create_private(
        &self,
        room: &str,
        fold: &str,
        creator: i64,
    ) -> Result<Creation, StoreError> {
        self.forget(room);
        let result = self.inner.create_private(room, fold, creator).await;
        self.forget(room);
        result
    }

    async fn accept_invitation(
        &self,
        room: &str,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<AcceptOutcome, StoreError> {
        self.forget(room);
        let result = self.inner.accept_invitation(room, invitee, limits).await;
        self.forget(room);
        result
    }

    async fn leave_room(
        &self,
        room: &str,
        user_id: i64,
        limits: &InviteLimits,
    ) -> Result<(), StoreError> {
        self.forget(room);
        let result = self.inner.leave_room(room, user_id, limits).await;
        self.forget(room);
        result
    }

    async fn room_name(&self, room: &str, fold: &str) -> Result<RoomName, StoreError> {
        self.inner.room_name(room, fold).await
    }
    async fn invite(
        &self,
        room: &str,
        inviter: i64,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<InviteOutcome, StoreError> {
        self.inner.invite(room, inviter, invitee, limits).await
    }
    async fn invitations(
        &self,
        user_id: i64,
        limits: &InviteLimits,
    ) -> Result<Vec<Invitation>, StoreError> {
        self.inner.invitations(user_id, limits).await
    }
    async fn decline_invitation(
        &self,
        room: &str,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<bool, StoreError> {
        self.inner.decline_invitation(room, invitee, limits).await
    }

    async fn create_user(
        &self,
        username: &str,
        fold: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        self.inner.create_user(username, fold, password_hash).await
    }
    async fn user_by_fold(&self, fold: &str) -> Result<Option<User>, StoreError> {
        self.inner.user_by_fold(fold).await
    }
    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.inner.user_by_id(id).await
    }
    async fn create_session(&self, session: &str, user_id: i64) -> Result<(), StoreError> {
        self.inner.create_session(session, user_id).await
    }
    async fn session_user(&self, session: &str) -> Result<Option<i64>, StoreError> {
        self.inner.session_user(session).await
    }
    async fn delete_sessions(&self, user_id: i64) -> Result<(), StoreError> {
        self.inner.delete_sessions(user_id).await
    }
    async fn room_kind(&self, room: &str) -> Result<Option<RoomKind>, StoreError> {
        self.inner.room_kind(room).await
    }
    async fn claim_room(&self, room: &str, kind: RoomKind) -> Result<bool, StoreError> {
        self.inner.claim_room(room, kind).await
    }
    async fn is_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError> {
        self.inner.is_member(room, user_id).await
    }
    async fn memberships(&self, user_id: i64) -> Result<Vec<Membership>, StoreError> {
        self.inner.memberships(user_id).await
    }
    async fn membership_count(&self, user_id: i64) -> Result<usize, StoreError> {
        self.inner.membership_count(user_id).await
    }
    async fn public_rooms(&self, limit: usize) -> Result<Vec<(String, usize)>, StoreError> {
        self.inner.public_rooms(limit).await
    }
    async fn mark_read(&self, user_id: i64, room: &str, id: i64) -> Result<(), StoreError> {
        self.inner.mark_read(user_id, room, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::memory::MemoryAccounts;

    #[tokio::test]
    async fn members_follow_every_change_made_through_the_store() {
        let store = MembersCache::new(MemoryAccounts::new());
        assert!(store.members("r").await.unwrap().is_empty());
        assert!(store.add_member("r", 1).await.unwrap());
        assert_eq!(store.members("r").await.unwrap(), [1]);
        store.add_member("r", 2).await.unwrap();
        assert_eq!(store.members("r").await.unwrap(), [1, 2]);
        store.remove_member("r", 1).await.unwrap();
        assert_eq!(store.members("r").await.unwrap(), [2]);
        assert!(store.members("other").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn joins_forget_a_list_only_when_they_may_add_a_member() {
        let store = MembersCache::new(MemoryAccounts::new());
        assert_eq!(
            store.enter_room("r", "r", Some(1)).await.unwrap(),
            Entry::Granted(RoomKind::Public)
        );
        assert_eq!(store.members("r").await.unwrap(), [1]);
        // A change behind the cache's back stays unseen while members rejoin ...
        store.inner.add_member("r", 5).await.unwrap();
        store.enter_room("r", "r", Some(1)).await.unwrap();
        store.enter_room("r", "r", None).await.unwrap();
        assert_eq!(store.members("r").await.unwrap(), [1]);
        // ... and a newcomer's join reads the list again.
        store.enter_room("r", "r", Some(2)).await.unwrap();
        assert_eq!(store.members("r").await.unwrap(), [1, 2, 5]);
    }

    #[tokio::test]
    async fn a_kept_list_is_answered_without_asking_again() {
        let inner = MemoryAccounts::new();
        inner.add_member("r", 7).await.unwrap();
        let store = MembersCache::new(inner);
        assert_eq!(store.members("r").await.unwrap(), [7]);
        // A change behind the cache's back (not through it) is not seen within the TTL:
        // proof that the second answer came from memory.
        store.inner.add_member("r", 8).await.unwrap();
        assert_eq!(store.members("r").await.unwrap(), [7]);
        store.add_member("r", 9).await.unwrap();
        assert_eq!(store.members("r").await.unwrap(), [7, 8, 9]);
    }
}
