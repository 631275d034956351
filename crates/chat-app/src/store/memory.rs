//! History in memory: the embedded default, lost on restart (its ids are not: they start
//! from the clock, see [`MemoryStore`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::{
    rfc3339, Announce, Change, Inserted, NewMessage, Reactor, Refusal, SearchQuery, Store,
    StoreError, StoredMessage,
};

/// How many of a room's latest messages the memory store remembers `client_id`s for
/// (docs/chat.md: PostgreSQL remembers them for good). A retry comes within seconds of
/// its first attempt; the window bounds the table in a room that lives for months.
pub const CLIENT_ID_WINDOW: usize = 10_000;

/// How many of a room's latest messages (before `before_id`) one search reads at most in
/// memory: a scan lowercases every body under the store's lock, so it is bounded like
/// a query plan would be (SECURITY.md: about 4 ms for 20 000 short messages).
/// PostgreSQL searches the whole room through its index.
pub const SEARCH_SCAN_MAX: usize = 20_000;
/// How many bytes of bodies one search reads at most in memory (≈ 4–5 ms of scanning
/// at about 1 GB/s), whatever the number of messages: long bodies end a scan sooner.
pub const SEARCH_SCAN_BYTES: usize = 4 << 20;

/// Rooms and messages in a map; ids increase across rooms like a sequence, and change
/// sequence numbers (docs/chat.md, "Changes while away") come from the same counter.
///
/// Ids start from the current Unix time in microseconds (`next = max(last + 1, now)`), so
/// a restarted process never hands out an id it handed out before: a page that kept
/// `after_id` from before the restart, or matched messages by id, is not confused by a
/// new message with an old id. Microseconds since 1970 are about 2^50.6 today, within
/// JavaScript's exact integers (2^53) for another two centuries; a room would need a
/// million messages per second to run ahead of the clock, and then it just continues
/// from `last + 1`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last id or change sequence number handed out.
    last_id: i64,
    rooms: HashMap<String, Room>,
}

/// The next id or change sequence number after `last`: from the clock, see [`MemoryStore`].
fn next_id(last: &mut i64) -> i64 {
    *last = (*last + 1).max(now_micros());
    *last
}

#[derive(Debug, Default)]
struct Room {
    /// Every message, replies included, in id order.
    messages: Vec<StoredMessage>,
    /// (author, client_id) → id, for the latest [`CLIENT_ID_WINDOW`] messages.
    client_ids: HashMap<(String, String), i64>,
    /// The keys of `client_ids` in id order, for eviction.
    client_id_order: VecDeque<(i64, (String, String))>,
    /// The room's change sequence: its highest id or change sequence number.
    seq: i64,
    /// Change sequence number → message, for the messages changed since stored (a
    /// message's latest change only).
    changes: BTreeMap<i64, i64>,
}

impl Room {
    fn position(&self, id: i64) -> Option<usize> {
        self.messages.binary_search_by_key(&id, |m| m.id).ok()
    }

    fn find_mut(&mut self, id: i64) -> Option<&mut StoredMessage> {
        let at = self.position(id)?;
        self.messages.get_mut(at)
    }

    /// Gives message `id` (found) the change sequence number `seq`.
    fn changed(&mut self, id: i64, seq: i64) {
        if let Some(message) = self.find_mut(id) {
            let old = std::mem::replace(&mut message.seq, seq);
            if old != id {
                self.changes.remove(&old);
            }
            self.changes.insert(seq, id);
            self.seq = self.seq.max(seq);
        }
    }

    /// Forgets the client ids of messages older than the room's latest
    /// [`CLIENT_ID_WINDOW`].
    fn evict_client_ids(&mut self) {
        let Some(oldest_kept) = self
            .messages
            .len()
            .checked_sub(CLIENT_ID_WINDOW)
            .map(|at| self.messages[at].id)
        else {
            return;
        };
        while let Some((id, _)) = self.client_id_order.front() {
            if *id >= oldest_kept {
                break;
            }
            if let Some((_, key)) = self.client_id_order.pop_front() {
                self.client_ids.remove(&key);
            }
        }
    }
}

/// The current Unix time in microseconds.
fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
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
            s.rooms.insert(room.to_owned(), Room::default());
            true
        })
    }

    async fn insert_message(
        &self,
        new: NewMessage,
        announce: Option<Announce>,
    ) -> Result<Inserted, StoreError> {
        // Announced under the lock: the next message (the next id) waits, so a room's
        // broadcasts leave in id order.
        self.with(|s| {
            let inserted = s.append(new);
            if let (false, Some(announce)) = (inserted.duplicate, announce) {
                announce(&inserted.message);
            }
            inserted
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
            let Some(room) = s.rooms.get(room) else {
                return Vec::new();
            };
            // Messages are appended in id order, so the ones before `before_id` are a prefix.
            let end = room.messages.partition_point(|m| m.id < before_id);
            let mut page: Vec<StoredMessage> = room.messages[..end]
                .iter()
                .rev()
                .filter(|m| m.parent_id.is_none())
                .take(limit as usize)
                .cloned()
                .collect();
            page.reverse();
            page
        })
    }

    async fn after(
        &self,
        room: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.with(|s| {
            let Some(room) = s.rooms.get(room) else {
                return Vec::new();
            };
            let start = room.messages.partition_point(|m| m.id <= after_id);
            room.messages[start..]
                .iter()
                .take(limit as usize)
                .cloned()
                .collect()
        })
    }

    async fn message(&self, room: &str, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        self.with(|s| {
            let room = s.rooms.get(room)?;
            room.messages.get(room.position(id)?).cloned()
        })
    }

    async fn replies(
        &self,
        room: &str,
        parent_id: i64,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.with(|s| {
            let Some(room) = s.rooms.get(room) else {
                return Vec::new();
            };
            let start = room.messages.partition_point(|m| m.id <= parent_id);
            let end = room.messages.partition_point(|m| m.id < before_id);
            let mut page: Vec<StoredMessage> = room.messages[start..end.max(start)]
                .iter()
                .rev()
                .filter(|m| m.parent_id == Some(parent_id))
                .take(limit as usize)
                .cloned()
                .collect();
            page.reverse();
            page
        })
    }

    async fn search(
        &self,
        room: &str,
        query: &SearchQuery,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.with(|s| {
            let Some(room) = s.rooms.get(room) else {
                return Vec::new();
            };
            let end = room.messages.partition_point(|m| m.id < before_id);
            let mut budget = SEARCH_SCAN_BYTES;
            room.messages[..end]
                .iter()
                .rev()
                .take(SEARCH_SCAN_MAX)
                .take_while(|m| {
                    let within = budget > 0;
                    budget = budget.saturating_sub(m.body.len());
                    within
                })
                .filter(|m| !m.deleted && query.matches(&m.body))
                .take(limit as usize)
                .cloned()
                .collect()
        })
    }

    async fn apply_change(
        &self,
        room: &str,
        id: i64,
        author: &str,
        change: Change,
        announce: Option<Announce>,
    ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
        // Changed and announced under the lock, like a new message: a room's changes take
        // their sequence numbers, and are broadcast, in one order.
        self.with(|s| {
            let room = s.rooms.get_mut(room).ok_or(Refusal::NotFound)?;
            let message = room.find_mut(id).ok_or(Refusal::NotFound)?;
            if message.author != author {
                return Err(Refusal::Forbidden);
            }
            if message.deleted {
                return Err(Refusal::Deleted);
            }
            match change {
                Change::Edit { body, mentions } => {
                    message.body = body;
                    message.mentions = mentions;
                    message.edited_at = Some(rfc3339(time::OffsetDateTime::now_utc()));
                }
                Change::Delete => {
                    message.body.clear();
                    message.attachments.clear();
                    message.mentions.clear();
                    message.deleted = true;
                }
            }
            room.changed(id, next_id(&mut s.last_id));
            let changed = room.find_mut(id).ok_or(Refusal::NotFound)?.clone();
            if let Some(announce) = announce {
                announce(&changed);
            }
            Ok(changed)
        })
    }

    async fn toggle_reaction(
        &self,
        room: &str,
        id: i64,
        reactor: Reactor,
        emoji: &str,
        announce: Option<Announce>,
    ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
        self.with(|s| {
            let room = s.rooms.get_mut(room).ok_or(Refusal::NotFound)?;
            let message = room.find_mut(id).ok_or(Refusal::NotFound)?;
            if message.deleted {
                return Err(Refusal::Deleted);
            }
            message.reactions.toggle(emoji, reactor)?;
            room.changed(id, next_id(&mut s.last_id));
            let changed = room.find_mut(id).ok_or(Refusal::NotFound)?.clone();
            if let Some(announce) = announce {
                announce(&changed);
            }
            Ok(changed)
        })
    }

    async fn seq(&self, room: &str) -> Result<i64, StoreError> {
        self.with(|s| s.rooms.get(room).map_or(0, |r| r.seq))
    }

    async fn changed(
        &self,
        room: &str,
        after_seq: i64,
        max_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.with(|s| {
            let Some(room) = s.rooms.get(room) else {
                return Vec::new();
            };
            room.changes
                .range(after_seq.saturating_add(1)..)
                .filter(|(_, id)| **id <= max_id)
                .filter_map(|(_, id)| room.position(*id).map(|at| room.messages[at].clone()))
                .take(limit as usize)
                .collect()
        })
    }

    fn describe(&self) -> &'static str {
        "memory"
    }
}

impl State {
    fn append(&mut self, new: NewMessage) -> Inserted {
        let room = self.rooms.entry(new.room.clone()).or_default();
        let key = new.client_id.clone().map(|c| (new.author.clone(), c));
        if let Some(first) = key.as_ref().and_then(|k| room.client_ids.get(k)) {
            if let Some(message) = room.position(*first).map(|at| room.messages[at].clone()) {
                return Inserted {
                    message,
                    duplicate: true,
                };
            }
        }
        let id = next_id(&mut self.last_id);
        let message = StoredMessage::stored(id, rfc3339(time::OffsetDateTime::now_utc()), &new);
        room.seq = room.seq.max(id);
        if let Some(parent) = new.parent_id.and_then(|p| room.find_mut(p)) {
            parent.reply_count += 1;
            // A new reply changes its parent: the reply's id is the parent's new seq.
            let parent = parent.id;
            room.changed(parent, id);
        }
        room.messages.push(message.clone());
        if let Some(key) = key {
            room.client_ids.insert(key.clone(), message.id);
            room.client_id_order.push_back((message.id, key));
        }
        room.evict_client_ids();
        Inserted {
            message,
            duplicate: false,
        }
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

    #[tokio::test]
    async fn ids_start_from_the_clock_so_a_restarted_store_never_reuses_one() {
        let before = now_micros();
        let first = MemoryStore::new();
        let a = first.insert("r", "u", "1").await.unwrap();
        assert!(a.id >= before, "from the clock: {} < {before}", a.id);
        assert!(a.id < 1 << 53, "exact in JavaScript");
        drop(first);
        // A "restarted" process: a new store, immediately.
        let second = MemoryStore::new();
        let b = second.insert("r", "u", "2").await.unwrap();
        assert!(b.id > a.id, "{} after {}", b.id, a.id);
        // Faster than the clock: still increasing, one by one.
        let ids: Vec<i64> = {
            let mut ids = Vec::new();
            for i in 0..1000 {
                ids.push(second.insert("r", "u", &i.to_string()).await.unwrap().id);
            }
            ids
        };
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[tokio::test]
    async fn client_ids_are_remembered_for_the_rooms_latest_messages_only() {
        let store = MemoryStore::new();
        let keyed = |key: &str| NewMessage {
            client_id: Some(key.into()),
            ..NewMessage::plain("r", "u", "keyed")
        };
        let first = store.insert_message(keyed("old"), None).await.unwrap();
        assert!(!first.duplicate);
        for i in 0..CLIENT_ID_WINDOW - 1 {
            store
                .insert_message(keyed(&format!("k{i}")), None)
                .await
                .unwrap();
        }
        // Still within the latest CLIENT_ID_WINDOW messages.
        let again = store.insert_message(keyed("old"), None).await.unwrap();
        assert!(again.duplicate && again.message.id == first.message.id);
        store.insert("r", "u", "one more").await.unwrap();
        // Now out of the window: forgotten, so stored anew, and the table is bounded.
        let late = store.insert_message(keyed("old"), None).await.unwrap();
        assert!(!late.duplicate && late.message.id > first.message.id);
        let remembered = store
            .with(|s| s.rooms.get("r").map(|r| r.client_ids.len()))
            .unwrap()
            .unwrap();
        assert!(remembered <= CLIENT_ID_WINDOW, "{remembered}");
    }
}
