//! Group commit against the real PostgreSQL on 127.0.0.1:5432 (a database per test,
//! dropped afterwards): batches keep submission order, a room's announcements follow id
//! order, every acknowledged message is in the table, an outage acknowledges nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chat_app::store::{Announce, PostgresStore, Store, StoreError, StoredMessage, WriterConfig};
use tokio_postgres::NoTls;

mod support;
use support::{admin, TestDb};

async fn table(db: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

fn writers(writers: usize) -> WriterConfig {
    WriterConfig {
        writers,
        ..WriterConfig::default()
    }
}

/// Current-thread runtime: spawned tasks first run in spawn order, so each queues its
/// message (the first thing an insert does) in that order.
#[tokio::test]
async fn concurrent_inserts_are_batched_with_ids_in_submission_order() {
    let db = TestDb::new().await;
    let store = Arc::new(
        PostgresStore::connect_with(&db.url(), 2, writers(1))
            .await
            .unwrap(),
    );
    store.ensure_room("lobby").await.unwrap();
    let calls: Vec<_> = (0..300)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.insert("lobby", "ann", &format!("m{i}")).await })
        })
        .collect();
    let mut ids = Vec::new();
    for (i, call) in calls.into_iter().enumerate() {
        let stored = call.await.unwrap().unwrap();
        assert_eq!(stored.body, format!("m{i}"), "each sender gets its own row");
        ids.push(stored.id);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids follow submission order: {ids:?}"
    );
    let client = table(&db).await;
    let rows = client
        .query("SELECT id, body FROM messages ORDER BY id", &[])
        .await
        .unwrap();
    let in_table: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(i64, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, format!("m{i}")))
        .collect();
    assert_eq!(in_table, expected, "the table holds them in the same order");
    // A batch is one transaction, so its rows share `now()`: fewer distinct timestamps
    // than rows means messages were batched.
    let stamps: i64 = client
        .query_one("SELECT count(DISTINCT inserted_at) FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    assert!(stamps < 300, "{stamps} transactions for 300 messages");
    let history = store.recent("lobby", 3).await.unwrap();
    assert_eq!(
        history.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["m297", "m298", "m299"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_senders_see_their_room_announced_in_id_order_and_every_ack_is_stored() {
    let db = TestDb::new().await;
    let store = Arc::new(
        PostgresStore::connect_with(&db.url(), 4, writers(3))
            .await
            .unwrap(),
    );
    const ROOMS: usize = 7;
    for r in 0..ROOMS {
        store.ensure_room(&format!("r{r}")).await.unwrap();
    }
    let announced: Arc<Mutex<HashMap<String, Vec<i64>>>> = Arc::default();
    let senders: Vec<_> = (0..60)
        .map(|s| {
            let (store, announced) = (store.clone(), announced.clone());
            tokio::spawn(async move {
                let room = format!("r{}", s % ROOMS);
                let mut acked = Vec::new();
                for i in 0..30 {
                    let announced = announced.clone();
                    let announce: Announce = Box::new(move |m: &StoredMessage| {
                        let mut seen = announced.lock().unwrap();
                        seen.entry(m.room.clone()).or_default().push(m.id);
                    });
                    let stored = store
                        .insert_announced(&room, &format!("u{s}"), &format!("{s}/{i}"), announce)
                        .await
                        .unwrap();
                    acked.push(stored.id);
                }
                acked
            })
        })
        .collect();
    let mut acked = BTreeSet::new();
    for sender in senders {
        let ids = sender.await.unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "one sender's ids increase"
        );
        acked.extend(ids);
    }
    assert_eq!(acked.len(), 60 * 30);
    let announced = announced.lock().unwrap().clone();
    for (room, ids) in announced.iter() {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{room} announced out of id order: {ids:?}"
        );
    }
    assert_eq!(announced.values().map(Vec::len).sum::<usize>(), 60 * 30);
    let rows = table(&db)
        .await
        .query("SELECT id FROM messages", &[])
        .await
        .unwrap();
    let stored: BTreeSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        stored, acked,
        "every acknowledged message is in the table, and only those"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_every_waiting_sender_and_acknowledges_nothing() {
    let db = TestDb::new().await;
    let store = Arc::new(
        PostgresStore::connect_with(&db.url(), 2, writers(2))
            .await
            .unwrap(),
    );
    store.ensure_room("lobby").await.unwrap();
    store.insert("lobby", "u", "before").await.unwrap();

    let admin = admin().await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {0} WITH ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = '{0}' AND pid <> pg_backend_pid();",
            db.name
        ))
        .await
        .unwrap();
    let announced = Arc::new(Mutex::new(0));
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let (store, announced) = (store.clone(), announced.clone());
            tokio::spawn(async move {
                let announce: Announce = Box::new(move |_| *announced.lock().unwrap() += 1);
                store
                    .insert_announced("lobby", "u", &format!("during{i}"), announce)
                    .await
            })
        })
        .collect();
    for call in calls {
        let result = call.await.unwrap();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
    assert_eq!(*announced.lock().unwrap(), 0, "nothing announced");

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            db.name
        ))
        .await
        .unwrap();
    store.insert("lobby", "u", "after").await.unwrap();
    let bodies: Vec<String> = store
        .recent("lobby", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["before", "after"], "nothing phantom, nothing lost");
}

#[tokio::test]
async fn a_refused_row_fails_alone_and_its_batch_neighbours_are_stored() {
    let db = TestDb::new().await;
    let store = Arc::new(
        PostgresStore::connect_with(&db.url(), 2, writers(1))
            .await
            .unwrap(),
    );
    store.ensure_room("lobby").await.unwrap();
    // "ghost" does not exist: its row breaks the foreign key, refusing the batch.
    let calls: Vec<_> = ["lobby", "ghost", "lobby"]
        .into_iter()
        .enumerate()
        .map(|(i, room)| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(room, "u", &format!("m{i}")).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(StoreError::Unavailable(_))));
    let bodies: Vec<String> = store
        .recent("lobby", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["m0", "m2"]);
}
