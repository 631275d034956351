//! Which rooms exist, and who may add one: rooms are created on first join, within a
//! budget per client address, since every room is a permanent row.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::limit::{address_key, Rate, RateLimit};
use crate::store::{Store, StoreError};

/// Why a join could not open its room.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The room does not exist and this client address has created too many lately.
    #[error("too many new rooms, try again later")]
    TooManyNewRooms,
    /// The store failed or timed out.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The rooms of one server, shared by every room channel.
///
/// Joining an existing room is never limited. Creating one spends from the client
/// address's budget ([`address_key`]: IPv4 address or IPv6 /64). Concurrent first joins
/// of one room take turns, so the room is created, and paid for, once: a hundred people
/// behind one NAT opening the same new room at once are one creation, not a hundred.
pub struct RoomDirectory {
    store: Arc<dyn Store>,
    creations: RateLimit<IpAddr>,
    /// Rooms some join is creating now → whether it is known to exist. Entries live only
    /// while a join of that room is in flight.
    creating: Mutex<HashMap<String, Arc<tokio::sync::Mutex<bool>>>>,
}

impl std::fmt::Debug for RoomDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomDirectory")
            .field("store", &self.store.describe())
            .field("creations", &self.creations)
            .finish_non_exhaustive()
    }
}

impl RoomDirectory {
    /// Rooms in `store`; each client address may create `creation` rooms.
    pub fn new(store: Arc<dyn Store>, creation: Rate) -> Self {
        Self {
            store,
            creations: RateLimit::new(creation),
            creating: Mutex::new(HashMap::new()),
        }
    }

    /// The room-creation limit (per client address).
    pub fn creation_limit(&self) -> &RateLimit<IpAddr> {
        &self.creations
    }

    /// Makes sure `room` exists, creating it if `peer` may still create rooms at `now`.
    pub async fn open(&self, room: &str, peer: IpAddr, now: Instant) -> Result<(), OpenError> {
        // The common case, an existing room, touches no shared state.
        if self.store.room_exists(room).await? {
            return Ok(());
        }
        let turn = {
            let mut creating = self.creating.lock().unwrap_or_else(PoisonError::into_inner);
            creating.entry(room.to_owned()).or_default().clone()
        };
        let _leave = Leave {
            directory: self,
            room,
            turn: &turn,
        };
        let mut exists = turn.lock().await;
        if *exists {
            return Ok(()); // created by the join that had the turn before us
        }
        // Checked again under the turn: a join that finished just before we queued.
        if !self.store.room_exists(room).await? {
            self.create(room, peer, now).await?;
        }
        *exists = true;
        Ok(())
    }

    async fn create(&self, room: &str, peer: IpAddr, now: Instant) -> Result<(), OpenError> {
        let key = address_key(peer);
        if !self.creations.try_acquire(&key, now) {
            tracing::debug!(%peer, room, "join: room creation refused");
            return Err(OpenError::TooManyNewRooms);
        }
        match self.store.ensure_room(room).await {
            Ok(true) => Ok(()),
            // Created meanwhile elsewhere (another server instance): costs nothing.
            Ok(false) => {
                self.creations.refund(&key);
                Ok(())
            }
            // Refunded even if a timed-out creation did commit: rare, and only while
            // the database misbehaves.
            Err(error) => {
                self.creations.refund(&key);
                Err(error.into())
            }
        }
    }

    /// Rooms with a join in flight (for tests: the table empties when joins end).
    pub fn in_flight(&self) -> usize {
        self.creating
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Removes a room's turn once the last join waiting on it is done (or cancelled: the
/// socket may go away mid-join).
struct Leave<'a> {
    directory: &'a RoomDirectory,
    room: &'a str,
    turn: &'a Arc<tokio::sync::Mutex<bool>>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut creating = self
            .directory
            .creating
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Clones are only made under this lock: two holders (the table's and ours)
        // means nobody else waits on this turn.
        if Arc::strong_count(self.turn) <= 2 {
            creating.remove(self.room);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::store::{
        Announce, Change, Inserted, MemoryStore, NewMessage, Reactor, Refusal, StoredMessage,
    };

    const SEC: Duration = Duration::from_secs(1);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn directory(burst: u32) -> (RoomDirectory, Arc<dyn Store>) {
        // `Arc<dyn Store>` kept by the test to look at what was created.
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        (
            RoomDirectory::new(store.clone(), Rate::new(burst, 6 * SEC)),
            store,
        )
    }

    #[tokio::test]
    async fn a_burst_of_new_rooms_then_refusals_and_existing_rooms_stay_open() {
        let (rooms, store) = directory(10);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for i in 0..10 {
            rooms.open(&format!("r{i}"), a, t0).await.unwrap();
        }
        for i in 10..30 {
            let refused = rooms.open(&format!("r{i}"), a, t0).await;
            assert!(
                matches!(refused, Err(OpenError::TooManyNewRooms)),
                "{refused:?}"
            );
            assert!(
                !store.room_exists(&format!("r{i}")).await.unwrap(),
                "not created"
            );
        }
        // Existing rooms: never limited, however often.
        for _ in 0..100 {
            rooms.open("r3", a, t0).await.unwrap();
        }
        // Another address has its own budget; the first earns one back in 6 s.
        rooms
            .open("elsewhere", ip("198.51.100.1"), t0)
            .await
            .unwrap();
        assert!(rooms.open("r10", a, t0 + 5 * SEC).await.is_err());
        rooms.open("r10", a, t0 + 6 * SEC).await.unwrap();
        assert_eq!(
            OpenError::TooManyNewRooms.to_string(),
            "too many new rooms, try again later"
        );
    }

    #[tokio::test]
    async fn a_room_created_elsewhere_meanwhile_costs_nothing() {
        let store = MemoryStore::new();
        store.ensure_room("raced").await.unwrap();
        let rooms = RoomDirectory::new(Arc::new(store), Rate::new(1, 6 * SEC));
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        // `create` runs when the room looked absent; here it turns out to exist.
        rooms.create("raced", a, t0).await.unwrap();
        rooms.open("new", a, t0).await.unwrap();
        assert!(
            rooms.open("newer", a, t0).await.is_err(),
            "budget of 1 spent once"
        );
    }

    /// A store whose calls take a while, so concurrent joins overlap; optionally failing.
    struct Slow {
        inner: MemoryStore,
        fail: bool,
    }

    #[async_trait]
    impl Store for Slow {
        async fn room_exists(&self, room: &str) -> Result<bool, StoreError> {
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.inner.room_exists(room).await
        }
        async fn ensure_room(&self, room: &str) -> Result<bool, StoreError> {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if self.fail {
                return Err(StoreError::TimedOut(Duration::from_millis(10)));
            }
            self.inner.ensure_room(room).await
        }
        async fn insert_message(
            &self,
            n: NewMessage,
            a: Option<Announce>,
        ) -> Result<Inserted, StoreError> {
            self.inner.insert_message(n, a).await
        }
        async fn recent(&self, r: &str, l: u32) -> Result<Vec<StoredMessage>, StoreError> {
            self.inner.recent(r, l).await
        }
        async fn history(&self, r: &str, b: i64, l: u32) -> Result<Vec<StoredMessage>, StoreError> {
            self.inner.history(r, b, l).await
        }
        async fn after(&self, r: &str, a: i64, l: u32) -> Result<Vec<StoredMessage>, StoreError> {
            self.inner.after(r, a, l).await
        }
        async fn message(&self, r: &str, id: i64) -> Result<Option<StoredMessage>, StoreError> {
            self.inner.message(r, id).await
        }
        async fn replies(
            &self,
            r: &str,
            p: i64,
            b: i64,
            l: u32,
        ) -> Result<Vec<StoredMessage>, StoreError> {
            self.inner.replies(r, p, b, l).await
        }
        async fn apply_change(
            &self,
            r: &str,
            id: i64,
            a: &str,
            c: Change,
            n: Option<Announce>,
        ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
            self.inner.apply_change(r, id, a, c, n).await
        }
        async fn toggle_reaction(
            &self,
            r: &str,
            id: i64,
            who: Reactor,
            e: &str,
            n: Option<Announce>,
        ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
            self.inner.toggle_reaction(r, id, who, e, n).await
        }
        async fn seq(&self, r: &str) -> Result<i64, StoreError> {
            self.inner.seq(r).await
        }
        async fn changed(
            &self,
            r: &str,
            s: i64,
            m: i64,
            l: u32,
        ) -> Result<Vec<StoredMessage>, StoreError> {
            self.inner.changed(r, s, m, l).await
        }
        fn describe(&self) -> &'static str {
            "slow"
        }
    }

    fn slow(burst: u32, fail: bool) -> Arc<RoomDirectory> {
        let store = Arc::new(Slow {
            inner: MemoryStore::new(),
            fail,
        });
        Arc::new(RoomDirectory::new(store, Rate::new(burst, 6 * SEC)))
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_first_joins_of_one_room_create_it_once_and_pay_once() {
        let rooms = slow(2, false);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        let joins: Vec<_> = (0..100)
            .map(|_| {
                let rooms = rooms.clone();
                tokio::spawn(async move { rooms.open("party", a, t0).await })
            })
            .collect();
        for join in joins {
            join.await.unwrap().unwrap();
        }
        assert_eq!(rooms.in_flight(), 0, "turns are removed when joins end");
        // One token spent of two: one more room, then refused.
        rooms.open("second", a, t0).await.unwrap();
        assert!(matches!(
            rooms.open("third", a, t0).await,
            Err(OpenError::TooManyNewRooms)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_creation_is_refunded_and_the_next_join_tries_again() {
        let rooms = slow(1, true);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(matches!(
                rooms.open("down", a, t0).await,
                Err(OpenError::Store(StoreError::TimedOut(_)))
            ));
        }
        assert_eq!(rooms.in_flight(), 0);
        assert_eq!(rooms.creation_limit().len(), 1);
        // The budget of 1 is intact: the refusal reason is still the store, not the limit.
        assert!(rooms.creation_limit().try_acquire(&address_key(a), t0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_join_leaves_no_turn_behind() {
        let rooms = slow(5, false);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        let join = {
            let rooms = rooms.clone();
            tokio::spawn(async move { rooms.open("gone", a, t0).await })
        };
        // Let it pass the first check and take its turn, then drop it mid-creation.
        tokio::time::sleep(Duration::from_millis(15)).await;
        join.abort();
        let _ = join.await;
        assert_eq!(rooms.in_flight(), 0);
        rooms.open("gone", a, t0).await.unwrap();
    }
}
