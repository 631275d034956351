//! Who may join which room: public rooms are open to everyone (guests included), private
//! rooms to their members, a DM room `dm.<a>.<b>` to users `a` and `b` only. Everything
//! else is refused with `{"reason": "unauthorized"}` and nothing more.
//!
//! Room names are folded like usernames (`names::fold`), so that a new room cannot look
//! like an existing one ("Release-Team", "rеlease-team" with a Cyrillic е, beside
//! "release-team"), and a new name must be in one script (docs/chat.md, "Rooms").
//!
//! Why the decision lives in the store: a room's kind is decided when the room is first
//! recorded, by whichever of a join (public) and `create_private` (private) records it
//! first. Reading the kind and then acting on what was read lets a join that read "no
//! such room" add its user to a room that `create_private` made private meanwhile. So
//! the store records and decides in one step ([`AccountStore::enter_room`],
//! [`AccountStore::create_private`]): its unique room name and folded name pick the
//! winner, and the membership follows the kind the winner recorded, which never changes.

use serde::Serialize;

use super::{dm_members, names, AccountStore, RoomKind};
use crate::connect::ChatClient;
use crate::store::StoreError;

/// Another room whose name folds like the one asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Similar {
    /// Its exact name.
    pub room: String,
    /// Its kind: the name is told only when the room is public.
    pub kind: RoomKind,
}

/// What a room name is to the store now ([`AccountStore::room_name`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomName {
    /// A room of this exact name is recorded.
    Exists(RoomKind),
    /// Nothing recorded under the name or its fold: a join or `create_private` creates it.
    Free,
    /// Not recorded, but the folded name is another room's.
    LookAlike(Similar),
}

/// A join's outcome ([`AccountStore::enter_room`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Admitted to a room of this kind (a public one may just have been recorded).
    Granted(RoomKind),
    /// A private room (or DM) of which the user is no member; or a guest.
    Denied,
    /// The name is new and folds like this other room's: nothing was recorded.
    LookAlike(Similar),
}

/// `create_private`'s outcome ([`AccountStore::create_private`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Creation {
    /// Recorded as private, the creator its only member.
    Created,
    /// A room of this exact name is recorded (whatever its kind).
    Exists,
    /// The folded name is this other room's.
    LookAlike(Similar),
}

/// Why a join is refused.
#[derive(Debug)]
pub enum Denied {
    /// Not allowed (the reply is `{"reason": "unauthorized"}`).
    Unauthorized,
    /// A new room whose name looks like another room's.
    LookAlike(Similar),
    /// A new room whose name mixes scripts.
    MixedScripts,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Denied {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// The reason of a refused look-alike (docs/chat.md, "Rooms").
pub const SIMILAR_NAME: &str = "a room with a similar name exists";
/// The reason of a new name mixing scripts.
pub const MIXED_SCRIPTS: &str = "room name mixes scripts (for example Latin and Cyrillic letters)";

/// The refusal of a look-alike: `{"reason", "room"}`, `room` only when that room is
/// public (a private room's exact name is not told to whoever guesses a look-alike).
pub fn look_alike_reply(similar: &Similar) -> serde_json::Value {
    #[derive(Serialize)]
    struct Reply<'a> {
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
    }
    let room = (similar.kind == RoomKind::Public).then_some(similar.room.as_str());
    serde_json::to_value(Reply {
        reason: SIMILAR_NAME,
        room,
    })
    .unwrap_or_default()
}

/// What a join found before deciding: whether it may create the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A DM name (decided by [`authorize`]).
    Dm,
    /// A room recorded under this exact name.
    Existing,
    /// A new name that may be created: open it (its creation budget) before
    /// [`authorize`] records it.
    New,
}

/// Checks a room name before a join creates anything: a new name must not fold like
/// another room's nor mix scripts. Existing rooms (look-alikes recorded before the rule
/// included) are [`Found::Existing`].
pub async fn check_name(accounts: &dyn AccountStore, room: &str) -> Result<Found, Denied> {
    if room.starts_with("dm.") {
        return Ok(Found::Dm);
    }
    match accounts.room_name(room, &names::fold(room)).await? {
        RoomName::Exists(_) => Ok(Found::Existing),
        RoomName::LookAlike(similar) => Err(Denied::LookAlike(similar)),
        RoomName::Free if !names::single_script(room) => Err(Denied::MixedScripts),
        RoomName::Free => Ok(Found::New),
    }
}

/// Decides whether `client` may join `room`, recording the room (a new name: public)
/// and the membership of a signed-in user (so the room shows in their list) in the
/// same step. Returns the room's kind.
pub async fn authorize(
    accounts: &dyn AccountStore,
    room: &str,
    client: &ChatClient,
) -> Result<RoomKind, Denied> {
    let user = client.user.as_ref();
    if room.starts_with("dm.") {
        let (a, b) = dm_members(room).ok_or(Denied::Unauthorized)?;
        let user = user.ok_or(Denied::Unauthorized)?;
        if user.id != a && user.id != b {
            return Err(Denied::Unauthorized);
        }
        let other = if user.id == a { b } else { a };
        if accounts.user_by_id(other).await?.is_none() {
            return Err(Denied::Unauthorized);
        }
        // A DM's members are its two users by its name: no race to decide.
        accounts.claim_room(room, RoomKind::Dm).await?;
        accounts.add_member(room, a).await?;
        accounts.add_member(room, b).await?;
        return Ok(RoomKind::Dm);
    }
    let entry = accounts
        .enter_room(room, &names::fold(room), user.map(|u| u.id))
        .await?;
    match entry {
        Entry::Granted(kind) => Ok(kind),
        Entry::Denied => Err(Denied::Unauthorized),
        Entry::LookAlike(similar) => Err(Denied::LookAlike(similar)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_alike_names_a_public_room_only() {
        let public = Similar {
            room: "release-team".into(),
            kind: RoomKind::Public,
        };
        assert_eq!(
            look_alike_reply(&public),
            serde_json::json!({"reason": SIMILAR_NAME, "room": "release-team"})
        );
        let private = Similar {
            kind: RoomKind::Private,
            ..public
        };
        assert_eq!(
            look_alike_reply(&private),
            serde_json::json!({"reason": SIMILAR_NAME})
        );
    }
}
