//! Edits, deletes, reactions and reply counts made while a client was away reach it on
//! rejoin (docs/chat.md, "Changes while away"): both stores, through the real channels.

#[path = "support/app.rs"]
mod app;
mod support;

use std::sync::{Arc, Mutex};

use app::{App, Backend};
use chat_app::store::{Announce, MemoryStore, NewMessage, PostgresStore, Reactor, Store};
use phx_server::testing::TestSocket;
use serde_json::{json, Value};

async fn send(socket: &mut TestSocket, body: &str, parent_id: Option<i64>) -> i64 {
    let reply = socket
        .push(
            "room:news",
            "new_msg",
            json!({ "body": body, "parent_id": parent_id }),
        )
        .await;
    assert_eq!(reply.status, "ok", "{:?}", reply.response);
    reply.response["id"].as_i64().unwrap()
}

fn seq(v: &Value) -> i64 {
    v["seq"].as_i64().unwrap_or_else(|| panic!("no seq in {v}"))
}

async fn changes_reach_a_rejoining_client(backend: Backend) {
    let app = App::new(backend).await;
    let (_, ann_token) = app.user("ann").await;
    let (_, bob_token) = app.user("bob").await;
    let mut ann = app.signed_in(&ann_token).await;
    ann.join("room:news", json!({})).await.unwrap();
    let mut bob = app.signed_in(&bob_token).await;
    let first = bob.join("room:news", json!({})).await.unwrap();
    let mut since = seq(&first);
    let ids = [
        send(&mut ann, "one", None).await,
        send(&mut ann, "two", None).await,
        send(&mut ann, "three", None).await,
        send(&mut ann, "four", None).await,
    ];
    // Bob sees them arrive, keeping the highest seq; then goes away.
    for id in ids {
        let message = bob.assert_push("room:news", "new_msg").await;
        assert_eq!((message["id"].as_i64(), seq(&message)), (Some(id), id));
        since = since.max(seq(&message));
    }
    let after_id = ids[3];
    bob.close().await;

    // Meanwhile: an edit, a delete, a reaction, a thread reply, a new message.
    let edited = ann
        .push(
            "room:news",
            "edit_msg",
            json!({ "id": ids[0], "body": "one, edited" }),
        )
        .await;
    assert_eq!(edited.status, "ok");
    ann.push("room:news", "delete_msg", json!({ "id": ids[1] }))
        .await;
    let reacted = ann
        .push("room:news", "react", json!({ "id": ids[2], "emoji": "🎉" }))
        .await;
    assert!(seq(&reacted.response) > since);
    let reply = send(&mut ann, "a reply", Some(ids[3])).await;
    let five = send(&mut ann, "five", None).await;

    let mut bob = app.signed_in(&bob_token).await;
    let back = bob
        .join(
            "room:news",
            json!({ "after_id": after_id, "after_seq": since }),
        )
        .await
        .unwrap();
    let ids_of = |list: &Value| -> Vec<i64> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        ids_of(&back["messages"]),
        [reply, five],
        "new ones as before"
    );
    assert_eq!(
        (&back["gap"], &back["refetch"]),
        (&json!(false), &json!(false))
    );
    let changed = &back["changed"];
    assert_eq!(
        ids_of(changed),
        ids,
        "every message changed, in change order"
    );
    assert_eq!(changed[0]["body"], "one, edited");
    assert!(changed[0]["edited_at"].is_string());
    assert_eq!(
        (&changed[1]["deleted"], &changed[1]["body"]),
        (&json!(true), &json!(""))
    );
    assert_eq!(changed[2]["reactions"], json!({ "🎉": ["ann"] }));
    assert_eq!(changed[3]["reply_count"], 1);
    let seqs: Vec<i64> = changed.as_array().unwrap().iter().map(seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(seqs.iter().all(|s| *s > since));
    assert!(seq(&back) >= *seqs.last().unwrap() && seq(&back) >= five);

    // Up to date: nothing changed since the reply's seq.
    let mut again = app.signed_in(&bob_token).await;
    let current = again
        .join(
            "room:news",
            json!({ "after_id": five, "after_seq": seq(&back) }),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            &current["changed"],
            &current["messages"],
            &current["refetch"]
        ),
        (&json!([]), &json!([]), &json!(false))
    );
}

/// Past 200 changed messages the reply says: refetch.
async fn too_many_changes_ask_for_a_refetch(backend: Backend) {
    let app = App::new(backend).await;
    let (_, ann_token) = app.user("ann").await;
    let mut ann = app.signed_in(&ann_token).await;
    let joined = ann.join("room:news", json!({})).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..201 {
        ids.push(send(&mut ann, &format!("m{i}"), None).await);
    }
    let since = seq(&joined).max(*ids.last().unwrap());
    for id in &ids {
        let reply = ann
            .push(
                "room:news",
                "edit_msg",
                json!({ "id": id, "body": "edited" }),
            )
            .await;
        assert_eq!(reply.status, "ok");
    }
    let mut later = app.signed_in(&ann_token).await;
    let back = later
        .join(
            "room:news",
            json!({ "after_id": ids.last(), "after_seq": since }),
        )
        .await
        .unwrap();
    assert_eq!(
        (&back["changed"], &back["refetch"], &back["gap"]),
        (&json!([]), &json!(true), &json!(false))
    );
    // One fewer changed message fits.
    let back = later.join("room:other", json!({})).await.unwrap();
    assert_eq!(back["refetch"], false);
    let mut third = app.signed_in(&ann_token).await;
    let first_edit_seq = {
        let m = ann
            .push(
                "room:news",
                "history",
                json!({ "before_id": ids[1] + 1, "limit": 2 }),
            )
            .await
            .response;
        seq(&m["messages"][0])
    };
    let back = third
        .join(
            "room:news",
            json!({ "after_id": ids.last(), "after_seq": first_edit_seq }),
        )
        .await
        .unwrap();
    assert_eq!(back["refetch"], false);
    assert_eq!(back["changed"].as_array().unwrap().len(), 200);
}

#[tokio::test]
async fn memory_changes_reach_a_rejoining_client() {
    changes_reach_a_rejoining_client(Backend::Memory).await;
}

#[tokio::test]
async fn postgres_changes_reach_a_rejoining_client() {
    changes_reach_a_rejoining_client(Backend::Postgres).await;
}

#[tokio::test]
async fn memory_too_many_changes_ask_for_a_refetch() {
    too_many_changes_ask_for_a_refetch(Backend::Memory).await;
}

#[tokio::test]
async fn postgres_too_many_changes_ask_for_a_refetch() {
    too_many_changes_ask_for_a_refetch(Backend::Postgres).await;
}

/// Concurrent senders and reactors in one room: the store announces (broadcasts) the
/// room's messages and changes in `seq` order, so a page that saw one `seq` saw every
/// lower one (on this server).
async fn announced_in_seq_order(store: Arc<dyn Store>) {
    store.ensure_room("busy").await.unwrap();
    let first = store.insert("busy", "u", "target").await.unwrap();
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (store, seen) = (store.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let seen = seen.clone();
                let announce: Announce = Box::new(move |m| seen.lock().unwrap().push(m.seq));
                if (t + i) % 2 == 0 {
                    let new = NewMessage::plain("busy", "u", &format!("{t}/{i}"));
                    store.insert_message(new, Some(announce)).await.unwrap();
                } else {
                    let reactor = Reactor {
                        key: format!("user:{t}"),
                        username: format!("u{t}"),
                    };
                    store
                        .toggle_reaction("busy", first.id, reactor, "👍", Some(announce))
                        .await
                        .unwrap()
                        .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 200);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "announced out of seq order: {seen:?}"
    );
    assert_eq!(store.seq("busy").await.unwrap(), *seen.last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_changes_and_messages_are_announced_in_seq_order() {
    announced_in_seq_order(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_changes_and_messages_are_announced_in_seq_order() {
    let db = support::TestDb::new().await;
    let store = PostgresStore::connect(&db.url(), 4).await.unwrap();
    announced_in_seq_order(Arc::new(store)).await;
}
