//! The chat app as `main.rs` wires its channels, on either store, for tests that go
//! through `phx_server::testing` sockets: the memory stores, or PostgreSQL in a database
//! of the test's own (dropped with the returned guard).

#![allow(dead_code)] // each test file uses a part

use std::sync::Arc;
use std::time::Duration;

use chat_app::accounts::guest_names::{GuestNames, HOLD};
use chat_app::accounts::session::Sessions;
use chat_app::accounts::{names, AccountStore};
use chat_app::connect::SessionConnect;
use chat_app::directory::RoomDirectory;
use chat_app::limit::{Rate, RateLimit};
use chat_app::room::RoomChannel;
use chat_app::store::{MemoryStore, PostgresStore, Store};
use phx_server::testing::TestSocket;
use phx_server::{Endpoint, SocketConfig};
use serde_json::json;

use crate::support::TestDb;

pub const SECRET: &[u8] = b"a test secret_key_base that is at least 64 bytes long, for tokens!";

/// Which stores the app runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Postgres,
}

pub struct App {
    pub endpoint: Endpoint,
    pub accounts: Arc<dyn AccountStore>,
    pub store: Arc<dyn Store>,
    pub sessions: Sessions,
    /// Keeps the test database while the app lives.
    pub db: Option<TestDb>,
}

impl App {
    pub async fn new(backend: Backend) -> Self {
        Self::with_accounts(backend, |a| a).await
    }

    /// [`App::new`] with the account store wrapped by `wrap`.
    pub async fn with_accounts(
        backend: Backend,
        wrap: impl FnOnce(Arc<dyn AccountStore>) -> Arc<dyn AccountStore>,
    ) -> Self {
        let db = match backend {
            Backend::Memory => None,
            Backend::Postgres => Some(TestDb::new().await),
        };
        let url = db.as_ref().map(TestDb::url);
        let store: Arc<dyn Store> = match &url {
            Some(url) => Arc::new(PostgresStore::connect(url, 8).await.unwrap()),
            None => Arc::new(MemoryStore::new()),
        };
        // As main.rs builds it: PostgreSQL with the members cache, or memory.
        let accounts = chat_app::accounts::wiring::accounts(
            url.as_deref(),
            8,
            Duration::from_secs(30),
            false,
            Some(std::str::from_utf8(SECRET).unwrap()),
        )
        .await
        .unwrap()
        .store;
        let accounts = wrap(accounts);
        let sessions = Sessions::new(SECRET, accounts.clone());
        let rooms = Arc::new(RoomDirectory::new(
            store.clone(),
            Rate::new(1_000_000, Duration::from_millis(1)),
        ));
        let typing = Arc::new(RateLimit::new(Rate::one_per(Duration::from_secs(1))));
        let user_channel = chat_app::accounts::wiring::user_channel(&accounts, &store, &rooms);
        let (room_store, room_accounts) = (store.clone(), accounts.clone());
        let guest_names = Arc::new(GuestNames::new(HOLD));
        let socket = SocketConfig::new(SessionConnect::new(sessions.clone()))
            .channel("room:*", move || {
                RoomChannel::new(room_store.clone(), rooms.clone(), typing.clone())
                    .with_accounts(room_accounts.clone())
                    .with_guest_names(guest_names.clone())
            })
            .channel("user:*", user_channel);
        let endpoint = Endpoint::builder()
            .socket("/socket", socket)
            .secret_key_base(SECRET.to_vec())
            .build();
        Self {
            endpoint,
            accounts,
            store,
            sessions,
            db,
        }
    }

    /// A registered user (made in the store: no Argon2 work): its id and a session token.
    pub async fn user(&self, name: &str) -> (i64, String) {
        let user = self
            .accounts
            .create_user(name, &names::fold(name), "$argon2id$not-used")
            .await
            .unwrap()
            .unwrap();
        let token = self.sessions.create(&user).await.unwrap();
        (user.id, token)
    }

    /// A socket signed in with `token`.
    pub async fn signed_in(&self, token: &str) -> TestSocket {
        TestSocket::connect(&self.endpoint, "/socket", json!({ "token": token }))
            .await
            .expect("a valid token connects")
    }

    /// A guest socket with `guest_key` (none: a random guest id).
    pub async fn guest(&self, guest_key: Option<&str>) -> TestSocket {
        let params = match guest_key {
            Some(key) => json!({ "guest_key": key }),
            None => json!({}),
        };
        TestSocket::connect(&self.endpoint, "/socket", params)
            .await
            .expect("guests connect")
    }

    /// A signed-in user with their `user:<id>` channel joined: (id, socket, topic).
    pub async fn user_with_channel(&self, name: &str) -> (i64, TestSocket, String) {
        let (id, token) = self.user(name).await;
        let mut socket = self.signed_in(&token).await;
        let topic = format!("user:{id}");
        socket.join(&topic, json!({})).await.unwrap();
        (id, socket, topic)
    }
}
