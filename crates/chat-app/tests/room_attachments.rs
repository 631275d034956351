//! Attachments on `new_msg` (docs/chat.md): a room channel built `with_attachments`
//! claims upload ids of the signed-in sender through the upload files; guests, other
//! users' uploads, unknown ids, uploads posted already and more than ten are refused;
//! every message it sends carries file URLs signed for its own reader; deleting a
//! message removes its files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_app::accounts::session::Sessions;
use chat_app::accounts::{names, AccountStore, MemoryAccounts};
use chat_app::connect::SessionConnect;
use chat_app::directory::RoomDirectory;
use chat_app::limit::{Rate, RateLimit};
use chat_app::room::RoomChannel;
use chat_app::store::{MemoryStore, Store};
use chat_app::uploads::files::Files;
use chat_app::uploads::signed::{unix_now, UrlSigner};
use chat_app::uploads::sniff::Kind;
use chat_app::uploads::store::UploadStore;
use chat_app::uploads::Attachments;
use phx_server::testing::TestSocket;
use phx_server::{Endpoint, SocketConfig};
use serde_json::{json, Value};

const SECRET: &[u8] = b"a test secret_key_base that is at least 64 bytes long, for tokens!";

struct Chat {
    endpoint: Endpoint,
    files: Arc<Files>,
    /// (user id, token) of ann and bob.
    users: Vec<(i64, String)>,
    _dir: tempfile::TempDir,
}

async fn chat() -> Chat {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let accounts: Arc<dyn AccountStore> = Arc::new(MemoryAccounts::new());
    let sessions = Sessions::new(SECRET, accounts.clone());
    let mut users = Vec::new();
    for name in ["ann", "bob"] {
        let user = accounts
            .create_user(name, &names::fold(name), "$argon2id$not-used")
            .await
            .unwrap()
            .unwrap();
        users.push((user.id, sessions.create(&user).await.unwrap()));
    }
    let rooms = Arc::new(RoomDirectory::new(
        store.clone(),
        Rate::new(100, Duration::from_secs(1)),
    ));
    let typing = Arc::new(RateLimit::new(Rate::one_per(Duration::from_secs(1))));
    let files = Arc::new(Files::new(
        Arc::new(UploadStore::open(dir.path()).unwrap()),
        1 << 30,
        UrlSigner::new(SECRET, Duration::from_secs(3600)),
        Duration::from_secs(3600),
    ));
    let attachments: Arc<dyn Attachments> = files.clone();
    let room_accounts = accounts.clone();
    let socket =
        SocketConfig::new(SessionConnect::new(sessions.clone())).channel("room:*", move || {
            RoomChannel::new(store.clone(), rooms.clone(), typing.clone())
                .with_accounts(room_accounts.clone())
                .with_attachments(attachments.clone())
        });
    let endpoint = Endpoint::builder()
        .socket("/socket", socket)
        .secret_key_base(SECRET.to_vec())
        .build();
    Chat {
        endpoint,
        files,
        users,
        _dir: dir,
    }
}

impl Chat {
    async fn connect(&self, params: Value) -> TestSocket {
        TestSocket::connect(&self.endpoint, "/socket", params)
            .await
            .unwrap()
    }

    async fn user(&self, i: usize) -> TestSocket {
        self.connect(json!({ "token": self.users[i].1 })).await
    }

    /// A new upload of user `i`: its id.
    async fn upload(&self, i: usize, name: &str, image: bool) -> String {
        let (kind, thumb) = if image {
            (Kind::Png, Some(&b"thumb"[..]))
        } else {
            (Kind::Text, None)
        };
        let owner = self.users[i].0;
        self.files.quota().reserve(owner, 4).unwrap().keep();
        self.files
            .store()
            .save(owner, name, kind, &Bytes::from_static(b"data"), thumb)
            .await
            .unwrap()
            .id
    }

    fn dir(&self) -> &Path {
        self.files.store().dir()
    }

    fn files_of(&self, id: &str) -> Vec<String> {
        std::fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(id))
            .collect()
    }
}

fn reason(r: phx_server::testing::Reply) -> (String, Value) {
    (r.status, r.response["reason"].clone())
}

/// The viewer a signed URL was made for, after checking its signature.
fn viewer_of(chat: &Chat, url: &Value) -> String {
    let token = url.as_str().unwrap().strip_prefix("/uploads/").unwrap();
    let token = token.strip_suffix("/thumb").unwrap_or(token);
    let granted = chat.files.signer().verify(token, unix_now()).unwrap();
    granted.viewer.as_str().to_owned()
}

#[tokio::test]
async fn attachments_are_the_senders_uploads_at_most_ten_and_each_posted_once() {
    let chat = chat().await;
    let (mine1, mine2) = (
        chat.upload(0, "a.png", true).await,
        chat.upload(0, "b.txt", false).await,
    );
    let bobs = chat.upload(1, "bob.txt", false).await;
    let mut ann = chat.user(0).await;
    let mut bob = chat.user(1).await;
    let mut guest = chat.connect(json!({})).await;
    ann.join("room:files", json!({})).await.unwrap();
    bob.join("room:files", json!({})).await.unwrap();
    guest
        .join("room:files", json!({"username": "zed"}))
        .await
        .unwrap();

    // An empty body is fine with attachments; duplicates count once.
    let sent = ann
        .push(
            "room:files",
            "new_msg",
            json!({"body": "  ", "attachments": [mine1, mine2, mine1], "client_id": "m1"}),
        )
        .await;
    assert_eq!(sent.status, "ok", "{:?}", sent.response);
    let seen = bob.assert_push("room:files", "new_msg").await;
    assert_eq!(seen["body"], "");
    let attachments = seen["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 2);
    assert_eq!(attachments[0]["id"], mine1.as_str());
    // Posted: neither the same message under another key nor another room takes them.
    let again = ann
        .push(
            "room:files",
            "new_msg",
            json!({"body": "x", "attachments": [mine1], "client_id": "m2"}),
        )
        .await;
    assert_eq!(
        reason(again),
        ("error".into(), json!("attachment already posted"))
    );
    // A retry of the first message (same client_id) is its duplicate, not a refusal.
    let retry = ann
        .push(
            "room:files",
            "new_msg",
            json!({"body": "  ", "attachments": [mine1, mine2], "client_id": "m1"}),
        )
        .await;
    assert_eq!(retry.status, "ok", "{:?}", retry.response);
    assert_eq!(retry.response["duplicate"], true);
    // Someone else's upload, an unknown id, a guest: "unknown attachment".
    for (socket, ids) in [(&mut bob, json!([mine1])), (&mut ann, json!(["nope"]))] {
        let r = socket
            .push(
                "room:files",
                "new_msg",
                json!({"body": "x", "attachments": ids}),
            )
            .await;
        assert_eq!(reason(r), ("error".into(), json!("unknown attachment")));
    }
    let r = guest
        .push(
            "room:files",
            "new_msg",
            json!({"body": "x", "attachments": [bobs]}),
        )
        .await;
    assert_eq!(reason(r), ("error".into(), json!("unknown attachment")));
    // A refused message gives back what it claimed: bob's upload is still his to post.
    let r = bob
        .push(
            "room:files",
            "new_msg",
            json!({"body": "x", "attachments": [bobs, mine2]}),
        )
        .await;
    assert_eq!(reason(r), ("error".into(), json!("unknown attachment")));
    let r = bob
        .push(
            "room:files",
            "new_msg",
            json!({"body": "now", "attachments": [bobs]}),
        )
        .await;
    assert_eq!(r.status, "ok", "{:?}", r.response);
    let eleven: Vec<String> = (0..11).map(|i| format!("mine{i}")).collect();
    let r = ann
        .push(
            "room:files",
            "new_msg",
            json!({"body": "x", "attachments": eleven}),
        )
        .await;
    assert_eq!(
        reason(r),
        ("error".into(), json!("at most 10 attachments per message"))
    );
    let r = ann
        .push("room:files", "new_msg", json!({"attachments": "mine1"}))
        .await;
    assert_eq!(
        reason(r),
        (
            "error".into(),
            json!("attachments must be a list of upload ids")
        )
    );
    // No attachments and no body is still no message.
    let r = ann
        .push(
            "room:files",
            "new_msg",
            json!({"body": " ", "attachments": []}),
        )
        .await;
    assert_eq!(reason(r), ("error".into(), json!("message can't be blank")));
}

#[tokio::test]
async fn every_reader_gets_urls_signed_for_them_wherever_a_message_is_sent() {
    let chat = chat().await;
    let image = chat.upload(0, "photo.png", true).await;
    let notes = chat.upload(0, "notes.txt", false).await;
    let (ann_id, bob_id) = (chat.users[0].0, chat.users[1].0);
    let mut ann = chat.user(0).await;
    let mut bob = chat.user(1).await;
    let mut guest = chat.connect(json!({})).await;
    ann.join("room:signed", json!({})).await.unwrap();
    bob.join("room:signed", json!({})).await.unwrap();
    guest
        .join("room:signed", json!({"username": "zed"}))
        .await
        .unwrap();
    let sent = ann
        .push(
            "room:signed",
            "new_msg",
            json!({"body": "look", "attachments": [image, notes]}),
        )
        .await;
    assert_eq!(sent.status, "ok");
    let id = sent.response["id"].clone();

    // The broadcast: each reader's copy is signed for that reader.
    let to_ann = ann.assert_push("room:signed", "new_msg").await;
    let to_bob = bob.assert_push("room:signed", "new_msg").await;
    let to_guest = guest.assert_push("room:signed", "new_msg").await;
    assert_eq!(
        viewer_of(&chat, &to_ann["attachments"][0]["url"]),
        format!("u{ann_id}")
    );
    assert_eq!(
        viewer_of(&chat, &to_bob["attachments"][0]["url"]),
        format!("u{bob_id}")
    );
    assert_eq!(
        viewer_of(&chat, &to_bob["attachments"][0]["thumb_url"]),
        format!("u{bob_id}")
    );
    assert!(viewer_of(&chat, &to_guest["attachments"][0]["url"]).starts_with('g'));
    assert_eq!(to_bob["attachments"][1]["thumb_url"], Value::Null);
    assert!(to_bob["attachments"][0]["urls_expire_at"].is_string());
    assert_ne!(to_ann["attachments"], to_bob["attachments"]);
    // Everything else about the message is the same for everyone.
    assert_eq!(to_ann["body"], to_bob["body"]);
    assert_eq!(to_ann["id"], id);

    // Join reply, history, thread, an edit's broadcast, search: signed for the reader too.
    let mut late = chat.user(1).await;
    let joined = late.join("room:signed", json!({})).await.unwrap();
    let url = &joined["messages"][0]["attachments"][0]["url"];
    assert_eq!(viewer_of(&chat, url), format!("u{bob_id}"));
    let history = bob
        .push("room:signed", "history", json!({"before_id": i64::MAX}))
        .await;
    assert_eq!(
        viewer_of(
            &chat,
            &history.response["messages"][0]["attachments"][0]["url"]
        ),
        format!("u{bob_id}")
    );
    let thread = bob
        .push("room:signed", "thread", json!({"parent_id": id}))
        .await;
    assert_eq!(
        viewer_of(&chat, &thread.response["parent"]["attachments"][0]["url"]),
        format!("u{bob_id}")
    );
    let edit = ann
        .push(
            "room:signed",
            "edit_msg",
            json!({"id": id, "body": "looked"}),
        )
        .await;
    assert_eq!(edit.status, "ok");
    let edited = bob.assert_push("room:signed", "msg_updated").await;
    assert_eq!(edited["body"], "looked");
    assert_eq!(
        viewer_of(&chat, &edited["attachments"][0]["url"]),
        format!("u{bob_id}")
    );
    let found = bob
        .push("room:signed", "search", json!({"query": "looked"}))
        .await;
    assert_eq!(found.status, "ok", "{:?}", found.response);
    assert_eq!(
        viewer_of(
            &chat,
            &found.response["messages"][0]["attachments"][0]["url"]
        ),
        format!("u{bob_id}")
    );

    // `attachments`: fresh URLs for files posted in this room; not for others.
    let elsewhere = chat.upload(1, "private.txt", false).await;
    let mut other_room = chat.user(1).await;
    other_room.join("room:elsewhere", json!({})).await.unwrap();
    let posted = other_room
        .push(
            "room:elsewhere",
            "new_msg",
            json!({"body": "x", "attachments": [elsewhere]}),
        )
        .await;
    assert_eq!(posted.status, "ok");
    let fresh = guest
        .push(
            "room:signed",
            "attachments",
            json!({"ids": [image, elsewhere, "junk", image]}),
        )
        .await;
    assert_eq!(fresh.status, "ok", "{:?}", fresh.response);
    let list = fresh.response["attachments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], image.as_str());
    assert!(viewer_of(&chat, &list[0]["url"]).starts_with('g'));
    let bad = guest
        .push("room:signed", "attachments", json!({"ids": "x"}))
        .await;
    assert_eq!(bad.status, "error");
}

#[tokio::test]
async fn deleting_a_message_removes_its_files_and_thumbnails() {
    let chat = chat().await;
    let image = chat.upload(0, "photo.png", true).await;
    let kept = chat.upload(0, "kept.txt", false).await;
    assert_eq!(chat.files_of(&image).len(), 3, "file, thumbnail, metadata");
    let mut ann = chat.user(0).await;
    let mut bob = chat.user(1).await;
    ann.join("room:gone", json!({})).await.unwrap();
    bob.join("room:gone", json!({})).await.unwrap();
    let sent = ann
        .push(
            "room:gone",
            "new_msg",
            json!({"body": "x", "attachments": [image]}),
        )
        .await;
    let other = ann
        .push(
            "room:gone",
            "new_msg",
            json!({"body": "y", "attachments": [kept]}),
        )
        .await;
    let id = sent.response["id"].clone();
    // Not the author: refused, and the files stay.
    let r = bob.push("room:gone", "delete_msg", json!({"id": id})).await;
    assert_eq!(reason(r), ("error".into(), json!("forbidden")));
    assert_eq!(chat.files_of(&image).len(), 3);
    let r = ann.push("room:gone", "delete_msg", json!({"id": id})).await;
    assert_eq!(r.status, "ok");
    assert!(
        chat.files_of(&image).is_empty(),
        "{:?}",
        chat.files_of(&image)
    );
    assert_eq!(
        chat.files_of(&kept).len(),
        2,
        "another message's file stays"
    );
    assert!(other.status == "ok");
    // The quota has the deleted file's bytes back.
    assert_eq!(chat.files.quota().used(chat.users[0].0), 4);
}

#[tokio::test]
async fn without_uploads_wired_attachments_are_refused_and_text_still_goes() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rooms = Arc::new(RoomDirectory::new(
        store.clone(),
        Rate::new(100, Duration::from_secs(1)),
    ));
    let typing = Arc::new(RateLimit::new(Rate::one_per(Duration::from_secs(1))));
    let socket = SocketConfig::new(chat_app::connect::ChatConnect).channel("room:*", move || {
        RoomChannel::new(store.clone(), rooms.clone(), typing.clone())
    });
    let endpoint = Endpoint::builder().socket("/socket", socket).build();
    let mut ann = TestSocket::connect(&endpoint, "/socket", json!({}))
        .await
        .unwrap();
    ann.join("room:plain", json!({"username": "ann"}))
        .await
        .unwrap();
    let r = ann
        .push(
            "room:plain",
            "new_msg",
            json!({"body": "x", "attachments": ["mine1"]}),
        )
        .await;
    assert_eq!(
        (r.status.as_str(), &r.response["reason"]),
        ("error", &json!("uploads are not enabled"))
    );
    let r = ann
        .push("room:plain", "new_msg", json!({"body": "just text"}))
        .await;
    assert_eq!(r.status, "ok", "{:?}", r.response);
}
