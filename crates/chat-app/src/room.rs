//! The `room:*` channel: join with a username, history on join (or the messages missed
//! since `after_id` and the changes since `after_seq`), messages written to the store
//! before they are broadcast, threads, edits, deletes, reactions, mentions, attachments,
//! presence, typing (docs/chat.md). Everything sent names its author by id.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::access::{self, Denied, Found};
use crate::accounts::guest_names::{self, GuestNames, HeldName};
use crate::accounts::{names, AccountStore, RoomKind};
use crate::connect::ChatClient;
use crate::directory::{OpenError, RoomDirectory};
use crate::limit::RateLimit;
use crate::replay::replay;
use crate::store::{Announce, Change, NewMessage, Reactor, Store, StoreError, StoredMessage};
use crate::uploads::{Attachment, Attachments, ClaimError, Viewer};
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

#[derive(Deserialize)]
struct NewMsg {
    body: Option<Value>,
    client_id: Option<Value>,
    parent_id: Option<Value>,
    attachments: Option<Value>,
}

/// `edit_msg`, `delete_msg`, `react`.
#[derive(Deserialize)]
struct Target {
    id: Option<Value>,
    body: Option<Value>,
    emoji: Option<Value>,
}

#[derive(Deserialize)]
struct Thread {
    parent_id: Option<Value>,
    before_id: Option<Value>,
    limit: Option<Value>,
}

/// A refusal's reply.
type Refused = Payload;

#[derive(Deserialize)]
struct Refresh {
    ids: Option<Value>,
}

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

impl RoomChannel {
    /// Makes sure the room exists, creating it within `peer`'s budget.
    async fn open(&self, peer: IpAddr) -> Result<(), Refused> {
        self.rooms
            .open(&self.room, peer, Instant::now())
            .await
            .map_err(|error| match error {
                OpenError::TooManyNewRooms => reason(OpenError::TooManyNewRooms.to_string()),
                OpenError::Store(error) => {
                    tracing::warn!(%error, room = %self.room, "join: store unavailable");
                    reason("unavailable")
                }
            })
    }

    /// Whether this client may join the room (recording the room and the membership in
    /// one step: `access::authorize`); the room's kind.
    async fn authorize(
        &self,
        accounts: &dyn AccountStore,
        client: &ChatClient,
    ) -> Result<RoomKind, Refused> {
        access::authorize(accounts, &self.room, client)
            .await
            .map_err(|denied| self.denied(denied))
    }

    /// The reply to a refused join.
    fn denied(&self, denied: Denied) -> Refused {
        match denied {
            Denied::Unauthorized => reason("unauthorized"),
            Denied::LookAlike(similar) => access::look_alike_reply(&similar).into(),
            Denied::MixedScripts => reason(access::MIXED_SCRIPTS),
            Denied::Store(error) => {
                tracing::warn!(%error, room = %self.room, "join: account store unavailable");
                reason("unavailable")
            }
        }
    }

    /// A guest's name: never a registered user's, never another guest's in this room
    /// (docs/chat.md, "Guest names"); held while this channel lives.
    async fn guest_name(
        &mut self,
        accounts: &dyn AccountStore,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<(), Refused> {
        match accounts.user_by_fold(&names::fold(&self.username)).await {
            Ok(None) => {}
            Ok(Some(_)) => return Err(reason("this name belongs to a registered user")),
            Err(error) => {
                tracing::warn!(%error, "join: account store unavailable");
                return Err(reason("unavailable"));
            }
        }
        let Some(guest_names) = &self.guest_names else {
            return Ok(());
        };
        let taken = || reason("this name is used by another guest");
        // Other nodes' guests: as far as the room's presence has replicated.
        if guest_names.clustered() {
            let present = ctx.presence().list().parse::<Value>().unwrap_or_default();
            if guest_names::present_elsewhere(&present, &self.presence_key, &self.username) {
                return Err(taken());
            }
        }
        let client = ctx.assigns();
        let held = guest_names
            .claim(
                &self.room,
                &self.username,
                &client.guest_id,
                client.keyed,
                Instant::now(),
            )
            .ok_or_else(taken)?;
        self.held_name = Some(held);
        Ok(())
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

impl RoomChannel {
    /// `new_msg`: validated, stored (once per `client_id`), broadcast by the store in id
    /// order, then members and mentioned users are told.
    async fn new_msg(
        &self,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Value, Refused> {
        let Some(msg) = p.parse::<NewMsg>() else {
            return Err(reason("body is required"));
        };
        let client_id = validate::client_id(msg.client_id.as_ref()).map_err(reason)?;
        let ids = self.attachment_ids(msg.attachments.as_ref())?;
        let body = match msg.body {
            Some(Value::String(body)) if ids.is_empty() || !body.trim().is_empty() => {
                validate::body(&body).map_err(reason)?
            }
            // A message may have an empty body when it has attachments.
            None | Some(Value::String(_)) if !ids.is_empty() => String::new(),
            _ => return Err(reason("body is required")),
        };
        let parent_id =
            validate::optional_id(msg.parent_id.as_ref(), "parent_id").map_err(reason)?;
        if let Some(parent_id) = parent_id {
            let parent = self
                .store
                .message(&self.room, parent_id)
                .await
                .map_err(|e| store_failed(e, "new_msg", &self.room))?;
            match parent {
                Some(parent) if parent.parent_id.is_some() => {
                    return Err(reason("replies cannot have replies"))
                }
                Some(parent) if !parent.deleted => {}
                _ => return Err(reason("not found")),
            }
        }
        // Claimed last, once everything else passed: a claim is undone below if the
        // message is not stored.
        let attachments = self.claim(&ids, client_id.as_deref()).await?;
        let new = NewMessage {
            room: self.room.clone(),
            username: self.username.clone(),
            author: self.author.clone(),
            mentions: validate::mentions(&body),
            body,
            client_id: client_id.clone(),
            parent_id,
            attachments,
        };
        // Stored first, broadcast only once stored: nothing is shown that is not
        // stored, and nothing acknowledged is lost. The store runs the broadcast (in id
        // order with the room's other messages: two senders woken by one group commit
        // could otherwise broadcast in either order), then answers; a duplicate
        // `client_id` is not broadcast again.
        let (pubsub, topic) = (ctx.pubsub().clone(), self.topic.clone());
        let announce: Announce = Box::new(move |message| {
            let event = broadcast_event("new_msg", message);
            if let Err(error) = pubsub.broadcast(&topic, event, json!(message)) {
                tracing::error!(%error, "broadcast failed");
            }
        });
        let inserted = match self.store.insert_message(new, Some(announce)).await {
            Ok(inserted) => inserted,
            Err(error) => {
                // Nothing was stored: the uploads may go in another message. After a
                // timeout the message may still be stored, so its claims stay (a retry
                // with the same `client_id` claims them again).
                if !matches!(error, StoreError::TimedOut(_)) {
                    self.release(&ids, client_id.as_deref(), &[]).await;
                }
                return Err(store_failed(error, "new_msg", &self.room));
            }
        };
        let message = inserted.message;
        if inserted.duplicate {
            // The first message with this `client_id` keeps its own files; any other
            // claimed now goes back.
            self.release(&ids, client_id.as_deref(), &message.attachments)
                .await;
            return Ok(json!({ "id": message.id, "duplicate": true }));
        }
        self.notify_members("activity", message.id, ctx).await;
        self.notify_mentions(&message, ctx).await;
        Ok(json!({ "id": message.id }))
    }

    /// The upload ids of a `new_msg`: at most [`validate::ATTACHMENTS_MAX`] strings,
    /// duplicates once; only a signed-in user on a server with uploads may send any.
    fn attachment_ids(&self, raw: Option<&Value>) -> Result<Vec<String>, Refused> {
        let ids = match raw {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(ids)) if ids.is_empty() => return Ok(Vec::new()),
            Some(Value::Array(ids)) => ids,
            Some(_) => return Err(reason("attachments must be a list of upload ids")),
        };
        if ids.len() > validate::ATTACHMENTS_MAX {
            return Err(reason(format!(
                "at most {} attachments per message",
                validate::ATTACHMENTS_MAX
            )));
        }
        if self.attachments.is_none() {
            return Err(reason("uploads are not enabled"));
        }
        // Guests cannot upload, so no upload id is theirs.
        if self.user_id.is_none() {
            return Err(reason("unknown attachment"));
        }
        let mut found: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            let Value::String(id) = id else {
                return Err(reason("attachments must be a list of upload ids"));
            };
            if !found.contains(id) {
                found.push(id.clone());
            }
        }
        Ok(found)
    }

    /// Claims every upload of `ids` for a message of this room with `client_id`: all of
    /// them, or none (those claimed before a refusal are given back).
    async fn claim(
        &self,
        ids: &[String],
        client_id: Option<&str>,
    ) -> Result<Vec<Attachment>, Refused> {
        let (Some(files), Some(user)) = (&self.attachments, self.user_id) else {
            return Ok(Vec::new());
        };
        let mut claimed: Vec<Attachment> = Vec::with_capacity(ids.len());
        for id in ids {
            match files.claim(id, user, &self.room, client_id).await {
                Ok(attachment) => claimed.push(attachment),
                Err(refusal) => {
                    let done: Vec<String> = claimed.iter().map(|a| a.id.clone()).collect();
                    self.release(&done, client_id, &[]).await;
                    if let ClaimError::Storage = refusal {
                        return Err(reason("unavailable"));
                    }
                    return Err(reason(refusal.to_string()));
                }
            }
        }
        Ok(claimed)
    }

    /// Gives back the claims on `ids` for `client_id`, except those in `keep`.
    async fn release(&self, ids: &[String], client_id: Option<&str>, keep: &[Attachment]) {
        let Some(files) = &self.attachments else {
            return;
        };
        for id in ids.iter().filter(|id| !keep.iter().any(|a| &a.id == *id)) {
            files.release(id, &self.room, client_id).await;
        }
    }

    /// `attachments` `{"ids"}`: fresh signed attachments for the uploads among `ids`
    /// posted in this room (or this user's own not posted yet); others are left out.
    async fn refresh(&self, p: Payload) -> Result<Value, Refused> {
        let Some(files) = &self.attachments else {
            return Err(reason("uploads are not enabled"));
        };
        let Some(Value::Array(ids)) = p.parse::<Refresh>().and_then(|r| r.ids) else {
            return Err(reason("ids must be a list of upload ids"));
        };
        if ids.len() > ATTACHMENTS_REFRESH_MAX {
            return Err(reason(format!(
                "at most {ATTACHMENTS_REFRESH_MAX} ids at once"
            )));
        }
        let mut found = Vec::new();
        for id in ids.iter().filter_map(Value::as_str) {
            if found.iter().any(|a: &Attachment| a.id == id) {
                continue;
            }
            if let Some(mut attachment) = files.visible_in(id, &self.room, self.user_id).await {
                files.sign(&mut attachment, &self.viewer);
                found.push(attachment);
            }
        }
        Ok(json!({ "attachments": found }))
    }

    /// `edit_msg` / `delete_msg`: the author's own message, not deleted; the changed
    /// message is broadcast as `msg_updated`.
    async fn change(
        &self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<(), Refused> {
        let target = p.parse::<Target>();
        let id = validate::message_id(target.as_ref().and_then(|t| t.id.as_ref()), "id")
            .map_err(reason)?;
        let change = if event == "edit_msg" {
            let Some(Value::String(body)) = target.and_then(|t| t.body) else {
                return Err(reason("body is required"));
            };
            let body = validate::body(&body).map_err(reason)?;
            Change::Edit {
                mentions: validate::mentions(&body),
                body,
            }
        } else {
            Change::Delete
        };
        // A delete removes the message's files: which they are is read first (the
        // tombstone has none). Only the author may delete, and the files are theirs.
        let files = match (&change, &self.attachments) {
            (Change::Delete, Some(_)) => self
                .store
                .message(&self.room, id)
                .await
                .map_err(|e| store_failed(e, event, &self.room))?
                .filter(|m| m.author == self.author)
                .map(|m| m.attachments)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        // Broadcast by the store once stored, in order with the room's other changes
        // and messages (their `seq` order: docs/chat.md, "Changes while away").
        let (pubsub, topic) = (ctx.pubsub().clone(), self.topic.clone());
        let announce: Announce = Box::new(move |changed| {
            if let Err(error) = pubsub.broadcast(
                &topic,
                broadcast_event("msg_updated", changed),
                json!(changed),
            ) {
                tracing::error!(%error, "broadcast failed");
            }
        });
        let changed = self
            .store
            .apply_change(&self.room, id, &self.author, change, Some(announce))
            .await
            .map_err(|e| store_failed(e, event, &self.room))?
            .map_err(|refusal| reason(refusal.to_string()))?;
        if let Some(uploads) = &self.attachments {
            for attachment in &files {
                uploads.delete(&attachment.id).await;
            }
        }
        if changed.deleted && changed.parent_id.is_none() {
            // An unread message that is deleted is no longer unread (the sidebar's count).
            self.notify_members("deleted", changed.id, ctx).await;
        }
        Ok(())
    }

    /// `react`: toggles the caller's emoji; everyone in the room gets the reactions now.
    async fn react(
        &self,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Value, Refused> {
        let target = p.parse::<Target>();
        let id = validate::message_id(target.as_ref().and_then(|t| t.id.as_ref()), "id")
            .map_err(reason)?;
        let emoji =
            validate::emoji(target.as_ref().and_then(|t| t.emoji.as_ref())).map_err(reason)?;
        let reactor = Reactor {
            key: self.author.clone(),
            username: self.username.clone(),
        };
        let (pubsub, topic) = (ctx.pubsub().clone(), self.topic.clone());
        let announce: Announce = Box::new(move |m| {
            let note = json!({
                "id": m.id,
                "reactions": m.reactions,
                "reactors": m.reactions.reactors(),
                "seq": m.seq,
            });
            if let Err(error) = pubsub.broadcast(&topic, "reaction", note) {
                tracing::error!(%error, "broadcast failed");
            }
        });
        let message = self
            .store
            .toggle_reaction(&self.room, id, reactor, &emoji, Some(announce))
            .await
            .map_err(|e| store_failed(e, "react", &self.room))?
            .map_err(|refusal| reason(refusal.to_string()))?;
        Ok(json!({
            "reactions": message.reactions,
            "reactors": message.reactions.reactors(),
            "seq": message.seq,
        }))
    }

    /// `thread`: a top-level message and a page of its replies, oldest first.
    async fn thread(&self, p: Payload) -> Result<Value, Refused> {
        let Some(thread) = p.parse::<Thread>() else {
            return Err(reason("thread takes an object"));
        };
        let parent_id =
            validate::message_id(thread.parent_id.as_ref(), "parent_id").map_err(reason)?;
        let before_id = validate::before_id(thread.before_id.as_ref()).map_err(reason)?;
        let limit = validate::history_limit(thread.limit.as_ref()).map_err(reason)?;
        let failed = |e| store_failed(e, "thread", &self.room);
        let parent = self
            .store
            .message(&self.room, parent_id)
            .await
            .map_err(failed)?
            .filter(|m| m.parent_id.is_none())
            .ok_or_else(|| reason("not found"))?;
        let replies = self
            .store
            .replies(&self.room, parent_id, before_id, limit)
            .await
            .map_err(failed)?;
        let mut parent = parent;
        self.sign(&mut parent);
        Ok(json!({ "parent": parent, "messages": self.signed(replies) }))
    }

    /// `search`: this room's messages matching a query, newest first (`crate::search`).
    async fn search(&self, p: Payload) -> Result<Value, Refused> {
        let request = p
            .parse::<Value>()
            .ok_or_else(|| reason("search takes an object"))
            .and_then(|v| crate::search::parse(&v).map_err(reason))?;
        if !self
            .searches
            .try_acquire(self.search_key.as_str(), Instant::now())
        {
            return Err(reason(crate::search::too_many()));
        }
        let found = self
            .store
            .search(&self.room, &request.query, request.before_id, request.limit)
            .await
            .map_err(|e| store_failed(e, "search", &self.room))?;
        Ok(json!({ "messages": self.signed(found) }))
    }

    /// Pushes `mention` on the `user:<id>` topic of every registered user the message
    /// mentions who may read the room (public room, or a member); not to the author.
    async fn notify_mentions(&self, message: &StoredMessage, ctx: &mut ChannelContext<'_, Self>) {
        let Some(accounts) = &self.accounts else {
            return;
        };
        let note = json!({
            "room": self.room,
            "id": message.id,
            "username": self.username,
            "author": self.author,
            "body": message.body,
        });
        for name in message.mentions.iter().take(validate::MENTIONS_MAX) {
            let user = match accounts.user_by_fold(&names::fold(name)).await {
                Ok(Some(user)) if Some(user.id) != self.user_id => user,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, "mention: account store unavailable");
                    return;
                }
            };
            let may_read = match self.kind {
                Some(RoomKind::Public) | None => true,
                Some(RoomKind::Private | RoomKind::Dm) => accounts
                    .is_member(&self.room, user.id)
                    .await
                    .unwrap_or(false),
            };
            if may_read {
                let _ =
                    ctx.pubsub()
                        .broadcast(&format!("user:{}", user.id), "mention", note.clone());
            }
        }
    }

    /// Tells every member's `user:<id>` topic that the room has a new message
    /// (`activity`) or that a top-level message was deleted (`deleted`): the sidebar's
    /// unread counts and order. At most `MAX_MEMBERS` of them.
    async fn notify_members(&self, event: &str, id: i64, ctx: &mut ChannelContext<'_, Self>) {
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
        let note = json!({
            "room": self.room,
            "id": id,
            "username": self.username,
            "author": self.author,
        });
        for member in members.into_iter().take(crate::accounts::MAX_MEMBERS) {
            let _ = ctx
                .pubsub()
                .broadcast(&format!("user:{member}"), event, note.clone());
        }
    }
}
