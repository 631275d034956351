//! Attachments on `new_msg` (docs/chat.md): a room channel built `with_attachments`
//! resolves upload ids of the signed-in sender through the `AttachmentLookup`; guests,
//! other users' uploads, unknown ids and more than ten are refused.

use std::sync::Arc;
use std::time::Duration;

use chat_app::accounts::session::Sessions;
use chat_app::accounts::{names, AccountStore, MemoryAccounts};
use chat_app::connect::SessionConnect;
use chat_app::directory::RoomDirectory;
use chat_app::limit::{Rate, RateLimit};
use chat_app::room::RoomChannel;
use chat_app::store::{MemoryStore, Store};
use chat_app::uploads::{Attachment, AttachmentLookup};
use phx_server::testing::TestSocket;
use phx_server::{Endpoint, SocketConfig};
use serde_json::json;

const SECRET: &[u8] = b"a test secret_key_base that is at least 64 bytes long, for tokens!";

/// Uploads named `mine…` belong to `owner`; nothing else exists.
struct Uploads {
    owner: i64,
}

impl AttachmentLookup for Uploads {
    fn attachment(&self, id: &str, user_id: i64) -> Option<Attachment> {
        (id.starts_with("mine") && user_id == self.owner).then(|| Attachment {
            id: id.into(),
            name: format!("{id}.png"),
            size: 10,
            content_type: "image/png".into(),
            url: format!("/uploads/{id}"),
            thumb_url: Some(format!("/uploads/{id}/thumb")),
        })
    }
}

#[tokio::test]
async fn attachments_are_the_senders_uploads_at_most_ten() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let accounts: Arc<dyn AccountStore> = Arc::new(MemoryAccounts::new());
    let sessions = Sessions::new(SECRET, accounts.clone());
    let mut tokens = Vec::new();
    for name in ["ann", "bob"] {
        let user = accounts
            .create_user(name, &names::fold(name), "$argon2id$not-used")
            .await
            .unwrap()
            .unwrap();
        tokens.push((user.id, sessions.create(&user).await.unwrap()));
    }
    let rooms = Arc::new(RoomDirectory::new(
        store.clone(),
        Rate::new(100, Duration::from_secs(1)),
    ));
    let typing = Arc::new(RateLimit::new(Rate::one_per(Duration::from_secs(1))));
    let lookup: Arc<dyn AttachmentLookup> = Arc::new(Uploads { owner: tokens[0].0 });
    let room_accounts = accounts.clone();
    let socket =
        SocketConfig::new(SessionConnect::new(sessions.clone())).channel("room:*", move || {
            RoomChannel::new(store.clone(), rooms.clone(), typing.clone())
                .with_accounts(room_accounts.clone())
                .with_attachments(lookup.clone())
        });
    let endpoint = Endpoint::builder()
        .socket("/socket", socket)
        .secret_key_base(SECRET.to_vec())
        .build();
    let connect = |params| {
        let endpoint = endpoint.clone();
        async move {
            TestSocket::connect(&endpoint, "/socket", params)
                .await
                .unwrap()
        }
    };
    let mut ann = connect(json!({ "token": tokens[0].1 })).await;
    let mut bob = connect(json!({ "token": tokens[1].1 })).await;
    let mut guest = connect(json!({})).await;
    ann.join("room:files", json!({})).await.unwrap();
    bob.join("room:files", json!({})).await.unwrap();
    guest
        .join("room:files", json!({"username": "zed"}))
        .await
        .unwrap();

    let reason = |r: phx_server::testing::Reply| (r.status, r.response["reason"].clone());
    // An empty body is fine with attachments; duplicates count once.
    let sent = ann
        .push(
            "room:files",
            "new_msg",
            json!({"body": "  ", "attachments": ["mine1", "mine2", "mine1"]}),
        )
        .await;
    assert_eq!(sent.status, "ok", "{:?}", sent.response);
    let seen = bob.assert_push("room:files", "new_msg").await;
    assert_eq!(seen["body"], "");
    assert_eq!(seen["attachments"][0]["url"], "/uploads/mine1");
    assert_eq!(seen["attachments"].as_array().unwrap().len(), 2);
    // Someone else's upload, an unknown id, a guest: "unknown attachment".
    for (socket, ids) in [(&mut bob, json!(["mine1"])), (&mut ann, json!(["nope"]))] {
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
            json!({"body": "x", "attachments": ["mine1"]}),
        )
        .await;
    assert_eq!(reason(r), ("error".into(), json!("unknown attachment")));
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
