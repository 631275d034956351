//! The `room:*` channel: join with a username, history on join, messages written to the
//! store before they are broadcast, presence, typing.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::access::{self, Denied};
use crate::accounts::{names, AccountStore};
use crate::connect::ChatClient;
use crate::directory::{OpenError, RoomDirectory};
use crate::limit::RateLimit;
use crate::store::{Announce, Store, StoreError, StoredMessage};
use crate::validate;

fn reason(text: impl Into<String>) -> Payload {
    json!({ "reason": text.into() }).into()
}

fn messages(list: &[StoredMessage]) -> Payload {
    json!({ "messages": list }).into()
}

/// Sent to itself from `join`: track presence and push the list once joined.
pub struct AfterJoin;

/// One user in one room.
pub struct RoomChannel {
    store: Arc<dyn Store>,
    rooms: Arc<RoomDirectory>,
    typing: Arc<RateLimit<String>>,
    room: String,
    /// The joined topic (`room:<name>`), where messages are broadcast.
    topic: String,
    username: String,
    /// This user's key in `typing`, built once at join.
    typing_key: String,
    /// Accounts (issue 14): `None` keeps every room public and every user a guest.
    accounts: Option<Arc<dyn AccountStore>>,
    /// Presence key: `user:<id>` or `guest:<guest id>`; and the meta's guest mark.
    presence_key: String,
    guest: bool,
    user_id: Option<i64>,
}

impl RoomChannel {
    /// A channel instance (one per join) backed by `store`, sharing the room directory
    /// and the `typing` throttle with every other room channel of the server.
    pub fn new(
        store: Arc<dyn Store>,
        rooms: Arc<RoomDirectory>,
        typing: Arc<RateLimit<String>>,
    ) -> Self {
        Self {
            store,
            rooms,
            typing,
            room: String::new(),
            topic: String::new(),
            username: String::new(),
            typing_key: String::new(),
            accounts: None,
            presence_key: String::new(),
            guest: true,
            user_id: None,
        }
    }

    /// With accounts: signed-in users join under their account name, rooms may be
    /// private or DMs (see `accounts::access`), guests keep to public rooms.
    pub fn with_accounts(mut self, accounts: Arc<dyn AccountStore>) -> Self {
        self.accounts = Some(accounts);
        self
    }
}

/// The `typing` throttle's key of a user in a room: one per user and room, whatever the
/// channel or socket (`/` is in neither name).
fn typing_key(room: &str, username: &str) -> String {
    format!("{room}/{username}")
}

#[derive(Deserialize)]
struct JoinParams {
    username: Option<Value>,
}

#[derive(Deserialize)]
struct Read {
    id: Option<Value>,
}

#[derive(Deserialize)]
struct NewMsg {
    body: Option<Value>,
}

#[derive(Deserialize)]
struct History {
    before_id: Option<Value>,
    limit: Option<Value>,
}

impl Channel for RoomChannel {
    type Assigns = ChatClient;
    type Info = AfterJoin;

    async fn join(
        &mut self,
        topic: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        let raw_room = topic.strip_prefix("room:").unwrap_or(topic);
        self.room = validate::room(raw_room).map_err(reason)?;
        self.topic = topic.to_owned();
        if let Some(user) = ctx.assigns().user.clone() {
            self.username = user.username;
            self.presence_key = format!("user:{}", user.id);
            self.guest = false;
            self.user_id = Some(user.id);
        } else {
            let name = p.parse::<JoinParams>().and_then(|j| j.username);
            let Some(Value::String(name)) = name else {
                return Err(reason("username is required"));
            };
            self.username = validate::username(&name).map_err(reason)?;
            self.presence_key = format!("guest:{}", ctx.assigns().guest_id);
        }
        if let Some(accounts) = &self.accounts {
            let kind = access::authorize(accounts.as_ref(), &self.room, ctx.assigns()).await;
            match kind {
                Ok(_) => {}
                Err(Denied::Unauthorized) => return Err(reason("unauthorized")),
                Err(Denied::Store(error)) => {
                    tracing::warn!(%error, room = %self.room, "join: account store unavailable");
                    return Err(reason("unavailable"));
                }
            }
            if self.guest {
                // A guest never takes a registered name (presence carries the guest mark;
                // messages keep the bare name, as before accounts).
                match accounts.user_by_fold(&names::fold(&self.username)).await {
                    Ok(None) => {}
                    Ok(Some(_)) => return Err(reason("this name belongs to a registered user")),
                    Err(error) => {
                        tracing::warn!(%error, "join: account store unavailable");
                        return Err(reason("unavailable"));
                    }
                }
            }
        } else {
            self.presence_key = self.username.clone();
        }
        self.typing_key = typing_key(&self.room, &self.username);
        // No address (not a TCP peer): one shared budget, so a gap here cannot be used to
        // create rooms without limit.
        let peer = ctx
            .assigns()
            .peer
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        // The room is created on first join; the reply carries its recent history.
        let recent = async {
            self.rooms.open(&self.room, peer, Instant::now()).await?;
            Ok(self
                .store
                .recent(&self.room, validate::RECENT_ON_JOIN)
                .await?)
        };
        let recent = recent.await.map_err(|error| match error {
            OpenError::TooManyNewRooms => reason(OpenError::TooManyNewRooms.to_string()),
            OpenError::Store(error) => {
                tracing::warn!(%error, room = %self.room, "join: store unavailable");
                reason("unavailable")
            }
        })?;
        ctx.send_info(AfterJoin);
        Ok(messages(&recent))
    }

    async fn handle_info(
        &mut self,
        _: AfterJoin,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let online_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let meta = json!({
            "online_at": online_at.to_string(),
            "username": self.username,
            "guest": self.guest,
        });
        if let Err(error) = ctx.presence().track(&self.presence_key, meta) {
            tracing::warn!(%error, "presence track failed");
        }
        let _ = ctx.push("presence_state", ctx.presence().list());
        HandleResult::noreply()
    }

    async fn handle_in(
        &mut self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        match event {
            "new_msg" => {
                let Some(Value::String(body)) = p.parse::<NewMsg>().and_then(|m| m.body) else {
                    return HandleResult::error(reason("body is required"));
                };
                let body = match validate::body(&body) {
                    Ok(body) => body,
                    Err(why) => return HandleResult::error(reason(why)),
                };
                // Stored first, broadcast only once stored: nothing is shown that is not
                // stored, and nothing acknowledged is lost. The store runs the broadcast
                // (in id order with the room's other messages: two senders woken by one
                // group commit could otherwise broadcast in either order), then answers.
                let (pubsub, topic) = (ctx.pubsub().clone(), self.topic.clone());
                let announce: Announce = Box::new(move |message| {
                    if let Err(error) = pubsub.broadcast(&topic, "new_msg", json!(message)) {
                        tracing::error!(%error, "broadcast failed");
                    }
                });
                let stored = self
                    .store
                    .insert_announced(&self.room, &self.username, &body, announce)
                    .await;
                match stored {
                    Ok(message) => {
                        let id = message.id;
                        self.notify_members(id, ctx).await;
                        HandleResult::ok(json!({ "id": id }))
                    }
                    Err(error @ StoreError::Busy(_)) => {
                        // Debug only: under overload this is every message, and the reply says it.
                        tracing::debug!(%error, room = %self.room, "new_msg: store busy");
                        HandleResult::error(reason("busy, try again"))
                    }
                    // Includes a timeout, after which the message may still be stored:
                    // the sender has no ack and may retry (see `TimeoutStore`).
                    Err(error) => {
                        tracing::warn!(%error, room = %self.room, "new_msg: store unavailable");
                        HandleResult::error(reason("unavailable"))
                    }
                }
            }
            "history" => {
                let Some(History { before_id, limit }) = p.parse::<History>() else {
                    return HandleResult::error(reason("history takes an object"));
                };
                let before_id = match validate::before_id(before_id.as_ref()) {
                    Ok(id) => id,
                    Err(why) => return HandleResult::error(reason(why)),
                };
                let limit = match validate::history_limit(limit.as_ref()) {
                    Ok(limit) => limit,
                    Err(why) => return HandleResult::error(reason(why)),
                };
                match self.store.history(&self.room, before_id, limit).await {
                    Ok(list) => HandleResult::ok(messages(&list)),
                    Err(error) => {
                        tracing::warn!(%error, room = %self.room, "history: store unavailable");
                        HandleResult::error(reason("unavailable"))
                    }
                }
            }
            "read" => {
                // The page has shown messages up to `id`: the read position advances
                // (stored server-side, so every tab and device sees it).
                let id = p
                    .parse::<Read>()
                    .and_then(|r| r.id)
                    .and_then(|v| v.as_i64());
                let (Some(accounts), Some(user), Some(id)) = (&self.accounts, self.user_id, id)
                else {
                    return HandleResult::error(reason("read takes an id, signed in"));
                };
                match accounts.mark_read(user, &self.room, id).await {
                    Ok(()) => {
                        let _ = ctx.pubsub().broadcast(
                            &format!("user:{user}"),
                            "read",
                            json!({ "room": self.room, "last_read_id": id }),
                        );
                        HandleResult::ok(json!({}))
                    }
                    Err(error) => {
                        tracing::warn!(%error, "read: account store unavailable");
                        HandleResult::error(reason("unavailable"))
                    }
                }
            }
            "typing" => {
                // Fire-and-forget in the page, so extras are dropped without a reply. Keyed
                // by user and room, not by channel: ten tabs of one user share one budget.
                if self
                    .typing
                    .try_acquire(self.typing_key.as_str(), Instant::now())
                {
                    let _ = ctx.broadcast_from("typing", json!({ "username": self.username }));
                }
                HandleResult::NoReply
            }
            _ => HandleResult::error(reason(format!("unknown event {event:?}"))),
        }
    }
}

impl RoomChannel {
    /// Tells every member's `user:<id>` topic that the room has a new message (the
    /// sidebar's unread counts and order), at most `MAX_MEMBERS` of them.
    async fn notify_members(&self, id: i64, ctx: &mut ChannelContext<'_, Self>) {
        let Some(accounts) = &self.accounts else {
            return;
        };
        let members = match accounts.members(&self.room).await {
            Ok(members) => members,
            Err(error) => {
                tracing::warn!(%error, "new_msg: members unavailable");
                return;
            }
        };
        let note = json!({ "room": self.room, "id": id, "username": self.username });
        for member in members.into_iter().take(crate::accounts::MAX_MEMBERS) {
            let _ = ctx
                .pubsub()
                .broadcast(&format!("user:{member}"), "activity", note.clone());
        }
    }
}
