//! The PostgreSQL store against the real server on 127.0.0.1:5432. Each test creates its
//! own database and drops it afterwards, so runs never collide.

use std::time::{Duration, Instant};

use chat_app::store::{migrate, PostgresStore, Store, StoreError, MIGRATIONS};
use tokio_postgres::NoTls;

mod support;
use support::{admin, TestDb};

#[tokio::test]
async fn messages_round_trip_in_order_with_limits() {
    let db = TestDb::new().await;
    let store = PostgresStore::connect(&db.url(), 4).await.unwrap();
    assert!(!store.room_exists("lobby").await.unwrap());
    assert!(store.ensure_room("lobby").await.unwrap(), "created");
    assert!(
        !store.ensure_room("lobby").await.unwrap(),
        "idempotent, not created again"
    );
    assert!(store.room_exists("lobby").await.unwrap());
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(
            store
                .insert("lobby", "alice", &format!("m{i}"))
                .await
                .unwrap()
                .id,
        );
    }
    store.ensure_room("other").await.unwrap();
    store.insert("other", "bob", "elsewhere").await.unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");

    let recent = store.recent("lobby", 50).await.unwrap();
    assert_eq!(recent.len(), 50);
    assert_eq!(recent.first().unwrap().body, "m10");
    assert_eq!(recent.last().unwrap().body, "m59");
    assert!(recent
        .iter()
        .all(|m| m.room == "lobby" && m.username == "alice"));
    assert!(recent[0].inserted_at.ends_with('Z'));

    let page = store.history("lobby", recent[0].id, 5).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["m5", "m6", "m7", "m8", "m9"]
    );
    assert_eq!(store.history("lobby", ids[0], 10).await.unwrap(), vec![]);
}

#[tokio::test]
async fn messages_need_an_existing_room() {
    let db = TestDb::new().await;
    let store = PostgresStore::connect(&db.url(), 2).await.unwrap();
    assert!(matches!(
        store.insert("ghost", "u", "x").await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn concurrent_start_up_applies_each_migration_once() {
    let db = TestDb::new().await;
    let connect = || async {
        let (mut client, conn) = tokio_postgres::connect(&db.url(), NoTls).await.unwrap();
        tokio::spawn(conn);
        migrate(&mut client).await.unwrap()
    };
    let (a, b) = tokio::join!(connect(), connect());
    assert_eq!(
        a.len() + b.len(),
        MIGRATIONS.len(),
        "applied exactly once between the two"
    );
    let (client, conn) = tokio_postgres::connect(&db.url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    let rows = client
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), MIGRATIONS.len());
    // A later start applies nothing.
    assert!(connect().await.is_empty());
}

#[tokio::test]
async fn a_dead_database_fails_fast_with_unavailable() {
    let store = PostgresStore::connect_lazy("postgres://postgres@127.0.0.1:1/none", 2).unwrap();
    let started = Instant::now();
    let result = store.insert("lobby", "u", "x").await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_outage_gives_unavailable_and_the_pool_recovers_without_restart() {
    let db = TestDb::new().await;
    let store = PostgresStore::connect(&db.url(), 2).await.unwrap();
    store.ensure_room("lobby").await.unwrap();
    store.insert("lobby", "u", "before").await.unwrap();

    let admin = admin().await;
    let cut = format!(
        "ALTER DATABASE {0} WITH ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}' AND pid <> pg_backend_pid();",
        db.name
    );
    admin.batch_execute(&cut).await.unwrap();
    let during = store.insert("lobby", "u", "during").await;
    assert!(
        matches!(during, Err(StoreError::Unavailable(_))),
        "{during:?}"
    );

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            db.name
        ))
        .await
        .unwrap();
    let after = store.insert("lobby", "u", "after").await.unwrap();
    let bodies: Vec<String> = store
        .recent("lobby", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["before", "after"], "nothing phantom, nothing lost");
    assert!(after.id > 0);
}
