//! The personal topic `user:<id>` (docs/chat.md, "The user channel"): only its owner
//! may join. The join reply is the sidebar (my rooms and DMs, unread counts, latest
//! activity first) and my pending invitations; pushes keep it live (`activity`: a new
//! message in one of my rooms, `read`: a read position moved in another tab, `invited`:
//! a pending invitation, `invitation_answered`, `dm`, `left`). Events: `rooms`,
//! `create_private`, `invite`, `accept_invite`, `decline_invite`, `open_dm`,
//! `leave_room`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{look_alike_reply, MIXED_SCRIPTS};
use super::{
    dm_members, dm_room, names, AcceptOutcome, AccountStore, Creation, Invitation, InviteLimits,
    InviteOutcome, RoomKind, RoomName, MAX_MEMBERS, MAX_MEMBERSHIPS,
};
use crate::connect::ChatClient;
use crate::directory::RoomDirectory;
use crate::store::{rfc3339, Store, StoreError};
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
    limits: InviteLimits,
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
            limits: InviteLimits::default(),
            user_id: 0,
            username: String::new(),
        }
    }

    /// With these invitation bounds and cooldown (defaults: [`InviteLimits::default`]).
    pub fn with_invite_limits(mut self, limits: InviteLimits) -> Self {
        self.limits = limits;
        self
    }

    /// My pending invitations, newest first (docs/chat.md: the invitation object).
    async fn invitation_list(&self) -> Result<Value, StoreError> {
        let list = self
            .accounts
            .invitations(self.user_id, &self.limits)
            .await?;
        Ok(Value::Array(list.iter().map(invitation).collect()))
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

    async fn create_private(&self, room: &str, peer: IpAddr) -> Result<Value, Value> {
        let room = validate::room(room).map_err(refusal)?;
        if room.starts_with("dm.") {
            return Err(refusal(
                "room names starting with 'dm.' are for direct messages",
            ));
        }
        let full = self
            .accounts
            .membership_count(self.user_id)
            .await
            .map_err(unavailable)?;
        if full >= MAX_MEMBERSHIPS {
            return Err(refusal(format!("at most {MAX_MEMBERSHIPS} rooms per user")));
        }
        let fold = names::fold(&room);
        let exists = || refusal("a room with this name exists");
        // Refused early, before the creation budget is spent or a row is made; the
        // decision is `create_private`'s below.
        match self
            .accounts
            .room_name(&room, &fold)
            .await
            .map_err(unavailable)?
        {
            RoomName::Exists(_) => return Err(exists()),
            RoomName::LookAlike(similar) => return Err(look_alike_reply(&similar)),
            RoomName::Free if !names::single_script(&room) => return Err(refusal(MIXED_SCRIPTS)),
            RoomName::Free => {}
        }
        if self.store.room_exists(&room).await.map_err(unavailable)? {
            return Err(exists());
        }
        self.rooms
            .open(&room, peer, Instant::now())
            .await
            .map_err(|e| refusal(e.to_string()))?;
        // The room and its creator's membership in one step: a join racing this one
        // either made the room public first (refused here) or finds it private.
        match self
            .accounts
            .create_private(&room, &fold, self.user_id)
            .await
            .map_err(unavailable)?
        {
            Creation::Created => Ok(json!({ "room": room })),
            Creation::Exists => Err(exists()),
            Creation::LookAlike(similar) => Err(look_alike_reply(&similar)),
        }
    }

    async fn invite(&self, room: &str, username: &str) -> Result<(Value, Option<Note>), Value> {
        let Some(invitee) = self
            .accounts
            .user_by_fold(&names::fold(username))
            .await
            .map_err(unavailable)?
        else {
            return Err(refusal("no such user"));
        };
        let outcome = self
            .accounts
            .invite(room, self.user_id, invitee.id, &self.limits)
            .await
            .map_err(unavailable)?;
        let note = match outcome {
            InviteOutcome::Invited(pending) => Some(Note {
                user_id: invitee.id,
                event: "invited",
                payload: invitation(&pending),
            }),
            InviteOutcome::AlreadyPending => None,
            InviteOutcome::Unauthorized => return Err(refusal("unauthorized")),
            InviteOutcome::AlreadyMember => return Err(refusal("already a member")),
            InviteOutcome::CoolingDown { until } => {
                let at = rfc3339(until);
                return Err(json!({
                    "reason": format!(
                        "this user declined or left recently: no new invitation before {at}"
                    ),
                    "retry_at": at,
                }));
            }
            InviteOutcome::InviterFull => {
                return Err(refusal(format!(
                    "you have {} pending invitations: wait until some are answered or expire",
                    self.limits.per_inviter
                )))
            }
            InviteOutcome::InviteeFull => {
                return Err(refusal("this user has too many pending invitations"))
            }
            InviteOutcome::RoomFull => {
                return Err(refusal(format!("at most {MAX_MEMBERS} members per room")))
            }
        };
        Ok((
            json!({ "room": room, "username": invitee.username, "pending": true }),
            note,
        ))
    }

    async fn accept_invite(&self, room: &str) -> Result<(Value, Option<Note>), Value> {
        let outcome = self
            .accounts
            .accept_invitation(room, self.user_id, &self.limits)
            .await
            .map_err(unavailable)?;
        match outcome {
            AcceptOutcome::Accepted => Ok((
                json!({ "room": room, "kind": "private", "title": room }),
                Some(self.answered(room, true)),
            )),
            AcceptOutcome::NoInvitation => Err(refusal("no such invitation")),
            AcceptOutcome::TooManyRooms => {
                Err(refusal(format!("at most {MAX_MEMBERSHIPS} rooms per user")))
            }
            AcceptOutcome::RoomFull => {
                Err(refusal(format!("at most {MAX_MEMBERS} members per room")))
            }
        }
    }

    async fn decline_invite(&self, room: &str) -> Result<(Value, Option<Note>), Value> {
        if self
            .accounts
            .decline_invitation(room, self.user_id, &self.limits)
            .await
            .map_err(unavailable)?
        {
            Ok((json!({ "room": room }), Some(self.answered(room, false))))
        } else {
            Err(refusal("no such invitation"))
        }
    }

    /// Every tab of mine drops the answered invitation.
    fn answered(&self, room: &str, accepted: bool) -> Note {
        Note {
            user_id: self.user_id,
            event: "invitation_answered",
            payload: json!({ "room": room, "accepted": accepted }),
        }
    }

    async fn open_dm(&self, username: &str) -> Result<(Value, Option<Note>), Value> {
        let Some(other) = self
            .accounts
            .user_by_fold(&names::fold(username))
            .await
            .map_err(unavailable)?
        else {
            return Err(refusal("no such user"));
        };
        if other.id == self.user_id {
            return Err(refusal("a direct message needs another user"));
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
                    return Err(refusal(format!("at most {MAX_MEMBERSHIPS} rooms per user")));
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

fn unavailable(error: StoreError) -> Value {
    tracing::warn!(%error, "user channel: store unavailable");
    refusal("unavailable")
}

/// A refusal's reply, `{"reason"}`.
fn refusal(text: impl Into<String>) -> Value {
    json!({ "reason": text.into() })
}

/// An invitation as docs/chat.md shows it.
fn invitation(pending: &Invitation) -> Value {
    json!({
        "room": pending.room,
        "kind": "private",
        "title": pending.room,
        "by": pending.inviter_name,
        "by_author": format!("user:{}", pending.inviter),
        "at": rfc3339(pending.at),
        "expires_at": rfc3339(pending.expires_at),
    })
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
        let listed = async { Ok((self.room_list().await?, self.invitation_list().await?)) };
        let (rooms, invitations) = listed
            .await
            .map_err(|e: StoreError| Payload::from(unavailable(e)))?;
        Ok(json!({
            "user": { "id": user.id, "username": user.username },
            "rooms": rooms,
            "invitations": invitations,
        })
        .into())
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
            ("rooms", _, _) => {
                let listed = async { Ok((self.room_list().await?, self.invitation_list().await?)) };
                listed
                    .await
                    .map(|(rooms, invitations)| {
                        (json!({ "rooms": rooms, "invitations": invitations }), None)
                    })
                    .map_err(|e: StoreError| unavailable(e))
            }
            ("create_private", Some(room), _) => {
                self.create_private(room, peer).await.map(|v| (v, None))
            }
            ("invite", Some(room), Some(username)) => self.invite(room, username).await,
            ("accept_invite", Some(room), _) => self.accept_invite(room).await,
            ("decline_invite", Some(room), _) => self.decline_invite(room).await,
            ("open_dm", _, Some(username)) => self.open_dm(username).await,
            ("leave_room", Some(room), _) => {
                match self
                    .accounts
                    .leave_room(room, self.user_id, &self.limits)
                    .await
                {
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
            (
                "create_private" | "invite" | "accept_invite" | "decline_invite" | "open_dm"
                | "leave_room",
                _,
                _,
            ) => Err(refusal("missing room or username")),
            _ => Err(refusal(format!("unknown event {event:?}"))),
        };
        match result {
            Ok((value, note)) => {
                if let Some(note) = note {
                    let topic = format!("user:{}", note.user_id);
                    let _ = ctx.pubsub().broadcast(&topic, note.event, note.payload);
                }
                HandleResult::ok(value)
            }
            Err(why) => HandleResult::error(why),
        }
    }
}
