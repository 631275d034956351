//! History in memory: the embedded default, lost on restart.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{rfc3339, Announce, Store, StoreError, StoredMessage};

/// Rooms and messages in a map; ids increase across rooms like a sequence.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: i64,
    rooms: HashMap<String, Vec<StoredMessage>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, StoreError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))?;
        Ok(f(&mut state))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn room_exists(&self, room: &str) -> Result<bool, StoreError> {
        self.with(|s| s.rooms.contains_key(room))
    }

    async fn ensure_room(&self, room: &str) -> Result<bool, StoreError> {
        self.with(|s| {
            if s.rooms.contains_key(room) {
                return false;
            }
            s.rooms.insert(room.to_owned(), Vec::new());
            true
        })
    }

    async fn insert(
        &self,
        room: &str,
        username: &str,
        body: &str,
    ) -> Result<StoredMessage, StoreError> {
        self.with(|s| s.append(room, username, body))
    }

    async fn insert_announced(
        &self,
        room: &str,
        username: &str,
        body: &str,
        announce: Announce,
    ) -> Result<StoredMessage, StoreError> {
        // Announced under the lock: the next message (the next id) waits, so a room's
        // broadcasts leave in id order.
        self.with(|s| {
            let message = s.append(room, username, body);
            announce(&message);
            message
        })
    }

    async fn recent(&self, room: &str, limit: u32) -> Result<Vec<StoredMessage>, StoreError> {
        self.history(room, i64::MAX, limit).await
    }

    async fn history(
        &self,
        room: &str,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.with(|s| {
            let Some(messages) = s.rooms.get(room) else {
                return Vec::new();
            };
            // Messages are appended in id order, so the ones before `before_id` are a prefix.
            let end = messages.partition_point(|m| m.id < before_id);
            let start = end.saturating_sub(limit as usize);
            messages[start..end].to_vec()
        })
    }

    fn describe(&self) -> &'static str {
        "memory"
    }
}

impl State {
    fn append(&mut self, room: &str, username: &str, body: &str) -> StoredMessage {
        self.next_id += 1;
        let message = StoredMessage {
            id: self.next_id,
            room: room.to_owned(),
            username: username.to_owned(),
            body: body.to_owned(),
            inserted_at: rfc3339(time::OffsetDateTime::now_utc()),
        };
        self.rooms
            .entry(room.to_owned())
            .or_default()
            .push(message.clone());
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recent_and_history_are_oldest_first_and_bounded() {
        let store = MemoryStore::new();
        store.ensure_room("a").await.unwrap();
        for i in 0..10 {
            store.insert("a", "u", &format!("m{i}")).await.unwrap();
            store.insert("b", "u", &format!("other{i}")).await.unwrap();
        }
        let recent = store.recent("a", 3).await.unwrap();
        assert_eq!(
            recent.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["m7", "m8", "m9"]
        );
        let older = store.history("a", recent[0].id, 2).await.unwrap();
        assert_eq!(
            older.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["m5", "m6"]
        );
        assert!(store.recent("nowhere", 5).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn ensure_room_reports_whether_it_created_the_room() {
        let store = MemoryStore::new();
        assert!(!store.room_exists("a").await.unwrap());
        assert!(store.ensure_room("a").await.unwrap(), "created");
        assert!(!store.ensure_room("a").await.unwrap(), "already there");
        assert!(store.room_exists("a").await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_senders_are_announced_in_id_order() {
        use std::sync::Arc;
        let store = Arc::new(MemoryStore::new());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let senders: Vec<_> = (0..8)
            .map(|s| {
                let (store, seen) = (store.clone(), seen.clone());
                tokio::spawn(async move {
                    for i in 0..100 {
                        let seen = seen.clone();
                        let announce: Announce = Box::new(move |m| seen.lock().unwrap().push(m.id));
                        let m = store
                            .insert_announced("r", "u", &format!("{s}/{i}"), announce)
                            .await
                            .unwrap();
                        assert!(m.id > 0);
                    }
                })
            })
            .collect();
        for s in senders {
            s.await.unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 800);
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "announced in id order"
        );
        assert_eq!(store.recent("r", 1000).await.unwrap().len(), 800);
    }

    #[tokio::test]
    async fn ids_increase_and_timestamps_are_rfc3339_utc() {
        let store = MemoryStore::new();
        let a = store.insert("r", "u", "1").await.unwrap();
        let b = store.insert("r", "u", "2").await.unwrap();
        assert!(b.id > a.id);
        assert!(
            a.inserted_at.ends_with('Z') && a.inserted_at.contains('T'),
            "{}",
            a.inserted_at
        );
        assert!(time::OffsetDateTime::parse(
            &a.inserted_at,
            &time::format_description::well_known::Rfc3339
        )
        .is_ok());
    }
}
