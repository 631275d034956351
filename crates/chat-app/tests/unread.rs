//! The sidebar's unread counts and deletions: a deleted message is no longer unread, and
//! every member's `user:<id>` topic hears of the deletion (`deleted`), so a page lowers
//! the count of a room it is not showing (a DM deleted before it was read stayed unread).

use std::sync::Arc;
use std::time::Duration;

use chat_app::accounts::session::Sessions;
use chat_app::accounts::{names, AccountStore, MemoryAccounts};
use chat_app::connect::SessionConnect;
use chat_app::directory::RoomDirectory;
use chat_app::limit::{Rate, RateLimit};
use chat_app::room::RoomChannel;
use chat_app::store::{MemoryStore, Store};
use phx_server::testing::TestSocket;
use phx_server::{Endpoint, SocketConfig};
use serde_json::json;

const SECRET: &[u8] = b"a test secret_key_base that is at least 64 bytes long, for tokens!";

#[tokio::test]
async fn a_deleted_message_is_no_longer_unread_and_members_hear_of_it() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let accounts: Arc<dyn AccountStore> = Arc::new(MemoryAccounts::new());
    let sessions = Sessions::new(SECRET, accounts.clone());
    let rooms = Arc::new(RoomDirectory::new(
        store.clone(),
        Rate::new(100, Duration::from_secs(1)),
    ));
    let typing = Arc::new(RateLimit::new(Rate::one_per(Duration::from_secs(1))));
    let user_channel = chat_app::accounts::wiring::user_channel(&accounts, &store, &rooms);
    let room_accounts = accounts.clone();
    let socket = SocketConfig::new(SessionConnect::new(sessions.clone()))
        .channel("room:*", move || {
            RoomChannel::new(store.clone(), rooms.clone(), typing.clone())
                .with_accounts(room_accounts.clone())
        })
        .channel("user:*", user_channel);
    let endpoint = Endpoint::builder()
        .socket("/socket", socket)
        .secret_key_base(SECRET.to_vec())
        .build();
    let mut sockets = Vec::new();
    let mut ids = Vec::new();
    for name in ["ann", "bob"] {
        let user = accounts
            .create_user(name, &names::fold(name), "$argon2id$not-used")
            .await
            .unwrap()
            .unwrap();
        let token = sessions.create(&user).await.unwrap();
        let mut s = TestSocket::connect(&endpoint, "/socket", json!({ "token": token }))
            .await
            .unwrap();
        s.join(&format!("user:{}", user.id), json!({}))
            .await
            .unwrap();
        sockets.push(s);
        ids.push(user.id);
    }
    let (ann_topic, bob_topic) = (format!("user:{}", ids[0]), format!("user:{}", ids[1]));
    let mut bob = sockets.pop().unwrap();
    let mut ann = sockets.pop().unwrap();
    let dm = ann
        .push(&ann_topic, "open_dm", json!({"username": "bob"}))
        .await
        .response["room"]
        .as_str()
        .unwrap()
        .to_owned();
    let topic = format!("room:{dm}");
    ann.join(&topic, json!({})).await.unwrap();
    let mut sent = Vec::new();
    for body in ["oops, wrong person", "hello bob"] {
        let reply = ann.push(&topic, "new_msg", json!({"body": body})).await;
        sent.push(reply.response["id"].as_i64().unwrap());
    }
    let unread = |list: serde_json::Value| list["rooms"][0]["unread"].clone();
    let list = bob.push(&bob_topic, "rooms", json!({})).await.response;
    assert_eq!(unread(list), 2);

    let deleted = ann.push(&topic, "delete_msg", json!({"id": sent[0]})).await;
    assert_eq!(deleted.status, "ok");
    let note = bob.assert_push(&bob_topic, "deleted").await;
    assert_eq!(note["room"], dm.as_str());
    assert_eq!(note["id"], sent[0]);
    let list = bob.push(&bob_topic, "rooms", json!({})).await.response;
    assert_eq!(unread(list), 1, "the deleted message is not counted");
}
