//! The [`AccountStore`] in memory: used when no `DATABASE_URL` is set, and by tests.
//! Lost on restart, like the memory message store.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{AccountStore, Membership, RoomKind, User};
use crate::store::StoreError;

#[derive(Default)]
struct State {
    users: Vec<User>,
    by_fold: HashMap<String, usize>,
    sessions: HashMap<String, i64>,
    kinds: HashMap<String, RoomKind>,
    members: HashMap<String, HashSet<i64>>,
    /// user id → room → last read id.
    reads: HashMap<i64, HashMap<String, i64>>,
}

/// Accounts and memberships in memory.
#[derive(Default)]
pub struct MemoryAccounts {
    state: Mutex<State>,
}

impl MemoryAccounts {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl AccountStore for MemoryAccounts {
    async fn create_user(
        &self,
        username: &str,
        fold: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        let mut s = self.lock();
        if s.by_fold.contains_key(fold) {
            return Ok(None);
        }
        let user = User {
            id: s.users.len() as i64 + 1,
            username: username.to_owned(),
            fold: fold.to_owned(),
            password_hash: password_hash.to_owned(),
        };
        let index = s.users.len();
        s.users.push(user.clone());
        s.by_fold.insert(fold.to_owned(), index);
        Ok(Some(user))
    }

    async fn user_by_fold(&self, fold: &str) -> Result<Option<User>, StoreError> {
        let s = self.lock();
        Ok(s.by_fold.get(fold).map(|&i| s.users[i].clone()))
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let s = self.lock();
        Ok(usize::try_from(id - 1)
            .ok()
            .and_then(|i| s.users.get(i).cloned()))
    }

    async fn create_session(&self, session: &str, user_id: i64) -> Result<(), StoreError> {
        self.lock().sessions.insert(session.to_owned(), user_id);
        Ok(())
    }

    async fn session_user(&self, session: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.lock().sessions.get(session).copied())
    }

    async fn delete_sessions(&self, user_id: i64) -> Result<(), StoreError> {
        self.lock().sessions.retain(|_, u| *u != user_id);
        Ok(())
    }

    async fn room_kind(&self, room: &str) -> Result<Option<RoomKind>, StoreError> {
        Ok(self.lock().kinds.get(room).copied())
    }

    async fn claim_room(&self, room: &str, kind: RoomKind) -> Result<bool, StoreError> {
        let mut s = self.lock();
        if s.kinds.contains_key(room) {
            return Ok(false);
        }
        s.kinds.insert(room.to_owned(), kind);
        Ok(true)
    }

    async fn add_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let new = s
            .members
            .entry(room.to_owned())
            .or_default()
            .insert(user_id);
        s.reads
            .entry(user_id)
            .or_default()
            .entry(room.to_owned())
            .or_insert(0);
        Ok(new)
    }

    async fn remove_member(&self, room: &str, user_id: i64) -> Result<(), StoreError> {
        let mut s = self.lock();
        if let Some(members) = s.members.get_mut(room) {
            members.remove(&user_id);
        }
        if let Some(reads) = s.reads.get_mut(&user_id) {
            reads.remove(room);
        }
        Ok(())
    }

    async fn is_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .members
            .get(room)
            .is_some_and(|m| m.contains(&user_id)))
    }

    async fn members(&self, room: &str) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = self
            .lock()
            .members
            .get(room)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn memberships(&self, user_id: i64) -> Result<Vec<Membership>, StoreError> {
        let s = self.lock();
        let mut list: Vec<Membership> = s
            .reads
            .get(&user_id)
            .map(|rooms| {
                rooms
                    .iter()
                    .map(|(room, &last_read_id)| Membership {
                        room: room.clone(),
                        kind: s.kinds.get(room).copied().unwrap_or(RoomKind::Public),
                        last_read_id,
                    })
                    .collect()
            })
            .unwrap_or_default();
        list.sort_by(|a, b| a.room.cmp(&b.room));
        Ok(list)
    }

    async fn membership_count(&self, user_id: i64) -> Result<usize, StoreError> {
        Ok(self.lock().reads.get(&user_id).map_or(0, HashMap::len))
    }

    async fn public_rooms(&self, limit: usize) -> Result<Vec<(String, usize)>, StoreError> {
        let s = self.lock();
        let mut list: Vec<(String, usize)> = s
            .kinds
            .iter()
            .filter(|(_, kind)| **kind == RoomKind::Public)
            .map(|(room, _)| (room.clone(), s.members.get(room).map_or(0, HashSet::len)))
            .collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list.truncate(limit);
        Ok(list)
    }

    async fn mark_read(&self, user_id: i64, room: &str, id: i64) -> Result<(), StoreError> {
        let mut s = self.lock();
        if let Some(pos) = s.reads.get_mut(&user_id).and_then(|r| r.get_mut(room)) {
            *pos = (*pos).max(id);
        }
        Ok(())
    }
}
