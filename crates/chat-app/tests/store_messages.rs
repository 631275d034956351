//! The message model of docs/chat.md against both stores: the same scenario runs on the
//! memory store and on PostgreSQL (a database of its own, dropped afterwards).

use std::sync::{Arc, Mutex};

use chat_app::store::{
    Announce, Change, MemoryStore, NewMessage, PostgresStore, Reactor, Refusal, Store, WriterConfig,
};
use chat_app::uploads::Attachment;

mod support;
use support::TestDb;

fn new(room: &str, author: &str, body: &str) -> NewMessage {
    NewMessage {
        room: room.into(),
        username: author.trim_start_matches("user:").into(),
        author: author.into(),
        body: body.into(),
        ..NewMessage::default()
    }
}

fn edit(body: &str) -> Change {
    Change::Edit {
        body: body.into(),
        mentions: vec![],
    }
}

fn reactor(key: &str) -> Reactor {
    Reactor {
        key: key.into(),
        username: key.trim_start_matches("user:").into(),
    }
}

fn bodies(list: &[chat_app::store::StoredMessage]) -> Vec<&str> {
    list.iter().map(|m| m.body.as_str()).collect()
}

async fn threads_edits_reactions(store: &dyn Store) {
    store.ensure_room("lobby").await.unwrap();
    let top = store
        .insert_message(new("lobby", "user:1", "top"), None)
        .await
        .unwrap()
        .message;
    assert_eq!(
        (top.parent_id, top.reply_count, top.deleted, &top.edited_at),
        (None, 0, false, &None)
    );
    let mut reply = new("lobby", "user:2", "reply");
    reply.parent_id = Some(top.id);
    reply.mentions = vec!["1".into()];
    let reply = store.insert_message(reply, None).await.unwrap().message;
    assert_eq!(reply.parent_id, Some(top.id));
    let later = store
        .insert_message(new("lobby", "user:1", "later"), None)
        .await
        .unwrap()
        .message;

    // Recent and history: top-level only; replay: everything after an id, in order.
    assert_eq!(
        bodies(&store.recent("lobby", 50).await.unwrap()),
        ["top", "later"]
    );
    assert_eq!(
        bodies(&store.history("lobby", later.id, 50).await.unwrap()),
        ["top"]
    );
    assert_eq!(
        bodies(&store.after("lobby", top.id - 1, 200).await.unwrap()),
        ["top", "reply", "later"]
    );
    assert_eq!(
        bodies(&store.after("lobby", top.id, 1).await.unwrap()),
        ["reply"]
    );
    let parent = store.message("lobby", top.id).await.unwrap().unwrap();
    assert_eq!(parent.reply_count, 1, "the reply counted");
    assert_eq!(
        bodies(&store.replies("lobby", top.id, i64::MAX, 50).await.unwrap()),
        ["reply"]
    );
    assert_eq!(
        store.replies("lobby", top.id, reply.id, 50).await.unwrap(),
        vec![],
        "before_id pages"
    );
    let stored_reply = store.message("lobby", reply.id).await.unwrap().unwrap();
    assert_eq!(stored_reply.mentions, ["1"]);
    assert!(
        store.message("other", top.id).await.unwrap().is_none(),
        "room checked"
    );

    // Edit and delete: the author only, not once deleted.
    assert_eq!(
        store
            .change("lobby", top.id, "user:2", edit("x"))
            .await
            .unwrap(),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        store
            .change("other", top.id, "user:1", edit("x"))
            .await
            .unwrap(),
        Err(Refusal::NotFound)
    );
    let edited = store
        .change("lobby", top.id, "user:1", edit("edited"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edited.body, "edited");
    assert!(edited.edited_at.is_some());
    assert_eq!(edited.reply_count, 1);
    // The change sequence: a new message's is its id; a reply gave its parent the
    // reply's id; an edit a number above everything before it.
    assert_eq!((reply.seq, later.seq), (reply.id, later.id));
    assert_eq!(parent.seq, reply.id, "the reply changed its parent");
    assert!(edited.seq > later.id, "{} > {}", edited.seq, later.id);
    assert_eq!(store.seq("lobby").await.unwrap(), edited.seq);
    assert_eq!(store.seq("nowhere").await.unwrap(), 0);
    let changed = store
        .changed("lobby", later.id, i64::MAX, 10)
        .await
        .unwrap();
    assert_eq!(changed, vec![edited.clone()]);
    assert_eq!(
        store.changed("lobby", 0, i64::MAX, 10).await.unwrap(),
        vec![edited.clone()],
        "a message once, at its latest change"
    );
    assert!(store
        .changed("lobby", later.id, top.id - 1, 10)
        .await
        .unwrap()
        .is_empty());

    // Reactions toggle per reactor, in order; at most 20 distinct emoji.
    let r = store
        .react("lobby", later.id, reactor("user:1"), "👍")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        serde_json::json!({"👍": ["1"]})
    );
    store
        .react("lobby", later.id, reactor("user:2"), "👍")
        .await
        .unwrap()
        .unwrap();
    let r = store
        .react("lobby", later.id, reactor("user:1"), "👍")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        serde_json::json!({"👍": ["2"]})
    );
    for i in 1..20 {
        store
            .react("lobby", later.id, reactor("user:3"), &format!("#{i}"))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        store
            .react("lobby", later.id, reactor("user:3"), "🎉")
            .await
            .unwrap(),
        Err(Refusal::TooManyEmoji)
    );
    let shown = store.message("lobby", later.id).await.unwrap().unwrap();
    assert_eq!(shown.reactions.len(), 20);
    assert_eq!(shown.reactions.usernames("👍"), ["2"]);
    // Every toggle numbered the message anew (a refused one did not).
    assert!(shown.seq > edited.seq);
    assert_eq!(store.seq("lobby").await.unwrap(), shown.seq);
    assert_eq!(
        store
            .changed("lobby", edited.seq, i64::MAX, 10)
            .await
            .unwrap(),
        vec![shown.clone()]
    );
    assert_eq!(
        store
            .react("lobby", later.id + 1_000, reactor("user:3"), "👍")
            .await
            .unwrap(),
        Err(Refusal::NotFound)
    );

    // A tombstone keeps its place but loses body, attachments and mentions.
    let gone = store
        .change("lobby", reply.id, "user:2", Change::Delete)
        .await
        .unwrap()
        .unwrap();
    assert!(gone.deleted && gone.body.is_empty() && gone.mentions.is_empty());
    assert_eq!(
        store
            .change("lobby", reply.id, "user:2", edit("back"))
            .await
            .unwrap(),
        Err(Refusal::Deleted)
    );
    assert_eq!(
        store
            .react("lobby", reply.id, reactor("user:1"), "👍")
            .await
            .unwrap(),
        Err(Refusal::Deleted)
    );
    let json =
        serde_json::to_value(store.message("lobby", reply.id).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        json["author"], "user:2",
        "the author id is sent (docs/chat.md)"
    );
    assert_eq!(json["guest"], false);
    for field in [
        "id",
        "room",
        "username",
        "author",
        "guest",
        "seq",
        "reactors",
        "body",
        "inserted_at",
        "parent_id",
        "reply_count",
        "edited_at",
        "deleted",
        "reactions",
        "attachments",
        "mentions",
        "client_id",
    ] {
        assert!(json.get(field).is_some(), "{field} in {json}");
    }
}

/// `one_batch`: the store shares `inserted_at` across a group-commit batch (PostgreSQL),
/// which shows the retries went into one statement.
async fn client_ids_are_stored_once(store: Arc<dyn Store>, one_batch: bool) {
    store.ensure_room("lobby").await.unwrap();
    let announced = Arc::new(Mutex::new(Vec::new()));
    let keyed = |author: &str, key: &str, body: &str| {
        let mut m = new("lobby", author, body);
        m.client_id = Some(key.into());
        m.attachments = vec![Attachment {
            id: "up1".into(),
            name: "a.png".into(),
            size: 3,
            content_type: "image/png".into(),
            url: "/uploads/up1".into(),
            thumb_url: Some("/uploads/up1/thumb".into()),
            urls_expire_at: None,
        }];
        m
    };
    let announce = |announced: &Arc<Mutex<Vec<i64>>>| -> Option<Announce> {
        let announced = announced.clone();
        Some(Box::new(move |m| announced.lock().unwrap().push(m.id)))
    };
    // Three sends of one key submitted together (one batch on PostgreSQL), plus others.
    let calls: Vec<_> = [
        keyed("user:1", "k1", "first"),
        keyed("user:1", "k1", "retry"),
        keyed("user:2", "k1", "same key, other author"),
        keyed("user:1", "k1", "retry again"),
    ]
    .into_iter()
    .map(|m| {
        let (store, announce) = (store.clone(), announce(&announced));
        tokio::spawn(async move { store.insert_message(m, announce).await })
    })
    .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap().unwrap());
    }
    let first = results
        .iter()
        .find(|r| !r.duplicate && r.message.author == "user:1");
    let first = first.expect("one stored").message.clone();
    assert_eq!(first.attachments.len(), 1);
    assert_eq!(first.client_id.as_deref(), Some("k1"));
    let by_one: Vec<_> = results
        .iter()
        .filter(|r| r.message.author == "user:1")
        .collect();
    assert_eq!(by_one.iter().filter(|r| r.duplicate).count(), 2);
    assert!(by_one
        .iter()
        .all(|r| r.message.id == first.id && r.message.body == first.body));
    let other = results
        .iter()
        .find(|r| r.message.author == "user:2")
        .unwrap();
    assert!(!other.duplicate, "a key is per author");
    if one_batch {
        assert_eq!(other.message.inserted_at, first.inserted_at, "one batch");
    }
    // Later, alone: still a duplicate.
    let again = store
        .insert_message(keyed("user:1", "k1", "much later"), announce(&announced))
        .await
        .unwrap();
    assert!(again.duplicate && again.message.id == first.id);
    let stored = store.recent("lobby", 50).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(
        announced.lock().unwrap().len(),
        2,
        "duplicates not announced"
    );
}

#[tokio::test]
async fn memory_threads_edits_reactions() {
    threads_edits_reactions(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_client_ids_are_stored_once() {
    client_ids_are_stored_once(Arc::new(MemoryStore::new()), false).await;
}

#[tokio::test]
async fn postgres_threads_edits_reactions() {
    let db = TestDb::new().await;
    let store = PostgresStore::connect(&db.url(), 2).await.unwrap();
    threads_edits_reactions(&store).await;
}

/// Current-thread runtime: the spawned senders all queue their message before the
/// (one) writer runs, so the retries share one batch, one statement.
#[tokio::test]
async fn postgres_client_ids_are_stored_once_also_within_one_batch() {
    let db = TestDb::new().await;
    let writer = WriterConfig {
        writers: 1,
        ..WriterConfig::default()
    };
    let store = PostgresStore::connect_with(&db.url(), 2, writer)
        .await
        .unwrap();
    client_ids_are_stored_once(Arc::new(store), true).await;
}
