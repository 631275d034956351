//! What a message is (docs/chat.md, "Messages"): the stored form both stores return, the
//! new message a sender hands in, its reactions, and why a change to one is refused.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::uploads::Attachment;

/// Most distinct emoji one message carries (docs/chat.md, "React").
pub const MAX_EMOJI_PER_MESSAGE: usize = 20;

/// A stored chat message, as the room channel sends it: every field of docs/chat.md's
/// table (serialized by hand below: `guest` and `reactors` are derived).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Increasing id (the store assigns it), never reused.
    pub id: i64,
    /// Room name (the part after `room:`).
    pub room: String,
    /// Who wrote it (display name).
    pub username: String,
    /// The text; `""` once deleted.
    pub body: String,
    /// RFC 3339 UTC with microseconds, e.g. `2026-11-24T06:30:00.123456Z`.
    pub inserted_at: String,
    /// A thread reply's parent (a top-level message); `None` at top level.
    pub parent_id: Option<i64>,
    /// Replies to this message (0 for replies).
    pub reply_count: i64,
    /// The last edit, RFC 3339 like `inserted_at`.
    pub edited_at: Option<String>,
    /// A tombstone: body, attachments and mentions removed.
    pub deleted: bool,
    /// Emoji → usernames, in reaction order.
    pub reactions: Reactions,
    /// Attached uploads.
    pub attachments: Vec<Attachment>,
    /// Usernames mentioned with `@name`, as written, deduplicated.
    pub mentions: Vec<String>,
    /// The sender's idempotency key, echoed so a page can match its pending message.
    pub client_id: Option<String>,
    /// `user:<id>` or `guest:<guest id>`: who may edit or delete it. Sent as `author`
    /// (the page decides "mine" by it): it is public like presence keys; the guest's key,
    /// which it stands in for, never leaves the page.
    pub author: String,
    /// The room's change sequence at this message's last change; its id until changed
    /// (docs/chat.md, "Changes while away").
    pub seq: i64,
}

/// The public author id of an author key: `user:<id>` / `guest:<id>`, none for the
/// messages stored before author keys (author `''`) or by tools (a bare name).
pub fn author_id(author: &str) -> Option<&str> {
    (author.starts_with("user:") || author.starts_with("guest:")).then_some(author)
}

impl Serialize for StoredMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let author = author_id(&self.author);
        let mut map = serializer.serialize_map(Some(17))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("room", &self.room)?;
        map.serialize_entry("username", &self.username)?;
        map.serialize_entry("author", &author)?;
        map.serialize_entry("guest", &author.is_some_and(|a| a.starts_with("guest:")))?;
        map.serialize_entry("body", &self.body)?;
        map.serialize_entry("inserted_at", &self.inserted_at)?;
        map.serialize_entry("parent_id", &self.parent_id)?;
        map.serialize_entry("reply_count", &self.reply_count)?;
        map.serialize_entry("edited_at", &self.edited_at)?;
        map.serialize_entry("deleted", &self.deleted)?;
        map.serialize_entry("reactions", &self.reactions)?;
        map.serialize_entry("reactors", &self.reactions.reactors())?;
        map.serialize_entry("attachments", &self.attachments)?;
        map.serialize_entry("mentions", &self.mentions)?;
        map.serialize_entry("client_id", &self.client_id)?;
        map.serialize_entry("seq", &self.seq)?;
        map.end()
    }
}

impl StoredMessage {
    /// `new` as stored with `id` at `inserted_at`: no replies, edits or reactions yet.
    pub fn stored(id: i64, inserted_at: String, new: &NewMessage) -> Self {
        Self {
            id,
            room: new.room.clone(),
            username: new.username.clone(),
            body: new.body.clone(),
            inserted_at,
            parent_id: new.parent_id,
            reply_count: 0,
            edited_at: None,
            deleted: false,
            reactions: Reactions::default(),
            attachments: new.attachments.clone(),
            mentions: new.mentions.clone(),
            client_id: new.client_id.clone(),
            author: new.author.clone(),
            seq: id,
        }
    }
}

/// A message to store, validated by the room channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewMessage {
    /// Room name.
    pub room: String,
    /// Author's display name.
    pub username: String,
    /// Author key (`user:<id>` / `guest:<guest id>`).
    pub author: String,
    /// Text (may be empty when there are attachments).
    pub body: String,
    /// Idempotency key: a second message with the same key from the same author in the
    /// same room is not stored again.
    pub client_id: Option<String>,
    /// Parent of a thread reply.
    pub parent_id: Option<i64>,
    /// Resolved attachments.
    pub attachments: Vec<Attachment>,
    /// Mentioned usernames.
    pub mentions: Vec<String>,
}

impl NewMessage {
    /// A plain top-level text message whose author key is its username (tools and tests).
    pub fn plain(room: &str, username: &str, body: &str) -> Self {
        Self {
            room: room.to_owned(),
            username: username.to_owned(),
            author: username.to_owned(),
            body: body.to_owned(),
            ..Self::default()
        }
    }
}

/// A stored message and whether it was stored by an earlier call with the same
/// `client_id` (then it is that earlier message, and nothing was stored or announced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// The message (the first one, for a duplicate).
    pub message: StoredMessage,
    /// A repeat of an earlier `client_id`.
    pub duplicate: bool,
}

/// One who reacted: the author key toggles, the username is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reactor {
    /// `user:<id>` / `guest:<guest id>`.
    pub key: String,
    /// Display name.
    pub username: String,
}

/// A message's reactions: emoji in order of their first reaction, each with its
/// reactors in reaction order. Sent as `{"<emoji>": ["<username>", …]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reactions(Vec<(String, Vec<Reactor>)>);

impl Reactions {
    /// Adds `reactor`'s `emoji` at the end (building from stored rows).
    pub fn push(&mut self, emoji: &str, reactor: Reactor) {
        match self.0.iter_mut().find(|(e, _)| e == emoji) {
            Some((_, by)) => by.push(reactor),
            None => self.0.push((emoji.to_owned(), vec![reactor])),
        }
    }

    /// Adds or removes `reactor`'s `emoji`; a new emoji beyond
    /// [`MAX_EMOJI_PER_MESSAGE`] is refused. Returns whether it is now added.
    pub fn toggle(&mut self, emoji: &str, reactor: Reactor) -> Result<bool, Refusal> {
        if let Some(at) = self.0.iter().position(|(e, _)| e == emoji) {
            let by = &mut self.0[at].1;
            if let Some(mine) = by.iter().position(|r| r.key == reactor.key) {
                by.remove(mine);
                if by.is_empty() {
                    self.0.remove(at);
                }
                return Ok(false);
            }
            by.push(reactor);
            return Ok(true);
        }
        if self.0.len() >= MAX_EMOJI_PER_MESSAGE {
            return Err(Refusal::TooManyEmoji);
        }
        self.0.push((emoji.to_owned(), vec![reactor]));
        Ok(true)
    }

    /// Distinct emoji.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No reaction at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `emoji` is among them.
    pub fn has(&self, emoji: &str) -> bool {
        self.0.iter().any(|(e, _)| e == emoji)
    }

    /// Serializes as `{"<emoji>": ["<author id>", …]}`, in the order of the usernames
    /// (docs/chat.md: `reactors`).
    pub fn reactors(&self) -> Reactors<'_> {
        Reactors(self)
    }

    /// The usernames who reacted with `emoji`, in order.
    pub fn usernames(&self, emoji: &str) -> Vec<&str> {
        self.0
            .iter()
            .find(|(e, _)| e == emoji)
            .map(|(_, by)| by.iter().map(|r| r.username.as_str()).collect())
            .unwrap_or_default()
    }
}

impl Serialize for Reactions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (emoji, by) in &self.0 {
            let names: Vec<&str> = by.iter().map(|r| r.username.as_str()).collect();
            map.serialize_entry(emoji, &names)?;
        }
        map.end()
    }
}

/// A message's reactors by author id: [`Reactions::reactors`].
#[derive(Debug)]
pub struct Reactors<'a>(&'a Reactions);

impl Serialize for Reactors<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0 .0.len()))?;
        for (emoji, by) in &self.0 .0 {
            let keys: Vec<&str> = by.iter().map(|r| r.key.as_str()).collect();
            map.serialize_entry(emoji, &keys)?;
        }
        map.end()
    }
}

/// A change to a message's text: an edit, or its deletion (a tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// New body (validated) and the mentions it makes.
    Edit {
        /// Text.
        body: String,
        /// `@name`s in it.
        mentions: Vec<String>,
    },
    /// Remove body, attachments and mentions; keep the message as a tombstone.
    Delete,
}

/// Why the store refused a change; the text is the reply's reason (docs/chat.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such message in this room.
    #[error("not found")]
    NotFound,
    /// Not the author.
    #[error("forbidden")]
    Forbidden,
    /// Already a tombstone.
    #[error("deleted")]
    Deleted,
    /// The message carries [`MAX_EMOJI_PER_MESSAGE`] distinct emoji already.
    #[error("at most 20 different emoji per message")]
    TooManyEmoji,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str) -> Reactor {
        Reactor {
            key: key.into(),
            username: key.to_uppercase(),
        }
    }

    #[test]
    fn reactions_toggle_keep_order_and_serialize_as_a_map() {
        let mut reactions = Reactions::default();
        assert_eq!(reactions.toggle("👍", r("a")), Ok(true));
        assert_eq!(reactions.toggle("🎉", r("b")), Ok(true));
        assert_eq!(reactions.toggle("👍", r("b")), Ok(true));
        assert_eq!(
            serde_json::to_string(&reactions).unwrap(),
            r#"{"👍":["A","B"],"🎉":["B"]}"#
        );
        assert_eq!(
            serde_json::to_string(&reactions.reactors()).unwrap(),
            r#"{"👍":["a","b"],"🎉":["b"]}"#
        );
        assert_eq!(reactions.toggle("👍", r("a")), Ok(false));
        assert_eq!(reactions.toggle("🎉", r("b")), Ok(false));
        assert_eq!(
            serde_json::to_string(&reactions).unwrap(),
            r#"{"👍":["B"]}"#
        );
    }

    #[test]
    fn at_most_20_distinct_emoji() {
        let mut reactions = Reactions::default();
        for i in 0..MAX_EMOJI_PER_MESSAGE {
            reactions.toggle(&format!("e{i}"), r("a")).unwrap();
        }
        assert_eq!(reactions.toggle("new", r("a")), Err(Refusal::TooManyEmoji));
        // Joining an existing emoji is still fine.
        assert_eq!(reactions.toggle("e3", r("b")), Ok(true));
    }

    #[test]
    fn a_message_names_its_author_by_id_and_marks_guests() {
        let new = |author: &str| NewMessage {
            author: author.into(),
            ..NewMessage::plain("r", "ann", "hi")
        };
        let json = |author: &str| {
            serde_json::to_value(StoredMessage::stored(7, "t".into(), &new(author))).unwrap()
        };
        let by_user = json("user:3");
        assert_eq!(
            (&by_user["author"], &by_user["guest"], &by_user["seq"]),
            (
                &serde_json::json!("user:3"),
                &serde_json::json!(false),
                &serde_json::json!(7)
            )
        );
        let by_guest = json("guest:0af1");
        assert_eq!(
            (&by_guest["author"], &by_guest["guest"]),
            (&serde_json::json!("guest:0af1"), &serde_json::json!(true))
        );
        // Stored before author keys, or by a tool: no id to show, not a guest's.
        for legacy in ["", "ann"] {
            let old = json(legacy);
            assert_eq!(
                (&old["author"], &old["guest"]),
                (&serde_json::Value::Null, &serde_json::json!(false))
            );
        }
        assert_eq!(by_user.as_object().unwrap().len(), 17, "{by_user}");
    }
}
