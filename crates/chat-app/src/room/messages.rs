//! What a user writes: `new_msg` (replies and attachments included), `edit_msg` and
//! `delete_msg`, `react`. Each is stored first and broadcast by the store, in the
//! room's order (docs/chat.md).

use phx_server::{ChannelContext, Payload};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{broadcast_event, reason, store_failed, Refused, RoomChannel};
use crate::store::{Announce, Change, NewMessage, Reactor, StoreError};
use crate::validate;

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

impl RoomChannel {
    /// `new_msg`: validated, stored (once per `client_id`), broadcast by the store in id
    /// order, then members and mentioned users are told.
    pub(super) async fn new_msg(
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

    /// `edit_msg` / `delete_msg`: the author's own message, not deleted; the changed
    /// message is broadcast as `msg_updated`.
    pub(super) async fn change(
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
    pub(super) async fn react(
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
}
