//! What the room tells users outside it, on their `user:<id>` topics: mentions, and
//! new or deleted messages for the sidebar's unread counts.

use phx_server::ChannelContext;
use serde_json::json;

use super::RoomChannel;
use crate::accounts::{names, RoomKind};
use crate::store::StoredMessage;
use crate::validate;

impl RoomChannel {
    /// Pushes `mention` on the `user:<id>` topic of every registered user the message
    /// mentions who may read the room (public room, or a member); not to the author.
    pub(super) async fn notify_mentions(
        &self,
        message: &StoredMessage,
        ctx: &mut ChannelContext<'_, Self>,
    ) {
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
    pub(super) async fn notify_members(
        &self,
        event: &str,
        id: i64,
        ctx: &mut ChannelContext<'_, Self>,
    ) {
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
