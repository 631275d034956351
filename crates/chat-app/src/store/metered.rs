//! Store latency and errors as metrics: [`MeteredStore`] wraps another store.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{
    Announce, Change, Inserted, NewMessage, PoolStatus, Reactor, Refusal, SearchQuery, Store,
    StoreError, StoredMessage,
};

/// Calls and errors since start, for the shutdown line.
#[derive(Debug, Default)]
pub struct StoreCounts {
    /// Store calls made.
    pub calls: AtomicU64,
    /// Store calls that failed (including timeouts).
    pub errors: AtomicU64,
    /// Messages stored.
    pub stored: AtomicU64,
}

/// Records every call of the store it wraps: `chat_store_duration_seconds{op}` (a
/// histogram, seconds) and `chat_store_errors_total{op}`, where `op` is the method
/// (`room_exists`, `ensure_room`, `insert`, `recent`, `history`, `after`,
/// `message`, `replies`, `change`, `react`, `search`). Wrap it around the
/// [`TimeoutStore`](super::TimeoutStore) so a timed-out call counts as an error after
/// its full deadline. Without an installed `metrics` recorder this costs nothing but the
/// clock reads.
#[derive(Debug)]
pub struct MeteredStore<S> {
    inner: S,
    counts: Arc<StoreCounts>,
}

impl<S: Store> MeteredStore<S> {
    /// `inner`, measured.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    /// The running counts (shared: read them after the store is gone).
    pub fn counts(&self) -> Arc<StoreCounts> {
        self.counts.clone()
    }

    async fn measured<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        metrics::histogram!("chat_store_duration_seconds", "op" => op)
            .record(started.elapsed().as_secs_f64());
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            metrics::counter!("chat_store_errors_total", "op" => op).increment(1);
            self.counts.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

#[async_trait]
impl<S: Store> Store for MeteredStore<S> {
    async fn room_exists(&self, room: &str) -> Result<bool, StoreError> {
        self.measured("room_exists", self.inner.room_exists(room))
            .await
    }

    async fn ensure_room(&self, room: &str) -> Result<bool, StoreError> {
        self.measured("ensure_room", self.inner.ensure_room(room))
            .await
    }

    async fn insert_message(
        &self,
        new: NewMessage,
        announce: Option<Announce>,
    ) -> Result<Inserted, StoreError> {
        let result = self
            .measured("insert", self.inner.insert_message(new, announce))
            .await;
        if result.as_ref().is_ok_and(|i| !i.duplicate) {
            self.counts.stored.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn recent(&self, room: &str, limit: u32) -> Result<Vec<StoredMessage>, StoreError> {
        self.measured("recent", self.inner.recent(room, limit))
            .await
    }

    async fn history(
        &self,
        room: &str,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.measured("history", self.inner.history(room, before_id, limit))
            .await
    }

    async fn after(
        &self,
        room: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.measured("after", self.inner.after(room, after_id, limit))
            .await
    }

    async fn message(&self, room: &str, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        self.measured("message", self.inner.message(room, id)).await
    }

    async fn replies(
        &self,
        room: &str,
        parent_id: i64,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.measured(
            "replies",
            self.inner.replies(room, parent_id, before_id, limit),
        )
        .await
    }

    async fn search(
        &self,
        room: &str,
        query: &SearchQuery,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.measured("search", self.inner.search(room, query, before_id, limit))
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
        self.measured(
            "change",
            self.inner.apply_change(room, id, author, change, announce),
        )
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
        self.measured(
            "react",
            self.inner
                .toggle_reaction(room, id, reactor, emoji, announce),
        )
        .await
    }

    async fn seq(&self, room: &str) -> Result<i64, StoreError> {
        self.measured("seq", self.inner.seq(room)).await
    }

    async fn changed(
        &self,
        room: &str,
        after_seq: i64,
        max_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.measured(
            "changed",
            self.inner.changed(room, after_seq, max_id, limit),
        )
        .await
    }

    fn describe(&self) -> &'static str {
        self.inner.describe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        self.inner.pool_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn counts_calls_errors_and_stored_messages() {
        let store = MeteredStore::new(MemoryStore::new());
        let counts = store.counts();
        store.ensure_room("lobby").await.unwrap();
        store.insert("lobby", "ann", "hi").await.unwrap();
        store.recent("lobby", 10).await.unwrap();
        assert_eq!(counts.calls.load(Ordering::Relaxed), 3);
        assert_eq!(counts.stored.load(Ordering::Relaxed), 1);
        assert_eq!(counts.errors.load(Ordering::Relaxed), 0);
    }
}
