//! Who wrote what, by id (docs/chat.md, "Identity", "Guest names"): every message,
//! reaction, `typing` and presence meta carries the author id and the guest mark; a guest
//! name is held by one guest at a time. Both stores, through the real channels.

#[path = "support/app.rs"]
mod app;
mod support;

use std::time::{Duration, Instant};

use app::{App, Backend};
use chat_app::connect::guest_id_of;
use serde_json::{json, Value};

fn key(c: char) -> String {
    c.to_string().repeat(40)
}

fn guest_author(c: char) -> String {
    format!("guest:{}", guest_id_of(&key(c)).unwrap())
}

async fn messages_say_who_wrote_them(backend: Backend) {
    let app = App::new(backend).await;
    let (ann_id, ann_token) = app.user("ann").await;
    let ann_author = format!("user:{ann_id}");
    let mut ann = app.signed_in(&ann_token).await;
    let joined = ann
        .join("room:lobby", json!({ "username": "mallory" }))
        .await
        .unwrap();
    assert_eq!(
        joined["me"],
        json!({ "author": ann_author, "username": "ann", "guest": false })
    );
    let mut zed = app.guest(Some(&key('z'))).await;
    let joined = zed
        .join("room:lobby", json!({ "username": " zed " }))
        .await
        .unwrap();
    assert_eq!(
        joined["me"],
        json!({ "author": guest_author('z'), "username": "zed", "guest": true })
    );

    let sent = ann
        .push("room:lobby", "new_msg", json!({ "body": "from ann" }))
        .await;
    let ann_msg = zed.assert_push("room:lobby", "new_msg").await;
    assert_eq!(ann_msg["id"], sent.response["id"]);
    assert_eq!(
        (&ann_msg["author"], &ann_msg["guest"], &ann_msg["username"]),
        (&json!(ann_author), &json!(false), &json!("ann"))
    );
    assert_eq!(
        ann_msg["seq"], ann_msg["id"],
        "a new message's seq is its id"
    );
    zed.push("room:lobby", "new_msg", json!({ "body": "from zed" }))
        .await;
    ann.assert_push("room:lobby", "new_msg").await; // ann's own
    let zed_msg = ann.assert_push("room:lobby", "new_msg").await;
    assert_eq!(
        (&zed_msg["author"], &zed_msg["guest"], &zed_msg["username"]),
        (&json!(guest_author('z')), &json!(true), &json!("zed"))
    );

    // Reactions: usernames for display, author ids in the same order to tell who.
    let id = ann_msg["id"].clone();
    let reacted = zed
        .push("room:lobby", "react", json!({ "id": id, "emoji": "👍" }))
        .await
        .response;
    ann.push("room:lobby", "react", json!({ "id": id, "emoji": "👍" }))
        .await;
    assert_eq!(reacted["reactions"], json!({ "👍": ["zed"] }));
    assert_eq!(reacted["reactors"], json!({ "👍": [guest_author('z')] }));
    assert!(reacted["seq"].as_i64().unwrap() > id.as_i64().unwrap());
    let first = ann.assert_push("room:lobby", "reaction").await;
    let second = ann.assert_push("room:lobby", "reaction").await;
    assert_eq!(first["reactors"], reacted["reactors"]);
    assert_eq!(
        (&second["reactions"], &second["reactors"]),
        (
            &json!({ "👍": ["zed", "ann"] }),
            &json!({ "👍": [guest_author('z'), ann_author] })
        )
    );
    assert!(second["seq"].as_i64() > first["seq"].as_i64());
    let history = ann
        .push("room:lobby", "history", json!({ "before_id": i64::MAX }))
        .await
        .response;
    assert_eq!(history["messages"][0]["reactors"], second["reactors"]);
    assert_eq!(history["messages"][0]["seq"], second["seq"]);

    // typing and presence name the author too.
    zed.push_noreply("room:lobby", "typing", json!({}));
    assert_eq!(
        ann.assert_push("room:lobby", "typing").await,
        json!({ "username": "zed", "author": guest_author('z') })
    );
    let state = zed.assert_push("room:lobby", "presence_state").await;
    for (key, entry) in state.as_object().unwrap() {
        assert_eq!(entry["metas"][0]["author"], json!(key), "{state}");
    }
    assert!(state.get(guest_author('z')).is_some(), "{state}");
}

async fn joined(
    app: &App,
    guest_key: Option<&str>,
    room: &str,
    name: &str,
) -> Result<Value, Value> {
    let mut socket = app.guest(guest_key).await;
    let result = socket
        .join(&format!("room:{room}"), json!({ "username": name }))
        .await;
    // Kept open (and joined) for the test's life.
    std::mem::forget(socket);
    result
}

async fn a_guest_name_is_one_guests(backend: Backend) {
    let app = App::new(backend).await;
    app.user("ann").await;
    let taken_by_user = Err(json!({ "reason": "this name belongs to a registered user" }));
    let taken_by_guest = Err(json!({ "reason": "this name is used by another guest" }));
    let (a, b) = (key('a'), key('b'));
    assert_eq!(joined(&app, Some(&a), "lobby", "ANN").await, taken_by_user);
    joined(&app, Some(&a), "lobby", "zed").await.unwrap();
    // Another guest: not in this room, not under a look-alike.
    assert_eq!(joined(&app, Some(&b), "lobby", "Zed").await, taken_by_guest);
    assert_eq!(joined(&app, None, "lobby", "ｚｅｄ").await, taken_by_guest);
    // The same guest (key), from another socket: theirs.
    joined(&app, Some(&a), "lobby", "zed").await.unwrap();
    // Another room is another room's timeline: there, b may be zed, and then a may not.
    joined(&app, Some(&b), "other", "zed").await.unwrap();
    assert_eq!(joined(&app, Some(&a), "other", "zed").await, taken_by_guest);
    joined(&app, Some(&b), "lobby", "bea").await.unwrap();

    // A guest without a key: the name is free again once their channels end.
    let mut amy = app.guest(None).await;
    amy.join("room:lobby", json!({ "username": "amy" }))
        .await
        .unwrap();
    assert_eq!(joined(&app, None, "lobby", "amy").await, taken_by_guest);
    amy.close().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while joined(&app, None, "lobby", "amy").await.is_err() {
        assert!(Instant::now() < deadline, "amy's name was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A guest with a key keeps the name across a reconnect: gone for a moment, still
    // theirs, not another guest's.
    let mut cy = app.guest(Some(&key('c'))).await;
    cy.join("room:lobby", json!({ "username": "cy" }))
        .await
        .unwrap();
    cy.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(joined(&app, Some(&b), "lobby", "cy").await, taken_by_guest);
    joined(&app, Some(&key('c')), "lobby", "cy").await.unwrap();
}

#[tokio::test]
async fn memory_messages_reactions_typing_and_presence_say_who_by_id() {
    messages_say_who_wrote_them(Backend::Memory).await;
}

#[tokio::test]
async fn postgres_messages_reactions_typing_and_presence_say_who_by_id() {
    messages_say_who_wrote_them(Backend::Postgres).await;
}

#[tokio::test]
async fn memory_a_guest_name_is_held_by_one_guest() {
    a_guest_name_is_one_guests(Backend::Memory).await;
}

#[tokio::test]
async fn postgres_a_guest_name_is_held_by_one_guest() {
    a_guest_name_is_one_guests(Backend::Postgres).await;
}
