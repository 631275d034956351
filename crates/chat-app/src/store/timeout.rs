//! A deadline on every store call, for every store: [`TimeoutStore`] wraps another store.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    Announce, Change, Inserted, NewMessage, Reactor, Refusal, SearchQuery, Store, StoreError,
    StoredMessage,
};

/// Default store timeout (`--store-timeout-ms`).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bounds every call of the store it wraps: no answer within `limit` is
/// [`StoreError::TimedOut`], which the room channel answers as `unavailable`.
///
/// Why: one task runs a socket, so a store call that waits runs a socket that waits. A
/// database partition (packets dropped, no refusal) would otherwise hold the socket,
/// all its channels included, for as long as the partition lasts.
///
/// **A timed-out write may have committed.** The deadline can pass after PostgreSQL
/// committed an `INSERT` whose answer is lost, or while the statement is still on its
/// way and commits when the partition heals. The sender then gets `unavailable` for a
/// message that is (or will be) in the history. It is not broadcast: the group-commit
/// writer announces a committed message only while its sender still waits, so nobody
/// sees a message its author was told failed (see `group_commit` for the one
/// microsecond-wide exception). That is acceptable: the guarantee
/// kept is that nothing *acknowledged* is lost; without an ack the client may retry,
/// and a retry with the same `client_id` is answered as a duplicate of the stored
/// message instead of being stored again (docs/chat.md).
///
/// **The connection is not handed out broken.** Dropping a timed-out call drops its
/// pooled connection handle, which goes back to the pool with the query's answer still
/// owed. tokio-postgres matches answers to queries in order and discards answers nobody
/// awaits, so when the answer arrives the connection is consistent again; before that,
/// the pool's check on checkout (`RecyclingMethod::Verified`: one round trip, bounded by
/// the pool's recycle timeout) fails, and deadpool discards the connection and opens a
/// new one instead of handing it out. A deadline that passes during checkout drops the
/// not-yet-ready connection, which deadpool discards as well.
///
/// ```
/// use std::time::Duration;
/// use chat_app::store::{MemoryStore, Store, TimeoutStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = TimeoutStore::new(MemoryStore::new(), Duration::from_secs(5));
/// assert!(store.ensure_room("lobby").await.unwrap());
/// # }
/// ```
#[derive(Debug)]
pub struct TimeoutStore<S> {
    inner: S,
    limit: Duration,
}

impl<S: Store> TimeoutStore<S> {
    /// `inner`, with every call bounded by `limit`.
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit }
    }

    /// The deadline of each call.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.limit, call)
            .await
            .unwrap_or(Err(StoreError::TimedOut(self.limit)))
    }
}

#[async_trait]
impl<S: Store> Store for TimeoutStore<S> {
    async fn room_exists(&self, room: &str) -> Result<bool, StoreError> {
        self.bounded(self.inner.room_exists(room)).await
    }

    async fn ensure_room(&self, room: &str) -> Result<bool, StoreError> {
        self.bounded(self.inner.ensure_room(room)).await
    }

    async fn insert_message(
        &self,
        new: NewMessage,
        announce: Option<Announce>,
    ) -> Result<Inserted, StoreError> {
        self.bounded(self.inner.insert_message(new, announce)).await
    }

    async fn recent(&self, room: &str, limit: u32) -> Result<Vec<StoredMessage>, StoreError> {
        self.bounded(self.inner.recent(room, limit)).await
    }

    async fn history(
        &self,
        room: &str,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.bounded(self.inner.history(room, before_id, limit))
            .await
    }

    async fn after(
        &self,
        room: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.bounded(self.inner.after(room, after_id, limit)).await
    }

    async fn message(&self, room: &str, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        self.bounded(self.inner.message(room, id)).await
    }

    async fn replies(
        &self,
        room: &str,
        parent_id: i64,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.bounded(self.inner.replies(room, parent_id, before_id, limit))
            .await
    }

    async fn search(
        &self,
        room: &str,
        query: &SearchQuery,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.bounded(self.inner.search(room, query, before_id, limit))
            .await
    }

    async fn apply_change(
        &self,
        room: &str,
        id: i64,
        author: &str,
        change: Change,
        announce: Option<Announce>,
    ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
        self.bounded(self.inner.apply_change(room, id, author, change, announce))
            .await
    }

    async fn toggle_reaction(
        &self,
        room: &str,
        id: i64,
        reactor: Reactor,
        emoji: &str,
        announce: Option<Announce>,
    ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
        self.bounded(
            self.inner
                .toggle_reaction(room, id, reactor, emoji, announce),
        )
        .await
    }

    async fn seq(&self, room: &str) -> Result<i64, StoreError> {
        self.bounded(self.inner.seq(room)).await
    }

    async fn changed(
        &self,
        room: &str,
        after_seq: i64,
        max_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.bounded(self.inner.changed(room, after_seq, max_id, limit))
            .await
    }

    fn describe(&self) -> &'static str {
        self.inner.describe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(self.inner.ping()).await
    }

    fn pool_status(&self) -> Option<super::PoolStatus> {
        self.inner.pool_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    /// A store whose writes never answer, like a database behind a partition.
    struct Partitioned;

    #[async_trait]
    impl Store for Partitioned {
        async fn room_exists(&self, _: &str) -> Result<bool, StoreError> {
            std::future::pending().await
        }
        async fn ensure_room(&self, _: &str) -> Result<bool, StoreError> {
            std::future::pending().await
        }
        async fn insert_message(
            &self,
            _: NewMessage,
            _: Option<Announce>,
        ) -> Result<Inserted, StoreError> {
            std::future::pending().await
        }
        async fn recent(&self, _: &str, _: u32) -> Result<Vec<StoredMessage>, StoreError> {
            std::future::pending().await
        }
        async fn history(&self, _: &str, _: i64, _: u32) -> Result<Vec<StoredMessage>, StoreError> {
            std::future::pending().await
        }
        async fn after(&self, _: &str, _: i64, _: u32) -> Result<Vec<StoredMessage>, StoreError> {
            std::future::pending().await
        }
        async fn message(&self, _: &str, _: i64) -> Result<Option<StoredMessage>, StoreError> {
            std::future::pending().await
        }
        async fn replies(
            &self,
            _: &str,
            _: i64,
            _: i64,
            _: u32,
        ) -> Result<Vec<StoredMessage>, StoreError> {
            std::future::pending().await
        }
        async fn apply_change(
            &self,
            _: &str,
            _: i64,
            _: &str,
            _: Change,
            _: Option<Announce>,
        ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
            std::future::pending().await
        }
        async fn toggle_reaction(
            &self,
            _: &str,
            _: i64,
            _: Reactor,
            _: &str,
            _: Option<Announce>,
        ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
            std::future::pending().await
        }
        async fn seq(&self, _: &str) -> Result<i64, StoreError> {
            std::future::pending().await
        }
        async fn changed(
            &self,
            _: &str,
            _: i64,
            _: i64,
            _: u32,
        ) -> Result<Vec<StoredMessage>, StoreError> {
            std::future::pending().await
        }
        fn describe(&self) -> &'static str {
            "partitioned"
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_call_that_does_not_answer_times_out() {
        let limit = Duration::from_millis(5000);
        let store = TimeoutStore::new(Partitioned, limit);
        let started = tokio::time::Instant::now();
        let timed_out =
            |r: Result<_, StoreError>| matches!(r, Err(StoreError::TimedOut(l)) if l == limit);
        assert!(timed_out(store.room_exists("r").await.map(|_| ())));
        assert!(timed_out(store.ensure_room("r").await.map(|_| ())));
        assert!(timed_out(store.insert("r", "u", "b").await.map(|_| ())));
        assert!(timed_out(store.recent("r", 1).await.map(|_| ())));
        assert!(timed_out(store.history("r", 1, 1).await.map(|_| ())));
        assert!(timed_out(store.seq("r").await.map(|_| ())));
        assert!(timed_out(store.changed("r", 1, 1, 1).await.map(|_| ())));
        assert!(timed_out(
            store.change("r", 1, "u", Change::Delete).await.map(|_| ())
        ));
        // Paused clock: exactly eight deadlines passed, each one the configured limit.
        assert_eq!(started.elapsed(), 8 * limit);
        assert_eq!(store.describe(), "partitioned");
    }

    #[tokio::test]
    async fn answers_in_time_pass_through() {
        let store = TimeoutStore::new(MemoryStore::new(), Duration::from_secs(5));
        assert!(store.ensure_room("r").await.unwrap());
        assert!(!store.ensure_room("r").await.unwrap());
        assert!(store.room_exists("r").await.unwrap());
        let m = store.insert("r", "u", "hi").await.unwrap();
        assert_eq!(store.recent("r", 5).await.unwrap(), vec![m.clone()]);
        assert_eq!(store.history("r", m.id + 1, 5).await.unwrap(), vec![m]);
        assert_eq!(store.describe(), "memory");
    }
}
