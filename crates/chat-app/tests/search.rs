//! Message search (docs/chat.md, `search`): the stores' matching (memory: substrings,
//! PostgreSQL: word prefixes through the full-text index of migration 0004), and the room
//! channel's event: bounded results, readable refusals, a rate per author shared across
//! rooms, and only the joined room's messages (a private room refuses non-members at join).

use std::sync::Arc;
use std::time::Duration;

use chat_app::accounts::session::Sessions;
use chat_app::accounts::{names, AccountStore, MemoryAccounts};
use chat_app::connect::SessionConnect;
use chat_app::directory::RoomDirectory;
use chat_app::limit::{Rate, RateLimit};
use chat_app::room::RoomChannel;
use chat_app::search::{SEARCH_BURST, SEARCH_REFILL};
use chat_app::store::{
    Change, MemoryStore, NewMessage, PostgresStore, SearchQuery, Store, SEARCH_SCAN_BYTES,
    SEARCH_SCAN_MAX,
};
use phx_server::testing::TestSocket;
use phx_server::{Endpoint, SocketConfig};
use serde_json::{json, Value};

mod support;
use support::TestDb;

const SECRET: &[u8] = b"a test secret_key_base that is at least 64 bytes long, for tokens!";

fn q(text: &str) -> SearchQuery {
    SearchQuery::new(text).unwrap()
}

async fn bodies(store: &dyn Store, room: &str, text: &str, before: i64, limit: u32) -> Vec<String> {
    store
        .search(room, &q(text), before, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect()
}

/// The same answers from both stores: every term required, any case, newest first,
/// replies included, deleted and other rooms' messages left out, paged by `before_id`.
async fn searches_alike(store: &dyn Store) {
    store.ensure_room("lobby").await.unwrap();
    store.ensure_room("other").await.unwrap();
    let first = store
        .insert("lobby", "ann", "Deploy to production on Friday")
        .await
        .unwrap();
    store
        .insert("lobby", "bob", "the deploy script is flaky")
        .await
        .unwrap();
    let reply = NewMessage {
        parent_id: Some(first.id),
        ..NewMessage::plain("lobby", "cy", "Friday deploy: confirmed")
    };
    store.insert_message(reply, None).await.unwrap();
    let gone = store
        .insert("lobby", "ann", "deploy secret to be deleted")
        .await
        .unwrap();
    store
        .change("lobby", gone.id, "ann", Change::Delete)
        .await
        .unwrap()
        .unwrap();
    store
        .insert("other", "dan", "deploy elsewhere on friday")
        .await
        .unwrap();

    assert_eq!(
        bodies(store, "lobby", "DEPLOY friday", i64::MAX, 10).await,
        ["Friday deploy: confirmed", "Deploy to production on Friday"]
    );
    assert_eq!(
        bodies(store, "lobby", "deploy", i64::MAX, 10).await,
        [
            "Friday deploy: confirmed",
            "the deploy script is flaky",
            "Deploy to production on Friday"
        ]
    );
    // Prefixes match in both stores; "secret" is only in the deleted message.
    assert_eq!(
        bodies(store, "lobby", "produ", i64::MAX, 10).await,
        ["Deploy to production on Friday"]
    );
    assert!(bodies(store, "lobby", "secret", i64::MAX, 10)
        .await
        .is_empty());
    assert!(bodies(store, "lobby", "elsewhere", i64::MAX, 10)
        .await
        .is_empty());
    assert!(bodies(store, "nowhere", "deploy", i64::MAX, 10)
        .await
        .is_empty());
    // A page, then the next one from the last id.
    let page = store
        .search("lobby", &q("deploy"), i64::MAX, 2)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let next = bodies(store, "lobby", "deploy", page[1].id, 2).await;
    assert_eq!(next, ["Deploy to production on Friday"]);
}

#[tokio::test]
async fn the_memory_store_searches_substrings_in_a_bounded_scan() {
    let store = MemoryStore::new();
    searches_alike(&store).await;
    // Only the latest SEARCH_SCAN_MAX messages are read: an old match past them is not found.
    store.ensure_room("big").await.unwrap();
    store.insert("big", "ann", "needle").await.unwrap();
    for i in 0..SEARCH_SCAN_MAX {
        store
            .insert("big", "ann", &format!("hay {i}"))
            .await
            .unwrap();
    }
    assert!(bodies(&store, "big", "needle", i64::MAX, 10)
        .await
        .is_empty());
    store.insert("big", "ann", "needle again").await.unwrap();
    assert_eq!(
        bodies(&store, "big", "needle", i64::MAX, 10).await,
        ["needle again"]
    );
    // Long bodies end the scan sooner: SEARCH_SCAN_BYTES of text at most.
    store.ensure_room("long").await.unwrap();
    store.insert("long", "ann", "needle first").await.unwrap();
    let long = "y".repeat(4000);
    for _ in 0..SEARCH_SCAN_BYTES / 4000 + 1 {
        store.insert("long", "ann", &long).await.unwrap();
    }
    assert!(bodies(&store, "long", "needle", i64::MAX, 10)
        .await
        .is_empty());
}

#[tokio::test]
async fn postgres_searches_word_prefixes_through_its_index() {
    let db = TestDb::new().await;
    let store = PostgresStore::connect(&db.url(), 2).await.unwrap();
    searches_alike(&store).await;
    // The query's expression is the index's: with sequential scans off, a match on it
    // alone is planned through the index. (On a room's few rows the planner may rather
    // walk messages_room_id_desc; on a big room the GIN index is what keeps it fast.)
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    let plan: Vec<String> = client
        .query(
            "EXPLAIN SELECT id FROM messages \
             WHERE to_tsvector('simple', body) @@ to_tsquery('simple', $1)",
            &[&q("deploy friday").tsquery()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        plan.iter()
            .any(|line| line.contains("messages_body_search")),
        "{plan:#?}"
    );
}

struct App {
    endpoint: Endpoint,
    accounts: Arc<dyn AccountStore>,
    sessions: Sessions,
}

fn app() -> App {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let accounts: Arc<dyn AccountStore> = Arc::new(MemoryAccounts::new());
    let sessions = Sessions::new(SECRET, accounts.clone());
    let rooms = Arc::new(RoomDirectory::new(
        store.clone(),
        Rate::new(100, Duration::from_secs(1)),
    ));
    let typing = Arc::new(RateLimit::new(Rate::one_per(Duration::from_secs(1))));
    let searches = Arc::new(RateLimit::new(chat_app::search::default_rate()));
    let user_channel = chat_app::accounts::wiring::user_channel(&accounts, &store, &rooms);
    let room_accounts = accounts.clone();
    let socket = SocketConfig::new(SessionConnect::new(sessions.clone()))
        .channel("room:*", move || {
            RoomChannel::new(store.clone(), rooms.clone(), typing.clone())
                .with_accounts(room_accounts.clone())
                .with_search_limit(searches.clone())
        })
        .channel("user:*", user_channel);
    let endpoint = Endpoint::builder()
        .socket("/socket", socket)
        .secret_key_base(SECRET.to_vec())
        .build();
    App {
        endpoint,
        accounts,
        sessions,
    }
}

async fn signed_in(app: &App, name: &str) -> (TestSocket, i64) {
    let user = app
        .accounts
        .create_user(name, &names::fold(name), "$argon2id$not-used")
        .await
        .unwrap()
        .unwrap();
    let token = app.sessions.create(&user).await.unwrap();
    let socket = TestSocket::connect(&app.endpoint, "/socket", json!({ "token": token }))
        .await
        .unwrap();
    (socket, user.id)
}

fn found(reply: &Value) -> Vec<&str> {
    reply["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_search_event_answers_the_joined_room_only_bounded_and_rate_limited() {
    let app = app();
    let (mut ann, ann_id) = signed_in(&app, "ann").await;
    let (mut bob, _) = signed_in(&app, "bob").await;
    let ann_topic = format!("user:{ann_id}");
    ann.join(&ann_topic, json!({})).await.unwrap();
    let created = ann
        .push(&ann_topic, "create_private", json!({"room": "secret"}))
        .await;
    assert_eq!(created.status, "ok", "{created:?}");
    ann.join("room:secret", json!({})).await.unwrap();
    ann.push(
        "room:secret",
        "new_msg",
        json!({"body": "the needle is here"}),
    )
    .await;
    ann.join("room:lobby", json!({})).await.unwrap();
    for body in ["a needle in the lobby", "hay", "NEEDLES everywhere"] {
        let sent = ann
            .push("room:lobby", "new_msg", json!({"body": body}))
            .await;
        assert_eq!(sent.status, "ok");
    }

    // bob reads the lobby: its matches, newest first; the private room's stay out.
    bob.join("room:lobby", json!({})).await.unwrap();
    let reply = bob
        .push("room:lobby", "search", json!({"query": "needle"}))
        .await;
    assert_eq!(reply.status, "ok", "{reply:?}");
    assert_eq!(
        found(&reply.response),
        ["NEEDLES everywhere", "a needle in the lobby"]
    );
    let one = bob
        .push(
            "room:lobby",
            "search",
            json!({"query": "needle", "limit": 1}),
        )
        .await;
    assert_eq!(found(&one.response), ["NEEDLES everywhere"]);
    // Not a member: no channel to search through.
    assert!(bob.join("room:secret", json!({})).await.is_err());

    // A bad query is refused with its reason, and costs nothing of the rate.
    let bad = bob
        .push("room:lobby", "search", json!({"query": "x"}))
        .await;
    assert_eq!(
        (bad.status.as_str(), bad.response["reason"].as_str()),
        ("error", Some("query must be 2 to 100 characters"))
    );

    // The rate is per author across rooms: bob has spent 2; the burst runs out in
    // another room too, and the refusal says when to retry.
    bob.join("room:other", json!({})).await.unwrap();
    for _ in 2..SEARCH_BURST {
        let ok = bob
            .push("room:other", "search", json!({"query": "needle"}))
            .await;
        assert_eq!(ok.status, "ok");
    }
    let refused = bob
        .push("room:lobby", "search", json!({"query": "needle"}))
        .await;
    assert_eq!(refused.status, "error");
    assert_eq!(
        refused.response["reason"],
        format!(
            "too many searches: try again in {} seconds",
            SEARCH_REFILL.as_secs()
        )
    );
    // Another author is not affected.
    let other = ann
        .push("room:secret", "search", json!({"query": "needle"}))
        .await;
    assert_eq!(found(&other.response), ["the needle is here"]);

    // Guests are counted by client address: a new guest key is no new budget.
    let mut statuses = Vec::new();
    for key in 0..=SEARCH_BURST {
        let params = json!({ "guest_key": format!("{key:0>40}") });
        let mut g = TestSocket::connect(&app.endpoint, "/socket", params)
            .await
            .unwrap();
        g.join("room:lobby", json!({"username": format!("guest{key}")}))
            .await
            .unwrap();
        let reply = g
            .push("room:lobby", "search", json!({"query": "needle"}))
            .await;
        statuses.push(reply.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| *s == "ok").count(),
        SEARCH_BURST as usize
    );
    assert_eq!(statuses.last().map(String::as_str), Some("error"));
}
