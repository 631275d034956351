//! Message history behind one trait: PostgreSQL, or memory when no `DATABASE_URL` is set.

pub mod group_commit;
mod memory;
mod message;
mod metered;
mod migrate;
mod pg_error;
mod postgres;
mod search;
mod timeout;
mod tls;

use async_trait::async_trait;

pub use group_commit::{GroupCommit, Op, WriterConfig};
pub use memory::{MemoryStore, CLIENT_ID_WINDOW, SEARCH_SCAN_BYTES, SEARCH_SCAN_MAX};
pub use message::{
    author_id, Change, Inserted, NewMessage, Reactions, Reactor, Reactors, Refusal, StoredMessage,
    MAX_EMOJI_PER_MESSAGE,
};
pub use metered::{MeteredStore, StoreCounts};
pub use migrate::{migrate, MIGRATIONS};
pub use pg_error::{describe as describe_pg, explain as explain_pg_error};
pub use postgres::PostgresStore;
pub use search::{SearchQuery, TERMS_MAX};
pub use timeout::{TimeoutStore, DEFAULT_STORE_TIMEOUT};
pub use tls::{split_sslmode, TlsMode};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the statement; nothing was stored.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// No answer within the store timeout ([`TimeoutStore`]). Unlike `Unavailable`, the
    /// call may still take effect: a write may have committed (see `TimeoutStore`).
    #[error("no answer from the database within {0:?}")]
    TimedOut(std::time::Duration),
    /// The store's write queue is full (this many messages wait already): the message is
    /// refused at once instead of buffered without bound. Nothing was stored.
    #[error("the store's write queue is full ({0} messages waiting)")]
    Busy(usize),
    /// Migrations could not be applied at start-up.
    #[error("migration failed: {0}")]
    Migration(String),
}

/// What to do with a message once it is stored (the room channel's broadcast): see
/// [`Store::insert_announced`].
pub type Announce = Box<dyn FnOnce(&StoredMessage) + Send>;

/// Where rooms and messages live.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the room exists.
    async fn room_exists(&self, room: &str) -> Result<bool, StoreError>;
    /// Creates the room if it does not exist: `true` if this call created it.
    async fn ensure_room(&self, room: &str) -> Result<bool, StoreError>;
    /// Stores `new` unless its author already sent its `client_id` in this room (then
    /// answers that first message as a duplicate and stores nothing), and runs
    /// `announce` with a stored message before answering. A store that stores messages
    /// of one room from several callers at once runs their announcements in id order
    /// (the memory store under its lock, PostgreSQL in its group-commit writer), so the
    /// room's broadcasts never overtake each other. A duplicate is not announced. A
    /// reply (`parent_id`) adds one to its parent's `reply_count`; the caller checked the
    /// parent.
    async fn insert_message(
        &self,
        new: NewMessage,
        announce: Option<Announce>,
    ) -> Result<Inserted, StoreError>;
    /// Stores a plain message ([`NewMessage::plain`]); only a returned message is stored.
    async fn insert(
        &self,
        room: &str,
        username: &str,
        body: &str,
    ) -> Result<StoredMessage, StoreError> {
        Ok(self
            .insert_message(NewMessage::plain(room, username, body), None)
            .await?
            .message)
    }
    /// [`insert`](Self::insert), announced (see [`insert_message`](Self::insert_message)).
    async fn insert_announced(
        &self,
        room: &str,
        username: &str,
        body: &str,
        announce: Announce,
    ) -> Result<StoredMessage, StoreError> {
        Ok(self
            .insert_message(NewMessage::plain(room, username, body), Some(announce))
            .await?
            .message)
    }
    /// The latest `limit` top-level messages of a room, oldest first.
    async fn recent(&self, room: &str, limit: u32) -> Result<Vec<StoredMessage>, StoreError>;
    /// Up to `limit` top-level messages with `id < before_id`, oldest first.
    async fn history(
        &self,
        room: &str,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// The first `limit` messages (top-level and replies) with `id > after_id`, oldest
    /// first: what a rejoining page missed.
    async fn after(
        &self,
        room: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// One message of a room.
    async fn message(&self, room: &str, id: i64) -> Result<Option<StoredMessage>, StoreError>;
    /// Up to `limit` replies to `parent_id` with `id < before_id`, oldest first.
    async fn replies(
        &self,
        room: &str,
        parent_id: i64,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// Edits or deletes message `id` of `room` if `author` wrote it and it is not
    /// deleted, giving it a new change sequence number (docs/chat.md, "Changes while
    /// away"); answers the changed message, and runs `announce` with it before
    /// answering, in order with the room's other messages and changes (as
    /// [`insert_message`](Self::insert_message) does).
    async fn apply_change(
        &self,
        room: &str,
        id: i64,
        author: &str,
        change: Change,
        announce: Option<Announce>,
    ) -> Result<Result<StoredMessage, Refusal>, StoreError>;
    /// [`apply_change`](Self::apply_change), not announced.
    async fn change(
        &self,
        room: &str,
        id: i64,
        author: &str,
        change: Change,
    ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
        self.apply_change(room, id, author, change, None).await
    }
    /// Toggles `reactor`'s `emoji` on message `id` of `room` (not deleted), giving it a
    /// new change sequence number; answers the message with its reactions now, announced
    /// like [`apply_change`](Self::apply_change).
    async fn toggle_reaction(
        &self,
        room: &str,
        id: i64,
        reactor: Reactor,
        emoji: &str,
        announce: Option<Announce>,
    ) -> Result<Result<StoredMessage, Refusal>, StoreError>;
    /// [`toggle_reaction`](Self::toggle_reaction), not announced: the reactions now.
    async fn react(
        &self,
        room: &str,
        id: i64,
        reactor: Reactor,
        emoji: &str,
    ) -> Result<Result<Reactions, Refusal>, StoreError> {
        Ok(self
            .toggle_reaction(room, id, reactor, emoji, None)
            .await?
            .map(|message| message.reactions))
    }
    /// The room's change sequence now: its highest message id or change sequence number
    /// (0 for an empty room). Every change committed later is numbered above it.
    async fn seq(&self, room: &str) -> Result<i64, StoreError>;
    /// Up to `limit` messages of `room` with `id <= max_id` changed after `after_seq`
    /// (their `seq` above it), in change order: what a rejoining page holds that changed.
    async fn changed(
        &self,
        room: &str,
        after_seq: i64,
        max_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// Up to `limit` messages of `room` (top-level and replies, not deleted) with
    /// `id < before_id` that match every term of `query` ([`SearchQuery`]), newest
    /// first. The default refuses: a store that cannot search says so.
    async fn search(
        &self,
        room: &str,
        query: &SearchQuery,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let _ = (room, query, before_id, limit);
        Err(StoreError::Unavailable(format!(
            "the {} store cannot search",
            self.describe()
        )))
    }
    /// `"memory"` or `"postgres"`.
    fn describe(&self) -> &'static str;
    /// Whether the store is usable now (`/readyz`): one round trip for PostgreSQL; the
    /// memory store is always ready.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The connection pool now, for metrics (`None`: no pool).
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
}

/// A connection pool's use (`chat_pg_pool_*` metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open now.
    pub size: usize,
    /// Open connections idle now.
    pub available: usize,
    /// Calls waiting for a connection now.
    pub waiting: usize,
}

/// Formats a UTC timestamp the way messages carry it.
pub(crate) fn rfc3339(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    // The format has no fallible components for a UTC datetime.
    at.format(&format).expect("timestamp formats")
}
