//! The `room:*` channel: join with a username, history on join (or the messages missed
//! since `after_id` and the changes since `after_seq`), messages written to the store
//! before they are broadcast, threads, edits, deletes, reactions, mentions, attachments,
//! presence, typing (docs/chat.md). Everything sent names its author by id.
//!
//! Here: the channel's state, its callbacks (join, the events it routes, presence,
//! typing, history, read positions) and the replies shared by every event. The events'
//! work is in `join` (who may join, under which name), `messages` (`new_msg`, edits,
//! deletes, reactions), `files` (attachments claimed and URLs signed), `queries`
//! (`thread`, `search`) and `notify` (mentions and unread counts on `user:<id>`).

mod files;
mod join;
mod messages;
mod notify;
mod queries;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::access::{self, Found};
use crate::accounts::guest_names::{GuestNames, HeldName};
use crate::accounts::{AccountStore, RoomKind};
use crate::connect::ChatClient;
use crate::directory::RoomDirectory;
use crate::limit::RateLimit;
use crate::replay::replay;
use crate::store::{Store, StoreError, StoredMessage};
use crate::uploads::{Attachment, Attachments, Viewer};
use crate::validate;

fn reason(text: impl Into<String>) -> Payload {
    json!({ "reason": text.into() }).into()
}

/// Broadcast events of messages that carry attachments: intercepted by every room
/// channel, which signs the file URLs for its own reader and pushes the real event
/// (`new_msg`, `msg_updated`). Messages without files keep the shared fan-out.
const FILES_PREFIX: &str = "files:";
const NEW_MSG_WITH_FILES: &str = "files:new_msg";
const MSG_UPDATED_WITH_FILES: &str = "files:msg_updated";

/// The broadcast event of `event` for `message`.
fn broadcast_event(event: &'static str, message: &StoredMessage) -> &'static str {
    match (event, message.attachments.is_empty()) {
        ("new_msg", false) => NEW_MSG_WITH_FILES,
        ("msg_updated", false) => MSG_UPDATED_WITH_FILES,
        _ => event,
    }
}

/// Most ids one `attachments` request may ask about (a page of history's worth).
pub const ATTACHMENTS_REFRESH_MAX: usize = 100;

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
    /// The accounts: `None` keeps every room public and every user a guest.
    accounts: Option<Arc<dyn AccountStore>>,
    /// Presence key: `user:<id>` or `guest:<guest id>`; and the meta's guest mark.
    presence_key: String,
    guest: bool,
    user_id: Option<i64>,
    /// Who may edit and delete what this user writes: `user:<id>` / `guest:<guest id>`.
    author: String,
    /// The room's kind (accounts only): who a mention may notify.
    kind: Option<RoomKind>,
    /// Uploads: `None` refuses attachments ("uploads are not enabled").
    attachments: Option<Arc<dyn Attachments>>,
    /// Who the file URLs this channel sends are signed for.
    viewer: Viewer,
    /// The guest names of this node: `None` leaves them unchecked (but for registered
    /// names).
    guest_names: Option<Arc<GuestNames>>,
    /// A guest's name, held while this channel lives.
    held_name: Option<HeldName>,
    /// The `search` rate (`crate::search`), shared by every room channel once
    /// `with_search_limit` is called; this channel's key in it (`search_key`): the
    /// signed-in user, or a guest's client address (a guest can make a new guest id at
    /// will, not a new address).
    searches: Arc<RateLimit<String>>,
    search_key: String,
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
            author: String::new(),
            kind: None,
            attachments: None,
            viewer: Viewer::guest(""),
            guest_names: None,
            held_name: None,
            // Until a shared limit is given, this channel's own: still a bound.
            searches: Arc::new(RateLimit::new(crate::search::default_rate())),
            search_key: String::new(),
        }
    }

    /// With this node's guest names: a guest's name is held by one guest at a time
    /// (docs/chat.md, "Guest names").
    pub fn with_guest_names(mut self, names: Arc<GuestNames>) -> Self {
        self.guest_names = Some(names);
        self
    }

    /// Shares one `search` rate per author across every room channel using `limit`
    /// (docs/chat.md: `search`; SECURITY.md).
    pub fn with_search_limit(mut self, limit: Arc<RateLimit<String>>) -> Self {
        self.searches = limit;
        self
    }

    /// With uploads: `new_msg` may carry attachments, each an upload of the same
    /// signed-in user claimed through `attachments`, and every message this channel
    /// sends carries file URLs signed for its reader.
    pub fn with_attachments(mut self, attachments: Arc<dyn Attachments>) -> Self {
        self.attachments = Some(attachments);
        self
    }

    /// `list` with its file URLs signed for this channel's reader.
    fn signed(&self, mut list: Vec<StoredMessage>) -> Vec<StoredMessage> {
        for message in &mut list {
            self.sign(message);
        }
        list
    }

    /// `message`'s file URLs signed for this channel's reader.
    fn sign(&self, message: &mut StoredMessage) {
        if let Some(files) = &self.attachments {
            for attachment in &mut message.attachments {
                files.sign(attachment, &self.viewer);
            }
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
    after_id: Option<Value>,
    after_seq: Option<Value>,
}

#[derive(Deserialize)]
struct Read {
    id: Option<Value>,
}

/// A refusal's reply.
type Refused = Payload;

#[derive(Deserialize)]
struct History {
    before_id: Option<Value>,
    limit: Option<Value>,
}

impl Channel for RoomChannel {
    type Assigns = ChatClient;
    type Info = AfterJoin;

    const INTERCEPTS: &'static [&'static str] = &[NEW_MSG_WITH_FILES, MSG_UPDATED_WITH_FILES];

    async fn join(
        &mut self,
        topic: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        let raw_room = topic.strip_prefix("room:").unwrap_or(topic);
        self.room = validate::room(raw_room).map_err(reason)?;
        self.topic = topic.to_owned();
        self.author = ctx.assigns().author();
        self.viewer = match &ctx.assigns().user {
            Some(user) => Viewer::user(user.id),
            None => Viewer::guest(&ctx.assigns().guest_id),
        };
        let params = p.parse::<JoinParams>();
        let after_id = validate::optional_id(
            params.as_ref().and_then(|j| j.after_id.as_ref()),
            "after_id",
        )
        .map_err(reason)?;
        let after_seq = validate::optional_id(
            params.as_ref().and_then(|j| j.after_seq.as_ref()),
            "after_seq",
        )
        .map_err(reason)?;
        if let Some(user) = ctx.assigns().user.clone() {
            self.username = user.username;
            self.presence_key = format!("user:{}", user.id);
            self.guest = false;
            self.user_id = Some(user.id);
        } else {
            let name = params.and_then(|j| j.username);
            let Some(Value::String(name)) = name else {
                return Err(reason("username is required"));
            };
            self.username = validate::username(&name).map_err(reason)?;
            self.presence_key = format!("guest:{}", ctx.assigns().guest_id);
        }
        // No address (not a TCP peer): one shared budget, so a gap here cannot be used to
        // create rooms without limit.
        let peer = ctx
            .assigns()
            .peer
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.search_key = match self.user_id {
            Some(_) => self.author.clone(),
            None => format!("addr:{}", crate::limit::address_key(peer)),
        };
        if let Some(accounts) = self.accounts.clone() {
            // A new name: no look-alike, one script. Checked before anything is created.
            let found = access::check_name(accounts.as_ref(), &self.room)
                .await
                .map_err(|denied| self.denied(denied))?;
            if found == Found::New {
                // Nothing is created for a refused guest name; a new room is paid for
                // (its creation budget) before it is recorded. (A look-alike recorded by
                // someone else in between leaves an empty `rooms` row nobody can join.)
                if self.guest {
                    self.guest_name(accounts.as_ref(), ctx).await?;
                }
                self.open(peer).await?;
                self.kind = Some(self.authorize(accounts.as_ref(), ctx.assigns()).await?);
            } else {
                // An existing room (or a DM): who may enter is said first.
                self.kind = Some(self.authorize(accounts.as_ref(), ctx.assigns()).await?);
                if self.guest {
                    self.guest_name(accounts.as_ref(), ctx).await?;
                }
                self.open(peer).await?;
            }
        } else {
            self.presence_key = self.username.clone();
            self.open(peer).await?;
        }
        self.typing_key = typing_key(&self.room, &self.username);
        // The reply carries the room's recent history, or what a rejoining page missed
        // and what changed meanwhile.
        let mut replay = replay(self.store.as_ref(), &self.room, after_id, after_seq)
            .await
            .map_err(|error| {
                tracing::warn!(%error, room = %self.room, "join: store unavailable");
                reason("unavailable")
            })?;
        ctx.send_info(AfterJoin);
        replay.messages = self.signed(std::mem::take(&mut replay.messages));
        replay.changed = self.signed(std::mem::take(&mut replay.changed));
        let mut reply = json!(replay);
        reply["me"] = json!({
            "author": self.author,
            "username": self.username,
            "guest": self.guest,
        });
        Ok(reply.into())
    }

    async fn handle_out(
        &mut self,
        event: &str,
        payload: &Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        // A message with files: its URLs signed for this reader, under its real name.
        let Some(real) = event.strip_prefix(FILES_PREFIX) else {
            return HandleResult::NoReply;
        };
        let Some(mut message) = payload.parse::<Value>() else {
            return HandleResult::NoReply;
        };
        if let (Some(files), Some(Value::Array(list))) =
            (&self.attachments, message.get_mut("attachments"))
        {
            for item in list.iter_mut() {
                let Ok(mut attachment) = serde_json::from_value::<Attachment>(item.take()) else {
                    continue;
                };
                files.sign(&mut attachment, &self.viewer);
                *item = json!(attachment);
            }
        }
        if let Err(error) = ctx.push(real, message) {
            tracing::warn!(%error, event = real, "message with files not pushed");
        }
        HandleResult::NoReply
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
            "author": self.author,
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
            "new_msg" => match self.new_msg(p, ctx).await {
                Ok(reply) => HandleResult::ok(reply),
                Err(why) => HandleResult::error(why),
            },
            "edit_msg" | "delete_msg" => match self.change(event, p, ctx).await {
                Ok(()) => HandleResult::ok(json!({})),
                Err(why) => HandleResult::error(why),
            },
            "react" => match self.react(p, ctx).await {
                Ok(reply) => HandleResult::ok(reply),
                Err(why) => HandleResult::error(why),
            },
            "thread" => match self.thread(p).await {
                Ok(reply) => HandleResult::ok(reply),
                Err(why) => HandleResult::error(why),
            },
            "search" => match self.search(p).await {
                Ok(reply) => HandleResult::ok(reply),
                Err(why) => HandleResult::error(why),
            },
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
                    Ok(list) => HandleResult::ok(json!({ "messages": self.signed(list) })),
                    Err(error) => {
                        tracing::warn!(%error, room = %self.room, "history: store unavailable");
                        HandleResult::error(reason("unavailable"))
                    }
                }
            }
            "attachments" => match self.refresh(p).await {
                Ok(reply) => HandleResult::ok(reply),
                Err(why) => HandleResult::error(why),
            },
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
                    let _ = ctx.broadcast_from(
                        "typing",
                        json!({ "username": self.username, "author": self.author }),
                    );
                }
                HandleResult::NoReply
            }
            _ => HandleResult::error(reason(format!("unknown event {event:?}"))),
        }
    }
}

/// The reply to a store that failed (logged with what was asked).
fn store_failed(error: StoreError, what: &str, room: &str) -> Refused {
    if let StoreError::Busy(_) = error {
        // Debug only: under overload this is every message, and the reply says it.
        tracing::debug!(%error, room, "{what}: store busy");
        return reason("busy, try again");
    }
    // Includes a timeout, after which a write may still be stored: the sender has no
    // ack and may retry (see `TimeoutStore`), with its `client_id` if it is a message.
    tracing::warn!(%error, room, "{what}: store unavailable");
    reason("unavailable")
}
