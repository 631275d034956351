//! Accounts and authorization, through `phx_server::testing` sockets and the
//! real HTTP API on a loopback port: registration and login, rate limits, sessions,
//! private rooms, DMs, the personal `user:<id>` topic, unread counts, presence per user,
//! logout closing every socket of that user and no other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_app::accounts::api::{AccountsHttp, ApiLimits};
use chat_app::accounts::session::Sessions;
use chat_app::accounts::{names, AccountStore, MemoryAccounts};
use chat_app::connect::SessionConnect;
use chat_app::directory::RoomDirectory;
use chat_app::limit::{Rate, RateLimit};
use chat_app::room::RoomChannel;
use chat_app::store::{MemoryStore, Store};
use chat_app::web::Web;
use phx_server::testing::TestSocket;
use phx_server::{Endpoint, SocketConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &[u8] = b"a test secret_key_base that is at least 64 bytes long, for tokens!";

struct App {
    endpoint: Endpoint,
    accounts: Arc<dyn AccountStore>,
    sessions: Sessions,
}

fn app_with(limits: ApiLimits, max_age: Option<Duration>) -> App {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let accounts: Arc<dyn AccountStore> = Arc::new(MemoryAccounts::new());
    let mut sessions = Sessions::new(SECRET, accounts.clone());
    if let Some(max_age) = max_age {
        sessions = sessions.with_max_age(max_age);
    }
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
    let http = AccountsHttp::with_limits(sessions.clone(), Web::new("/nonexistent"), limits);
    let endpoint = Endpoint::builder()
        .socket("/socket", socket)
        .http(http)
        .secret_key_base(SECRET.to_vec())
        .build();
    App {
        endpoint,
        accounts,
        sessions,
    }
}

fn app() -> App {
    app_with(ApiLimits::default(), None)
}

/// A user made directly in the store (no Argon2 work) and a session token.
async fn user(app: &App, name: &str) -> (i64, String) {
    let user = app
        .accounts
        .create_user(name, &names::fold(name), "$argon2id$not-used")
        .await
        .unwrap()
        .unwrap();
    let token = app.sessions.create(&user).await.unwrap();
    (user.id, token)
}

async fn signed_in(app: &App, token: &str) -> TestSocket {
    TestSocket::connect(&app.endpoint, "/socket", json!({ "token": token }))
        .await
        .expect("a valid token connects")
}

async fn guest(app: &App) -> TestSocket {
    TestSocket::connect(&app.endpoint, "/socket", json!({}))
        .await
        .expect("guests connect")
}

/// Serves the endpoint on a loopback port; returns its address.
async fn serve(endpoint: &Endpoint) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoint = endpoint.clone();
    tokio::spawn(async move { endpoint.serve(listener).await });
    addr
}

/// `POST path` with a JSON body: (status, JSON body).
async fn post(addr: std::net::SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn unauthorized() -> Result<Value, Value> {
    Err(json!({ "reason": "unauthorized" }))
}

#[tokio::test]
async fn register_refuses_duplicate_and_confusable_names_and_weak_passwords() {
    let limits = ApiLimits {
        register_per_address: Rate::new(20, Duration::from_secs(3600)),
        ..ApiLimits::default()
    };
    let app = app_with(limits, None);
    let addr = serve(&app.endpoint).await;
    let good = "correct horse battery";
    let (status, body) = post(
        addr,
        "/api/register",
        json!({"username": "admin", "password": good}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["token"].is_string());
    assert_eq!(body["user"]["username"], "admin");

    for taken in ["admin", "Admin", "ADMIN", "\u{430}dmin", "ａｄｍｉｎ"] {
        let (status, body) = post(
            addr,
            "/api/register",
            json!({"username": taken, "password": good}),
        )
        .await;
        assert_eq!(status, 422, "{taken}: {body}");
        assert_eq!(body["error"], "this username is taken");
    }
    let (status, body) = post(
        addr,
        "/api/register",
        json!({"username": "ann", "password": "short"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (422, "password must be at least 10 characters")
    );
    let (status, _) = post(
        addr,
        "/api/register",
        json!({"username": "ann", "password": "password123"}),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = post(addr, "/api/register", json!({"username": "ann"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = app_with(
        ApiLimits {
            register_per_address: Rate::new(2, Duration::from_secs(3600)),
            ..ApiLimits::default()
        },
        None,
    );
    let addr = serve(&app.endpoint).await;
    let statuses: Vec<u16> = futures_statuses(addr, ["u1", "u2", "u3"]).await;
    assert_eq!(statuses, [201, 201, 429]);
}

async fn futures_statuses<const N: usize>(
    addr: std::net::SocketAddr,
    names: [&str; N],
) -> Vec<u16> {
    let mut out = Vec::new();
    for name in names {
        let body = json!({"username": name, "password": "correct horse battery"});
        out.push(post(addr, "/api/register", body).await.0);
    }
    out
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = app();
    let addr = serve(&app.endpoint).await;
    let good = "correct horse battery";
    post(
        addr,
        "/api/register",
        json!({"username": "ann", "password": good}),
    )
    .await;

    let wrong = post(
        addr,
        "/api/login",
        json!({"username": "ann", "password": "wrong horse battery"}),
    )
    .await;
    let unknown = post(
        addr,
        "/api/login",
        json!({"username": "nobody", "password": good}),
    )
    .await;
    assert_eq!(
        wrong,
        (401, json!({"error": "invalid username or password"}))
    );
    assert_eq!(unknown, wrong);

    let (status, body) = post(
        addr,
        "/api/login",
        json!({"username": "ANN", "password": good}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["username"], "ann");
    // The token signs in a socket.
    let mut socket = signed_in(&app, body["token"].as_str().unwrap()).await;
    let id = body["user"]["id"].as_i64().unwrap();
    assert!(socket.join(&format!("user:{id}"), json!({})).await.is_ok());
}

#[tokio::test]
async fn login_attempts_are_limited_per_username_and_per_address() {
    let hour = Duration::from_secs(3600);
    let app = app_with(
        ApiLimits {
            login_per_username: Rate::new(3, hour),
            login_per_address: Rate::new(5, hour),
            register_per_address: Rate::new(10, hour),
            ..ApiLimits::default()
        },
        None,
    );
    let addr = serve(&app.endpoint).await;
    let good = "correct horse battery";
    post(
        addr,
        "/api/register",
        json!({"username": "ann", "password": good}),
    )
    .await;
    for _ in 0..3 {
        let (status, _) = post(
            addr,
            "/api/login",
            json!({"username": "ann", "password": "wrong one!!"}),
        )
        .await;
        assert_eq!(status, 401);
    }
    // ann's budget is spent: even the right password is refused now.
    let (status, body) = post(
        addr,
        "/api/login",
        json!({"username": "ann", "password": good}),
    )
    .await;
    assert_eq!(status, 429);
    let wait = body["retry_after"].as_u64().unwrap();
    assert!((3000..=3600).contains(&wait), "{body}");
    assert_eq!(
        body["error"],
        format!("too many attempts: try again in {wait} s")
    );
    // Another name from the same address still has one attempt of the address's five ...
    let (status, _) = post(
        addr,
        "/api/login",
        json!({"username": "bob", "password": good}),
    )
    .await;
    assert_eq!(status, 401);
    // ... and then the address's budget is spent for every name.
    let (status, _) = post(
        addr,
        "/api/login",
        json!({"username": "cat", "password": good}),
    )
    .await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn tampered_expired_and_logged_out_tokens_are_refused() {
    let app = app();
    let (_, token) = user(&app, "ann").await;
    assert!(
        TestSocket::connect(&app.endpoint, "/socket", json!({"token": token}))
            .await
            .is_ok()
    );

    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(
        TestSocket::connect(&app.endpoint, "/socket", json!({"token": tampered}))
            .await
            .is_err()
    );
    assert!(
        TestSocket::connect(&app.endpoint, "/socket", json!({"token": "nonsense"}))
            .await
            .is_err()
    );

    // The same store and secret, but tokens live zero seconds: expired.
    let strict = Sessions::new(SECRET, app.accounts.clone()).with_max_age(Duration::ZERO);
    assert!(strict.verify(Some(&token)).await.is_none());
    let short = app_with(ApiLimits::default(), Some(Duration::ZERO));
    let (_, token) = user(&short, "bob").await;
    assert!(
        TestSocket::connect(&short.endpoint, "/socket", json!({"token": token}))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn logout_closes_every_socket_of_the_user_and_no_other() {
    let app = app();
    let addr = serve(&app.endpoint).await;
    let (_, ann_token) = user(&app, "ann").await;
    let (_, bob_token) = user(&app, "bob").await;
    let mut tab1 = signed_in(&app, &ann_token).await;
    let mut tab2 = signed_in(&app, &ann_token).await;
    let mut bob = signed_in(&app, &bob_token).await;
    for s in [&mut tab1, &mut tab2, &mut bob] {
        s.join("room:lobby", json!({})).await.unwrap();
    }
    let (status, _) = post(addr, "/api/logout", json!({"token": ann_token})).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(tab1.is_closed() && tab2.is_closed()) {
        assert!(Instant::now() < deadline, "ann's sockets were not closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!bob.is_closed(), "bob's socket must stay open");
    let reply = bob
        .push("room:lobby", "new_msg", json!({"body": "still here"}))
        .await;
    assert_eq!(reply.status, "ok");
    // The old token no longer connects (phoenix.js would reconnect with it).
    assert!(
        TestSocket::connect(&app.endpoint, "/socket", json!({"token": ann_token}))
            .await
            .is_err()
    );
    let (status, _) = post(addr, "/api/logout", json!({"token": ann_token})).await;
    assert_eq!(status, 401);
    let (status, _) = post(addr, "/api/session", json!({"token": ann_token})).await;
    assert_eq!(status, 401);
    let (status, body) = post(addr, "/api/session", json!({"token": bob_token})).await;
    assert_eq!((status, &body["user"]["username"]), (200, &json!("bob")));
}

#[tokio::test]
async fn private_rooms_admit_members_only() {
    let app = app();
    let (ann_id, ann_token) = user(&app, "ann").await;
    let (bob_id, bob_token) = user(&app, "bob").await;
    let (_, cat_token) = user(&app, "cat").await;
    let mut ann = signed_in(&app, &ann_token).await;
    let mut bob = signed_in(&app, &bob_token).await;
    let mut cat = signed_in(&app, &cat_token).await;
    let ann_topic = format!("user:{ann_id}");
    let bob_topic = format!("user:{bob_id}");
    ann.join(&ann_topic, json!({})).await.unwrap();
    bob.join(&bob_topic, json!({})).await.unwrap();

    let reply = ann
        .push(&ann_topic, "create_private", json!({"room": "secret"}))
        .await;
    assert_eq!(
        (reply.status.as_str(), &reply.response),
        ("ok", &json!({"room": "secret"}))
    );
    ann.join("room:secret", json!({})).await.unwrap();
    let sent = ann
        .push("room:secret", "new_msg", json!({"body": "for members"}))
        .await;
    assert_eq!(sent.status, "ok");

    // Non-members: no join, no history, no presence; only the reason.
    assert_eq!(bob.join("room:secret", json!({})).await, unauthorized());
    let history = bob
        .push("room:secret", "history", json!({"before_id": 1_000_000}))
        .await;
    assert_eq!(history.status, "error");
    assert!(history.response.get("messages").is_none());
    let mut g = guest(&app).await;
    assert_eq!(
        g.join("room:secret", json!({"username": "zed"})).await,
        unauthorized()
    );

    // Inviting into a room you are not in is refused; so is a public room.
    cat.join(&format!("user:{}", ann_id + 2), json!({}))
        .await
        .unwrap();
    let reply = cat
        .push(
            &format!("user:{}", ann_id + 2),
            "invite",
            json!({"room": "secret", "username": "cat"}),
        )
        .await;
    assert_eq!(
        (reply.status.as_str(), &reply.response),
        ("error", &json!({"reason": "unauthorized"}))
    );
    let reply = ann
        .push(
            &ann_topic,
            "invite",
            json!({"room": "lobby", "username": "bob"}),
        )
        .await;
    assert_eq!(reply.status, "error");
    // A private room cannot take the name of an existing room.
    let reply = ann
        .push(&ann_topic, "create_private", json!({"room": "secret"}))
        .await;
    assert_eq!(reply.status, "error");

    // Invited: bob is told on his own topic; once he accepts he may join and read the
    // history (before, the invitation is only pending: tests/rooms_invitations.rs).
    let reply = ann
        .push(
            &ann_topic,
            "invite",
            json!({"room": "secret", "username": "BOB"}),
        )
        .await;
    assert_eq!(reply.status, "ok");
    let invited = bob.assert_push(&bob_topic, "invited").await;
    assert_eq!(invited["room"], "secret");
    assert_eq!(invited["by"], "ann");
    let accepted = bob
        .push(&bob_topic, "accept_invite", json!({"room": "secret"}))
        .await;
    assert_eq!(accepted.status, "ok");
    let joined = bob.join("room:secret", json!({})).await.unwrap();
    assert_eq!(joined["messages"][0]["body"], "for members");

    // Leaving: every tab of bob hears it, and bob is a non-member again.
    bob.leave("room:secret").await;
    let reply = bob
        .push(&bob_topic, "leave_room", json!({"room": "secret"}))
        .await;
    assert_eq!(reply.status, "ok");
    assert_eq!(
        bob.assert_push(&bob_topic, "left").await,
        json!({"room": "secret"})
    );
    assert_eq!(bob.join("room:secret", json!({})).await, unauthorized());
}

#[tokio::test]
async fn direct_messages_admit_the_two_users_only() {
    let app = app();
    let (ann_id, ann_token) = user(&app, "ann").await;
    let (bob_id, bob_token) = user(&app, "bob").await;
    let (_, cat_token) = user(&app, "cat").await;
    let mut ann = signed_in(&app, &ann_token).await;
    let mut bob = signed_in(&app, &bob_token).await;
    let mut cat = signed_in(&app, &cat_token).await;
    let ann_topic = format!("user:{ann_id}");
    let bob_topic = format!("user:{bob_id}");
    ann.join(&ann_topic, json!({})).await.unwrap();
    bob.join(&bob_topic, json!({})).await.unwrap();

    let reply = ann
        .push(&ann_topic, "open_dm", json!({"username": "bob"}))
        .await;
    assert_eq!(reply.status, "ok");
    let room = reply.response["room"].as_str().unwrap().to_owned();
    assert_eq!(room, format!("dm.{ann_id}.{bob_id}"));
    assert_eq!(reply.response["title"], "bob");
    let note = bob.assert_push(&bob_topic, "dm").await;
    assert_eq!(
        (note["room"].as_str(), note["title"].as_str()),
        (Some(room.as_str()), Some("ann"))
    );

    let topic = format!("room:{room}");
    ann.join(&topic, json!({})).await.unwrap();
    assert_eq!(cat.join(&topic, json!({})).await, unauthorized());
    let mut g = guest(&app).await;
    assert_eq!(
        g.join(&topic, json!({"username": "zed"})).await,
        unauthorized()
    );
    // A DM with a user who does not exist, or a made-up DM name, is refused too.
    assert_eq!(
        ann.join(&format!("room:dm.{ann_id}.999"), json!({})).await,
        unauthorized()
    );
    assert_eq!(ann.join("room:dm.x", json!({})).await, unauthorized());

    // Unread: bob's sidebar learns of the message live, and from the list.
    let sent = ann
        .push(&topic, "new_msg", json!({"body": "hello bob"}))
        .await;
    let id = sent.response["id"].as_i64().unwrap();
    let activity = bob.assert_push(&bob_topic, "activity").await;
    assert_eq!(
        (activity["room"].as_str(), activity["id"].as_i64()),
        (Some(room.as_str()), Some(id))
    );
    let list = bob.push(&bob_topic, "rooms", json!({})).await.response;
    assert_eq!(list["rooms"][0]["room"], room.as_str());
    assert_eq!(list["rooms"][0]["unread"], 1);
    assert_eq!(list["rooms"][0]["title"], "ann");

    // bob reads it: the position is stored, every tab of bob hears, unread is 0.
    bob.join(&topic, json!({})).await.unwrap();
    let read = bob.push(&topic, "read", json!({"id": id})).await;
    assert_eq!(read.status, "ok");
    assert_eq!(
        bob.assert_push(&bob_topic, "read").await["last_read_id"],
        id
    );
    let list = bob.push(&bob_topic, "rooms", json!({})).await.response;
    assert_eq!(list["rooms"][0]["unread"], 0);
}

#[tokio::test]
async fn guests_keep_to_public_rooms_under_unregistered_names() {
    let app = app();
    let (ann_id, _) = user(&app, "ann").await;
    let mut g = guest(&app).await;
    assert_eq!(
        g.join(&format!("user:{ann_id}"), json!({})).await,
        unauthorized()
    );
    // A guest can neither create a private room nor open a DM: both live on user:<id>.
    assert_eq!(g.join("user:0", json!({})).await, unauthorized());
    assert_eq!(
        g.join("room:lobby", json!({"username": "\u{430}nn"})).await,
        Err(json!({"reason": "this name belongs to a registered user"}))
    );
    g.join("room:lobby", json!({"username": "zed"}))
        .await
        .unwrap();
    let sent = g.push("room:lobby", "new_msg", json!({"body": "hi"})).await;
    assert_eq!(sent.status, "ok");
    let seen = g.assert_push("room:lobby", "new_msg").await;
    assert_eq!(seen["username"], "zed");
    let state = g.assert_push("room:lobby", "presence_state").await;
    let (key, entry) = state.as_object().unwrap().iter().next().unwrap();
    assert!(key.starts_with("guest:"), "{key}");
    assert_eq!(entry["metas"][0]["guest"], true);
    assert_eq!(entry["metas"][0]["username"], "zed");
}

#[tokio::test]
async fn another_users_topic_is_refused_and_presence_is_one_entry_per_account() {
    let app = app();
    let (ann_id, ann_token) = user(&app, "ann").await;
    let (_, bob_token) = user(&app, "bob").await;
    let mut bob = signed_in(&app, &bob_token).await;
    assert_eq!(
        bob.join(&format!("user:{ann_id}"), json!({})).await,
        unauthorized()
    );

    let mut tab1 = signed_in(&app, &ann_token).await;
    let mut tab2 = signed_in(&app, &ann_token).await;
    tab1.join("room:lobby", json!({"username": "mallory"}))
        .await
        .unwrap();
    tab2.join("room:lobby", json!({})).await.unwrap();
    let state = tab2.assert_push("room:lobby", "presence_state").await;
    let entry = &state[format!("user:{ann_id}")];
    assert_eq!(entry["metas"].as_array().unwrap().len(), 2, "{state}");
    // The account name wins over any name in the join params.
    assert_eq!(entry["metas"][0]["username"], "ann");
    assert_eq!(state.as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn the_directory_lists_public_rooms_with_member_and_online_counts() {
    let app = app();
    let addr = serve(&app.endpoint).await;
    let (ann_id, ann_token) = user(&app, "ann").await;
    let mut ann = signed_in(&app, &ann_token).await;
    let mut g = guest(&app).await;
    ann.join("room:lobby", json!({})).await.unwrap();
    g.join("room:lobby", json!({"username": "zed"}))
        .await
        .unwrap();
    ann.join(&format!("user:{ann_id}"), json!({}))
        .await
        .unwrap();
    let reply = ann
        .push(
            &format!("user:{ann_id}"),
            "create_private",
            json!({"room": "hidden"}),
        )
        .await;
    assert_eq!(reply.status, "ok");
    g.assert_push("room:lobby", "presence_state").await;

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /api/rooms HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    let body: Value = serde_json::from_str(body).unwrap();
    // Private rooms are not listed; the guest is online but not a member.
    assert_eq!(
        body,
        json!({"rooms": [{"room": "lobby", "members": 1, "online": 2}]})
    );
}
