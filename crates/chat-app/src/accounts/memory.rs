//! The [`AccountStore`] in memory: used when no `DATABASE_URL` is set, and by tests.
//! Lost on restart, like the memory message store.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::invitations::after;
use super::{
    AcceptOutcome, AccountStore, Creation, Entry, Invitation, InviteLimits, InviteOutcome,
    Membership, RoomKind, RoomName, Similar, User, MAX_MEMBERS, MAX_MEMBERSHIPS,
};
use crate::store::StoreError;

#[derive(Default)]
struct State {
    users: Vec<User>,
    by_fold: HashMap<String, usize>,
    sessions: HashMap<String, i64>,
    kinds: HashMap<String, RoomKind>,
    /// Folded room name → the room holding it (rooms people named; not DMs).
    room_folds: HashMap<String, String>,
    members: HashMap<String, HashSet<i64>>,
    /// user id → room → last read id.
    reads: HashMap<i64, HashMap<String, i64>>,
    /// (room, invitee) → the pending invitation.
    invitations: HashMap<(String, i64), Pending>,
    cooldowns: Vec<Cooldown>,
}

struct Pending {
    inviter: i64,
    at: OffsetDateTime,
}

/// No invitation of `invitee` by `inviter` (any room; `None`: anyone) to `room` (`None`:
/// any room) until `until`; a row matches when either names the invitation.
struct Cooldown {
    invitee: i64,
    inviter: Option<i64>,
    room: String,
    until: OffsetDateTime,
}

impl State {
    fn is_member(&self, room: &str, user_id: i64) -> bool {
        self.members.get(room).is_some_and(|m| m.contains(&user_id))
    }

    fn membership_count(&self, user_id: i64) -> usize {
        self.reads.get(&user_id).map_or(0, HashMap::len)
    }

    fn add_member(&mut self, room: &str, user_id: i64) -> bool {
        let new = self
            .members
            .entry(room.to_owned())
            .or_default()
            .insert(user_id);
        self.reads
            .entry(user_id)
            .or_default()
            .entry(room.to_owned())
            .or_insert(0);
        new
    }

    fn similar(&self, fold: &str) -> Option<Similar> {
        let room = self.room_folds.get(fold)?;
        Some(Similar {
            room: room.clone(),
            kind: self.kinds.get(room).copied().unwrap_or(RoomKind::Public),
        })
    }

    /// Records a named room unless the name or its fold is taken: `true` if recorded.
    fn claim_named(&mut self, room: &str, fold: &str, kind: RoomKind) -> bool {
        if self.kinds.contains_key(room) || self.room_folds.contains_key(fold) {
            return false;
        }
        self.kinds.insert(room.to_owned(), kind);
        self.room_folds.insert(fold.to_owned(), room.to_owned());
        true
    }

    /// Forgets expired invitations and cooldowns.
    fn expire(&mut self, now: OffsetDateTime, limits: &InviteLimits) {
        self.invitations
            .retain(|_, p| after(p.at, limits.lifetime) > now);
        self.cooldowns.retain(|c| c.until > now);
    }
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

    async fn room_name(&self, room: &str, fold: &str) -> Result<RoomName, StoreError> {
        let s = self.lock();
        Ok(match s.kinds.get(room) {
            Some(kind) => RoomName::Exists(*kind),
            None => s.similar(fold).map_or(RoomName::Free, RoomName::LookAlike),
        })
    }

    async fn enter_room(
        &self,
        room: &str,
        fold: &str,
        user: Option<i64>,
    ) -> Result<Entry, StoreError> {
        // One lock for the claim and the decision: nothing happens in between.
        let mut s = self.lock();
        if !s.kinds.contains_key(room) && !s.claim_named(room, fold, RoomKind::Public) {
            return Ok(s.similar(fold).map_or(Entry::Denied, Entry::LookAlike));
        }
        let kind = s.kinds.get(room).copied().unwrap_or(RoomKind::Public);
        Ok(match (kind, user) {
            (RoomKind::Public, Some(user)) => {
                if !s.is_member(room, user) && s.membership_count(user) < MAX_MEMBERSHIPS {
                    s.add_member(room, user);
                }
                Entry::Granted(kind)
            }
            (RoomKind::Public, None) => Entry::Granted(kind),
            (RoomKind::Private, Some(user)) if s.is_member(room, user) => Entry::Granted(kind),
            _ => Entry::Denied,
        })
    }

    async fn create_private(
        &self,
        room: &str,
        fold: &str,
        creator: i64,
    ) -> Result<Creation, StoreError> {
        let mut s = self.lock();
        if s.kinds.contains_key(room) {
            return Ok(Creation::Exists);
        }
        if !s.claim_named(room, fold, RoomKind::Private) {
            return Ok(s
                .similar(fold)
                .map_or(Creation::Exists, Creation::LookAlike));
        }
        s.add_member(room, creator);
        Ok(Creation::Created)
    }

    async fn invite(
        &self,
        room: &str,
        inviter: i64,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<InviteOutcome, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut s = self.lock();
        s.expire(now, limits);
        if s.kinds.get(room) != Some(&RoomKind::Private) || !s.is_member(room, inviter) {
            return Ok(InviteOutcome::Unauthorized);
        }
        if s.is_member(room, invitee) {
            return Ok(InviteOutcome::AlreadyMember);
        }
        let key = (room.to_owned(), invitee);
        if s.invitations.contains_key(&key) {
            return Ok(InviteOutcome::AlreadyPending);
        }
        let cooling = s
            .cooldowns
            .iter()
            .filter(|c| c.invitee == invitee && (c.room == room || c.inviter == Some(inviter)))
            .map(|c| c.until)
            .max();
        if let Some(until) = cooling {
            return Ok(InviteOutcome::CoolingDown { until });
        }
        if s.members.get(room).map_or(0, HashSet::len) >= MAX_MEMBERS {
            return Ok(InviteOutcome::RoomFull);
        }
        let sent = s
            .invitations
            .values()
            .filter(|p| p.inviter == inviter)
            .count();
        if sent >= limits.per_inviter {
            return Ok(InviteOutcome::InviterFull);
        }
        let held = s.invitations.keys().filter(|(_, u)| *u == invitee).count();
        if held >= limits.per_invitee {
            return Ok(InviteOutcome::InviteeFull);
        }
        s.invitations.insert(key, Pending { inviter, at: now });
        let inviter_name = user_name(&s, inviter);
        Ok(InviteOutcome::Invited(Invitation {
            room: room.to_owned(),
            inviter,
            inviter_name,
            at: now,
            expires_at: after(now, limits.lifetime),
        }))
    }

    async fn invitations(
        &self,
        user_id: i64,
        limits: &InviteLimits,
    ) -> Result<Vec<Invitation>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut s = self.lock();
        s.expire(now, limits);
        let mut list: Vec<Invitation> = s
            .invitations
            .iter()
            .filter(|((_, invitee), _)| *invitee == user_id)
            .map(|((room, _), p)| Invitation {
                room: room.clone(),
                inviter: p.inviter,
                inviter_name: user_name(&s, p.inviter),
                at: p.at,
                expires_at: after(p.at, limits.lifetime),
            })
            .collect();
        list.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.room.cmp(&b.room)));
        Ok(list)
    }

    async fn accept_invitation(
        &self,
        room: &str,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<AcceptOutcome, StoreError> {
        let mut s = self.lock();
        s.expire(OffsetDateTime::now_utc(), limits);
        let key = (room.to_owned(), invitee);
        if !s.invitations.contains_key(&key) {
            return Ok(AcceptOutcome::NoInvitation);
        }
        if s.membership_count(invitee) >= MAX_MEMBERSHIPS {
            return Ok(AcceptOutcome::TooManyRooms);
        }
        if s.members.get(room).map_or(0, HashSet::len) >= MAX_MEMBERS {
            return Ok(AcceptOutcome::RoomFull);
        }
        s.invitations.remove(&key);
        s.add_member(room, invitee);
        Ok(AcceptOutcome::Accepted)
    }

    async fn decline_invitation(
        &self,
        room: &str,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut s = self.lock();
        s.expire(now, limits);
        let Some(pending) = s.invitations.remove(&(room.to_owned(), invitee)) else {
            return Ok(false);
        };
        s.cooldowns.push(Cooldown {
            invitee,
            inviter: Some(pending.inviter),
            room: room.to_owned(),
            until: after(now, limits.cooldown),
        });
        Ok(true)
    }

    async fn leave_room(
        &self,
        room: &str,
        user_id: i64,
        limits: &InviteLimits,
    ) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut s = self.lock();
        let was_member = s
            .members
            .get_mut(room)
            .is_some_and(|members| members.remove(&user_id));
        if let Some(reads) = s.reads.get_mut(&user_id) {
            reads.remove(room);
        }
        if was_member && s.kinds.get(room) == Some(&RoomKind::Private) {
            s.cooldowns.retain(|c| c.until > now);
            s.cooldowns.push(Cooldown {
                invitee: user_id,
                inviter: None,
                room: room.to_owned(),
                until: after(now, limits.cooldown),
            });
        }
        Ok(())
    }

    async fn add_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError> {
        Ok(self.lock().add_member(room, user_id))
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
        Ok(self.lock().is_member(room, user_id))
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
        Ok(self.lock().membership_count(user_id))
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

/// A user's name (an inviter's), or their id if they are unknown (never: ids come from
/// this store).
fn user_name(s: &State, id: i64) -> String {
    usize::try_from(id - 1)
        .ok()
        .and_then(|i| s.users.get(i))
        .map_or_else(|| format!("user {id}"), |u| u.username.clone())
}
