//! Who may join which room: public rooms are open to everyone (guests included), private
//! rooms to their members, a DM room `dm.<a>.<b>` to users `a` and `b` only. Everything
//! else is refused with `{"reason": "unauthorized"}` and nothing more.

use super::{dm_members, AccountStore, RoomKind, MAX_MEMBERSHIPS};
use crate::connect::ChatClient;
use crate::store::StoreError;

/// Why a join is refused.
#[derive(Debug)]
pub enum Denied {
    /// Not allowed (the reply is `{"reason": "unauthorized"}`).
    Unauthorized,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Denied {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Decides whether `client` may join `room`, recording the membership of a signed-in
/// user (so the room shows in their list). Returns the room's kind.
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
        accounts.claim_room(room, RoomKind::Dm).await?;
        accounts.add_member(room, a).await?;
        accounts.add_member(room, b).await?;
        return Ok(RoomKind::Dm);
    }
    let kind = accounts.room_kind(room).await?;
    match kind {
        Some(RoomKind::Private) => {
            let user = user.ok_or(Denied::Unauthorized)?;
            if accounts.is_member(room, user.id).await? {
                Ok(RoomKind::Private)
            } else {
                Err(Denied::Unauthorized)
            }
        }
        Some(RoomKind::Dm) => Err(Denied::Unauthorized),
        Some(RoomKind::Public) | None => {
            // Recorded, so that the directory lists it.
            if kind.is_none() {
                accounts.claim_room(room, RoomKind::Public).await?;
            }
            if let Some(user) = user {
                // A public room joined by a signed-in user goes into their list, within
                // the per-user bound.
                if !accounts.is_member(room, user.id).await?
                    && accounts.membership_count(user.id).await? < MAX_MEMBERSHIPS
                {
                    accounts.add_member(room, user.id).await?;
                }
            }
            Ok(RoomKind::Public)
        }
    }
}
