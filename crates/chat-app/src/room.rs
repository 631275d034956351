//! The `room:*` channel: join with a username, history on join, messages written to the
//! store before they are broadcast, presence, typing.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use phx_server::{Channel, ChannelContext, HandleResult, Info, Payload};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::store::{Store, StoredMessage};
use crate::validate;

fn payload(value: Value) -> Payload {
    // `json!` objects always serialize.
    Payload::json(&value).expect("JSON value")
}

fn reason(text: impl Into<String>) -> Payload {
    payload(json!({ "reason": text.into() }))
}

fn messages(list: &[StoredMessage]) -> Payload {
    payload(json!({ "messages": list }))
}

/// Sent to itself from `join`: track presence and push the list once joined.
struct AfterJoin;

/// One user in one room.
pub struct RoomChannel {
    store: Arc<dyn Store>,
    room: String,
    username: String,
}

impl RoomChannel {
    /// A channel instance backed by `store` (one per join).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            room: String::new(),
            username: String::new(),
        }
    }
}

#[derive(Deserialize)]
struct JoinParams {
    username: Option<Value>,
}

#[derive(Deserialize)]
struct NewMsg {
    body: Option<Value>,
}

#[derive(Deserialize)]
struct History {
    before_id: Option<i64>,
    limit: Option<u32>,
}

#[async_trait]
impl Channel for RoomChannel {
    async fn join(
        &mut self,
        topic: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_>,
    ) -> Result<Payload, Payload> {
        let raw_room = topic.strip_prefix("room:").unwrap_or(topic);
        self.room = validate::room(raw_room).map_err(reason)?;
        let name = p.parse::<JoinParams>().and_then(|j| j.username);
        let Some(Value::String(name)) = name else {
            return Err(reason("username is required"));
        };
        self.username = validate::username(&name).map_err(reason)?;
        // The room is created on first join; the reply carries its recent history.
        let recent = async {
            self.store.ensure_room(&self.room).await?;
            self.store
                .recent(&self.room, validate::RECENT_ON_JOIN)
                .await
        };
        let recent = recent.await.map_err(|error| {
            tracing::warn!(%error, room = %self.room, "join: store unavailable");
            reason("unavailable")
        })?;
        ctx.send_info(AfterJoin);
        Ok(messages(&recent))
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut ChannelContext<'_>) -> HandleResult {
        if info.downcast::<AfterJoin>().is_ok() {
            let online_at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut meta = Map::new();
            meta.insert("online_at".into(), Value::String(online_at.to_string()));
            if let Err(error) = ctx.presence().track(&self.username, meta) {
                tracing::warn!(%error, "presence track failed");
            }
            let state = ctx.presence().list();
            let _ = ctx.push("presence_state", state);
        }
        HandleResult::NoReply
    }

    async fn handle_in(
        &mut self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_>,
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
                // stored, and nothing acknowledged is lost.
                match self.store.insert(&self.room, &self.username, &body).await {
                    Ok(message) => {
                        let id = message.id;
                        if let Err(error) = ctx.broadcast("new_msg", payload(json!(message))) {
                            tracing::error!(%error, "broadcast failed");
                        }
                        HandleResult::ok(payload(json!({ "id": id })))
                    }
                    Err(error) => {
                        tracing::warn!(%error, room = %self.room, "new_msg: store unavailable");
                        HandleResult::error(reason("unavailable"))
                    }
                }
            }
            "history" => {
                let Some(History { before_id, limit }) = p.parse::<History>() else {
                    return HandleResult::error(reason("before_id must be an integer"));
                };
                let before_id = before_id.unwrap_or(i64::MAX);
                let limit = limit
                    .unwrap_or(validate::RECENT_ON_JOIN)
                    .clamp(1, validate::HISTORY_MAX);
                match self.store.history(&self.room, before_id, limit).await {
                    Ok(list) => HandleResult::ok(messages(&list)),
                    Err(error) => {
                        tracing::warn!(%error, room = %self.room, "history: store unavailable");
                        HandleResult::error(reason("unavailable"))
                    }
                }
            }
            "typing" => {
                let _ = ctx.broadcast_from("typing", payload(json!({ "username": self.username })));
                HandleResult::NoReply
            }
            _ => HandleResult::error(reason(format!("unknown event {event:?}"))),
        }
    }
}
