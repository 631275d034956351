//! The personal topic `user:<id>`: only its owner may join. The join reply is the
//! sidebar (my rooms and DMs, unread counts, latest activity first); pushes keep it live
//! (`activity`: a new message in one of my rooms, `read`: a read position moved in another
//! tab, `invited`, `dm`, `left`). Events: `rooms`, `create_private`, `invite`, `open_dm`,
//! `leave_room`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{dm_members, dm_room, names, AccountStore, RoomKind, MAX_MEMBERS, MAX_MEMBERSHIPS};
use crate::connect::ChatClient;
use crate::directory::RoomDirectory;
use crate::store::{Store, StoreError};
use crate::validate;

/// Unread counts stop at this (the page shows "99+").
pub const UNREAD_MAX: u32 = 100;

fn reason(text: impl Into<String>) -> Payload {
    json!({ "reason": text.into() }).into()
}

/// One user's own channel.
pub struct UserChannel {
    accounts: Arc<dyn AccountStore>,
    store: Arc<dyn Store>,
    rooms: Arc<RoomDirectory>,
    user_id: i64,
    username: String,
}

impl UserChannel {
    /// A channel instance (one per join).
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        store: Arc<dyn Store>,
        rooms: Arc<RoomDirectory>,
    ) -> Self {
        Self {
            accounts,
            store,
            rooms,
            user_id: 0,
            username: String::new(),
        }
    }

    /// The sidebar: every room of mine with its unread count, latest activity first.
    async fn room_list(&self) -> Result<Value, StoreError> {
        let mut list = Vec::new();
        for m in self.accounts.memberships(self.user_id).await? {
            let recent = self.store.history(&m.room, i64::MAX, UNREAD_MAX).await?;
            // A deleted message is not waiting to be read.
            let unread = recent
                .iter()
                .filter(|msg| msg.id > m.last_read_id && !msg.deleted)
                .count();
            let latest = recent.last();
            let title = match dm_members(&m.room) {
                Some((a, b)) => {
                    let other = if a == self.user_id { b } else { a };
                    self.accounts
                        .user_by_id(other)
                        .await?
                        .map_or_else(|| m.room.clone(), |u| u.username)
                }
                None => m.room.clone(),
            };
            list.push(json!({
                "room": m.room,
                "kind": m.kind,
                "title": title,
                "unread": unread,
                "last_read_id": m.last_read_id,
                "latest_id": latest.map_or(0, |msg| msg.id),
                "latest_at": latest.map(|msg| msg.inserted_at.clone()),
            }));
        }
        list.sort_by_key(|r| std::cmp::Reverse(r["latest_id"].as_i64().unwrap_or(0)));
        Ok(json!(list))
    }

    async fn create_private(&self, room: &str, peer: IpAddr) -> Result<Value, String> {
        let room = validate::room(room)?;
        if room.starts_with("dm.") {
            return Err("room names starting with 'dm.' are for direct messages".into());
        }
        let full = self
            .accounts
            .membership_count(self.user_id)
            .await
            .map_err(unavailable)?;
        if full >= MAX_MEMBERSHIPS {
            return Err(format!("at most {MAX_MEMBERSHIPS} rooms per user"));
        }
        if self.store.room_exists(&room).await.map_err(unavailable)?
            || !self
                .accounts
                .claim_room(&room, RoomKind::Private)
                .await
                .map_err(unavailable)?
        {
            return Err("a room with this name exists".into());
        }
        self.rooms
            .open(&room, peer, Instant::now())
            .await
            .map_err(|e| e.to_string())?;
        self.accounts
            .add_member(&room, self.user_id)
            .await
            .map_err(unavailable)?;
        Ok(json!({ "room": room }))
    }

    async fn invite(&self, room: &str, username: &str) -> Result<(Value, Option<Note>), String> {
        let kind = self.accounts.room_kind(room).await.map_err(unavailable)?;
        let member = self
            .accounts
            .is_member(room, self.user_id)
            .await
            .map_err(unavailable)?;
        if kind != Some(RoomKind::Private) || !member {
            return Err("unauthorized".into());
        }
        let Some(invitee) = self
            .accounts
            .user_by_fold(&names::fold(username))
            .await
            .map_err(unavailable)?
        else {
            return Err("no such user".into());
        };
        if self
            .accounts
            .members(room)
            .await
            .map_err(unavailable)?
            .len()
            >= MAX_MEMBERS
        {
            return Err(format!("at most {MAX_MEMBERS} members per room"));
        }
        if self
            .accounts
            .membership_count(invitee.id)
            .await
            .map_err(unavailable)?
            >= MAX_MEMBERSHIPS
        {
            return Err("this user is in too many rooms".into());
        }
        let new = self
            .accounts
            .add_member(room, invitee.id)
            .await
            .map_err(unavailable)?;
        let note = new.then(|| Note {
            user_id: invitee.id,
            event: "invited",
            payload: json!({ "room": room, "kind": "private", "title": room, "by": self.username }),
        });
        Ok((json!({ "room": room, "username": invitee.username }), note))
    }

    async fn open_dm(&self, username: &str) -> Result<(Value, Option<Note>), String> {
        let Some(other) = self
            .accounts
            .user_by_fold(&names::fold(username))
            .await
            .map_err(unavailable)?
        else {
            return Err("no such user".into());
        };
        if other.id == self.user_id {
            return Err("a direct message needs another user".into());
        }
        let room = dm_room(self.user_id, other.id);
        if !self
            .accounts
            .is_member(&room, self.user_id)
            .await
            .map_err(unavailable)?
        {
            for id in [self.user_id, other.id] {
                if self
                    .accounts
                    .membership_count(id)
                    .await
                    .map_err(unavailable)?
                    >= MAX_MEMBERSHIPS
                {
                    return Err(format!("at most {MAX_MEMBERSHIPS} rooms per user"));
                }
            }
        }
        self.store.ensure_room(&room).await.map_err(unavailable)?;
        self.accounts
            .claim_room(&room, RoomKind::Dm)
            .await
            .map_err(unavailable)?;
        self.accounts
            .add_member(&room, self.user_id)
            .await
            .map_err(unavailable)?;
        let new = self
            .accounts
            .add_member(&room, other.id)
            .await
            .map_err(unavailable)?;
        let note = new.then(|| Note {
            user_id: other.id,
            event: "dm",
            payload: json!({ "room": room, "kind": "dm", "title": self.username }),
        });
        Ok((json!({ "room": room, "title": other.username }), note))
    }
}

/// A push for another user's `user:<id>` topic, sent once the store call is done.
struct Note {
    user_id: i64,
    event: &'static str,
    payload: Value,
}

fn unavailable(error: StoreError) -> String {
    tracing::warn!(%error, "user channel: store unavailable");
    "unavailable".into()
}

#[derive(Deserialize)]
struct Args {
    room: Option<String>,
    username: Option<String>,
}

impl Channel for UserChannel {
    type Assigns = ChatClient;
    type Info = ();

    async fn join(
        &mut self,
        topic: &str,
        _p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        let Some(user) = ctx.assigns().user.clone() else {
            return Err(reason("unauthorized"));
        };
        if topic != format!("user:{}", user.id) {
            return Err(reason("unauthorized"));
        }
        self.user_id = user.id;
        self.username = user.username.clone();
        let rooms = self.room_list().await.map_err(|e| reason(unavailable(e)))?;
        Ok(json!({ "user": { "id": user.id, "username": user.username }, "rooms": rooms }).into())
    }

    async fn handle_in(
        &mut self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let args = p.parse::<Args>().unwrap_or(Args {
            room: None,
            username: None,
        });
        let peer = ctx
            .assigns()
            .peer
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let result = match (event, args.room.as_deref(), args.username.as_deref()) {
            ("rooms", _, _) => self
                .room_list()
                .await
                .map(|rooms| (json!({ "rooms": rooms }), None))
                .map_err(unavailable),
            ("create_private", Some(room), _) => {
                self.create_private(room, peer).await.map(|v| (v, None))
            }
            ("invite", Some(room), Some(username)) => self.invite(room, username).await,
            ("open_dm", _, Some(username)) => self.open_dm(username).await,
            ("leave_room", Some(room), _) => {
                match self.accounts.remove_member(room, self.user_id).await {
                    // Every tab of mine hears it (its sidebar drops the room).
                    Ok(()) => Ok((
                        json!({ "room": room }),
                        Some(Note {
                            user_id: self.user_id,
                            event: "left",
                            payload: json!({ "room": room }),
                        }),
                    )),
                    Err(e) => Err(unavailable(e)),
                }
            }
            ("create_private" | "invite" | "open_dm" | "leave_room", _, _) => {
                Err("missing room or username".into())
            }
            _ => Err(format!("unknown event {event:?}")),
        };
        match result {
            Ok((value, note)) => {
                if let Some(note) = note {
                    let topic = format!("user:{}", note.user_id);
                    let _ = ctx.pubsub().broadcast(&topic, note.event, note.payload);
                }
                HandleResult::ok(value)
            }
            Err(why) => HandleResult::error(reason(why)),
        }
    }
}
