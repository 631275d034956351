//! The room channel in process, through `phx_server::testing` (no network): joins,
//! messages stored before they are broadcast, history, typing, presence.

use std::sync::Arc;
use std::time::Duration;

use chat_app::connect::ChatConnect;
use chat_app::directory::RoomDirectory;
use chat_app::limit::{Rate, RateLimit};
use chat_app::room::RoomChannel;
use chat_app::store::{MemoryStore, Store};
use phx_server::testing::{BroadcastProbe, TestSocket};
use phx_server::{Endpoint, SocketConfig};
use serde_json::json;

fn endpoint() -> Endpoint {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rooms = Arc::new(RoomDirectory::new(
        store.clone(),
        Rate::new(100, Duration::from_secs(1)),
    ));
    let typing = Arc::new(RateLimit::new(Rate::one_per(Duration::from_secs(1))));
    let socket = SocketConfig::new(ChatConnect).channel("room:*", move || {
        RoomChannel::new(store.clone(), rooms.clone(), typing.clone())
    });
    Endpoint::builder().socket("/socket", socket).build()
}

async fn socket(endpoint: &Endpoint) -> TestSocket {
    TestSocket::connect(endpoint, "/socket", json!({}))
        .await
        .expect("the chat socket accepts everyone")
}

#[tokio::test]
async fn a_join_without_a_username_is_refused_with_a_reason() {
    let endpoint = endpoint();
    let mut ann = socket(&endpoint).await;
    assert_eq!(
        ann.join("room:lobby", json!({})).await,
        Err(json!({"reason": "username is required"}))
    );
    assert_eq!(
        ann.join("room:a b", json!({"username": "ann"})).await,
        Err(json!({"reason": "room name may only contain letters, digits, '_', '-' and '.'"}))
    );
}

#[tokio::test]
async fn a_message_is_stored_acknowledged_and_broadcast_then_in_history() {
    let endpoint = endpoint();
    let mut probe = BroadcastProbe::subscribe(&endpoint, "room:lobby");
    let mut ann = socket(&endpoint).await;
    let mut bob = socket(&endpoint).await;
    let joined = ann
        .join("room:lobby", json!({"username": "ann"}))
        .await
        .unwrap();
    let author = joined["me"]["author"].clone();
    assert!(author.as_str().unwrap().starts_with("guest:"), "{joined}");
    assert_eq!(
        joined,
        json!({"messages": [], "gap": false, "changed": [], "refetch": false, "seq": 0,
               "me": {"author": author, "username": "ann", "guest": true}})
    );
    bob.join("room:lobby", json!({"username": "bob"}))
        .await
        .unwrap();

    let reply = ann
        .push("room:lobby", "new_msg", json!({"body": " hi "}))
        .await;
    assert_eq!(reply.status, "ok");
    let id = reply.response["id"].as_i64().expect("an id");

    let seen = bob.assert_push("room:lobby", "new_msg").await;
    assert_eq!(seen["id"], id);
    assert_eq!(seen["body"], "hi");
    assert_eq!(seen["username"], "ann");
    assert_eq!(probe.assert_broadcast("new_msg").await["id"], id);

    let history = bob
        .push("room:lobby", "history", json!({"before_id": id + 1}))
        .await;
    assert_eq!(history.response["messages"][0]["id"], id);

    // A newcomer gets it in the join reply.
    let mut cat = socket(&endpoint).await;
    let joined = cat
        .join("room:lobby", json!({"username": "cat"}))
        .await
        .unwrap();
    assert_eq!(joined["messages"][0]["body"], "hi");
}

#[tokio::test]
async fn typing_reaches_others_but_not_the_typist() {
    let endpoint = endpoint();
    let mut ann = socket(&endpoint).await;
    let mut bob = socket(&endpoint).await;
    ann.join("room:t", json!({"username": "ann"}))
        .await
        .unwrap();
    bob.join("room:t", json!({"username": "bob"}))
        .await
        .unwrap();
    ann.push_noreply("room:t", "typing", json!({}));
    let typing = bob.assert_push("room:t", "typing").await;
    assert_eq!(typing["username"], "ann");
    assert!(typing["author"].as_str().unwrap().starts_with("guest:"));
    ann.refute_push("room:t", "typing", Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn presence_lists_every_member_after_the_join_reply() {
    let endpoint = endpoint();
    let mut ann = socket(&endpoint).await;
    let mut bob = socket(&endpoint).await;
    ann.join("room:p", json!({"username": "ann"}))
        .await
        .unwrap();
    ann.assert_push("room:p", "presence_state").await;
    bob.join("room:p", json!({"username": "bob"}))
        .await
        .unwrap();
    let state = bob.assert_push("room:p", "presence_state").await;
    assert!(state.get("ann").is_some() && state.get("bob").is_some());
    // Diffs arrive in order: ann's own join, then bob's.
    next_diff_with(&mut ann, "joins", "bob").await;

    bob.close().await;
    next_diff_with(&mut ann, "leaves", "bob").await;
}

/// Waits for a `presence_diff` whose `joins` or `leaves` holds `key`.
async fn next_diff_with(socket: &mut TestSocket, side: &str, key: &str) {
    loop {
        let diff = socket.assert_push("room:p", "presence_diff").await;
        if diff[side].get(key).is_some() {
            return;
        }
    }
}
