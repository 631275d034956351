//! Message history behind one trait: PostgreSQL, or memory when no `DATABASE_URL` is set.

pub mod group_commit;
mod memory;
mod metered;
mod migrate;
mod pg_error;
mod postgres;
mod timeout;
mod tls;

use async_trait::async_trait;
use serde::Serialize;

pub use group_commit::{GroupCommit, WriterConfig};
pub use memory::MemoryStore;
pub use metered::{MeteredStore, StoreCounts};
pub use migrate::{migrate, MIGRATIONS};
pub use pg_error::{describe as describe_pg, explain as explain_pg_error};
pub use postgres::PostgresStore;
pub use timeout::{TimeoutStore, DEFAULT_STORE_TIMEOUT};
pub use tls::{split_sslmode, TlsMode};

/// A stored chat message, as the room channel sends it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StoredMessage {
    /// Increasing id (the store assigns it).
    pub id: i64,
    /// Room name (the part after `room:`).
    pub room: String,
    /// Who wrote it.
    pub username: String,
    /// The text.
    pub body: String,
    /// RFC 3339 UTC with microseconds, e.g. `2026-11-24T06:30:00.123456Z`.
    pub inserted_at: String,
}

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
    /// Stores a message; only a returned message is stored.
    async fn insert(
        &self,
        room: &str,
        username: &str,
        body: &str,
    ) -> Result<StoredMessage, StoreError>;
    /// Stores a message, then runs `announce` with it before answering. A store that
    /// stores messages of one room from several callers at once runs their announcements
    /// in id order (the memory store under its lock, PostgreSQL in its group-commit
    /// writer), so the room's broadcasts never overtake each other. This default, for
    /// stores that do not, runs it in the caller after `insert`.
    async fn insert_announced(
        &self,
        room: &str,
        username: &str,
        body: &str,
        announce: Announce,
    ) -> Result<StoredMessage, StoreError> {
        let message = self.insert(room, username, body).await?;
        announce(&message);
        Ok(message)
    }
    /// The latest `limit` messages of a room, oldest first.
    async fn recent(&self, room: &str, limit: u32) -> Result<Vec<StoredMessage>, StoreError>;
    /// Up to `limit` messages with `id < before_id`, oldest first.
    async fn history(
        &self,
        room: &str,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;
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
