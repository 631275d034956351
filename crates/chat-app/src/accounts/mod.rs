//! Accounts: registration and login, sessions, room access (public, private,
//! direct messages), memberships and read positions.
//!
//! - `names`: usernames unique case-insensitively and after confusable folding.
//! - `password`: Argon2id hashes, minimum length, a short list of common passwords.
//! - `hash_queue`: at most 4 hashes at once, a bounded queue served fairly across
//!   client addresses.
//! - `session`: signed, expiring `Phoenix.Token`s naming a revocable session.
//! - `memory`: the [`AccountStore`] kept in memory (nothing configured).
//! - `members_cache`: rooms' member lists kept between messages.
//! - `api`: the JSON API under `/api/`.
//! - `user_channel`: the personal `user:<id>` topic.
//! - `access`: who may join which room topic; room names that look alike.
//! - `invitations`: pending invitations, their bounds and the cooldown after a refusal.
//! - `guest_names`: a guest name held by one guest at a time.

pub mod access;
pub mod api;
pub mod guest_names;
pub mod hash_queue;
pub mod invitations;
pub mod members_cache;
pub mod memory;
pub mod names;
pub mod password;
pub mod postgres;
pub mod session;
pub mod timeout;
pub mod user_channel;
pub mod wiring;

use async_trait::async_trait;
use serde::Serialize;

pub use memory::MemoryAccounts;
pub use postgres::PostgresAccounts;

use crate::store::StoreError;
pub use access::{Creation, Entry, RoomName, Similar};
pub use invitations::{AcceptOutcome, Invitation, InviteLimits, InviteOutcome};

/// A registered user as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Store-assigned id; the socket id is `user_socket:<id>`.
    pub id: i64,
    /// As typed at registration (trimmed).
    pub username: String,
    /// The folded form that must be unique (see `names::fold`).
    pub fold: String,
    /// Argon2id PHC string; never the password.
    pub password_hash: String,
}

/// What kind of room a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// Anyone (signed in or guest) may join.
    Public,
    /// Only members (the creator and those invited) may join.
    Private,
    /// Two users; the room name is `dm.<low id>.<high id>`.
    Dm,
}

/// One entry of a user's room list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// Room name.
    pub room: String,
    /// Its kind.
    pub kind: RoomKind,
    /// The last message id the user has seen (0: none).
    pub last_read_id: i64,
}

/// Where accounts, sessions, room kinds, memberships and read positions live.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates a user; `Ok(None)` if the folded name is taken.
    async fn create_user(
        &self,
        username: &str,
        fold: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError>;
    /// The user whose folded name is `fold`.
    async fn user_by_fold(&self, fold: &str) -> Result<Option<User>, StoreError>;
    /// The user with this id.
    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError>;
    /// Records a session (the token names it) for `user_id`.
    async fn create_session(&self, session: &str, user_id: i64) -> Result<(), StoreError>;
    /// Whether the session exists (not logged out).
    async fn session_user(&self, session: &str) -> Result<Option<i64>, StoreError>;
    /// Forgets every session of the user (logout closes every tab).
    async fn delete_sessions(&self, user_id: i64) -> Result<(), StoreError>;
    /// The kind of a room recorded here, `None` for a room not recorded (public).
    async fn room_kind(&self, room: &str) -> Result<Option<RoomKind>, StoreError>;
    /// Records a room's kind if none is recorded: `true` if this call recorded it. The
    /// room takes no folded name (DMs, whose names are canonical; and tools): rooms that
    /// people name are claimed by [`enter_room`](Self::enter_room) and
    /// [`create_private`](Self::create_private).
    async fn claim_room(&self, room: &str, kind: RoomKind) -> Result<bool, StoreError>;
    /// What `room` is now: recorded (its kind), free, or free but folding like another
    /// room's name (`fold`, see `names::fold`). Only a hint for refusing early: the
    /// decision is [`enter_room`](Self::enter_room)'s or
    /// [`create_private`](Self::create_private)'s.
    async fn room_name(&self, room: &str, fold: &str) -> Result<RoomName, StoreError>;
    /// A join of `room` (not a DM), decided in one step: the room is recorded as public
    /// (with its folded name) unless it is recorded already or its folded name is
    /// another room's; then, by the kind it has now, a public room admits everyone and
    /// lists it for a signed-in `user` (within [`MAX_MEMBERSHIPS`]), a private room
    /// admits its members only. A kind never changes once recorded, so the answer holds.
    async fn enter_room(
        &self,
        room: &str,
        fold: &str,
        user: Option<i64>,
    ) -> Result<Entry, StoreError>;
    /// Records `room` as private with `creator` as its only member, both or neither,
    /// unless the name or its fold is taken.
    async fn create_private(
        &self,
        room: &str,
        fold: &str,
        creator: i64,
    ) -> Result<Creation, StoreError>;
    /// Invites `invitee` to private room `room` on behalf of member `inviter`: a pending
    /// invitation, within `limits` (bounds and cooldowns), decided in one step.
    async fn invite(
        &self,
        room: &str,
        inviter: i64,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<InviteOutcome, StoreError>;
    /// The user's pending invitations (not expired), newest first.
    async fn invitations(
        &self,
        user_id: i64,
        limits: &InviteLimits,
    ) -> Result<Vec<Invitation>, StoreError>;
    /// Turns a pending invitation into a membership, within the invitee's
    /// [`MAX_MEMBERSHIPS`] and the room's [`MAX_MEMBERS`]; one step.
    async fn accept_invitation(
        &self,
        room: &str,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<AcceptOutcome, StoreError>;
    /// Drops a pending invitation and starts the cooldown (the inviter anywhere, anyone
    /// to this room): `false` if none was pending.
    async fn decline_invitation(
        &self,
        room: &str,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<bool, StoreError>;
    /// Removes `user_id` from `room`; a private room starts the cooldown (nobody may
    /// invite them back for a while).
    async fn leave_room(
        &self,
        room: &str,
        user_id: i64,
        limits: &InviteLimits,
    ) -> Result<(), StoreError>;
    /// Adds a member: `true` if new.
    async fn add_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError>;
    /// Removes a member (the room leaves their list; a private room must invite again).
    async fn remove_member(&self, room: &str, user_id: i64) -> Result<(), StoreError>;
    /// Whether the user is a member of the room.
    async fn is_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError>;
    /// Members' ids of a room.
    async fn members(&self, room: &str) -> Result<Vec<i64>, StoreError>;
    /// Rooms the user is a member of.
    async fn memberships(&self, user_id: i64) -> Result<Vec<Membership>, StoreError>;
    /// Number of rooms the user created or was invited to (bounded per user).
    async fn membership_count(&self, user_id: i64) -> Result<usize, StoreError>;
    /// Up to `limit` public rooms (recorded at their first join since accounts exist)
    /// with their member counts, most members first.
    async fn public_rooms(&self, limit: usize) -> Result<Vec<(String, usize)>, StoreError>;
    /// Advances the read position (never moves it back).
    async fn mark_read(&self, user_id: i64, room: &str, id: i64) -> Result<(), StoreError>;
}

/// The DM room name of two users, lower id first.
pub fn dm_room(a: i64, b: i64) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("dm.{lo}.{hi}")
}

/// The two user ids of a DM room name, if it is one.
pub fn dm_members(room: &str) -> Option<(i64, i64)> {
    let rest = room.strip_prefix("dm.")?;
    let (a, b) = rest.split_once('.')?;
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a < b && dm_room(a, b) == room).then_some((a, b))
}

/// Most rooms (private rooms created, invitations, DMs) one user may belong to.
pub const MAX_MEMBERSHIPS: usize = 200;
/// Most members of one private room.
pub const MAX_MEMBERS: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_names_are_canonical() {
        assert_eq!(dm_room(7, 3), "dm.3.7");
        assert_eq!(dm_members("dm.3.7"), Some((3, 7)));
        assert_eq!(dm_members("dm.7.3"), None);
        assert_eq!(dm_members("dm.03.7"), None);
        assert_eq!(dm_members("dm.3.3"), None);
        assert_eq!(dm_members("lobby"), None);
    }
}
