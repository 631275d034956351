//! Accounts in PostgreSQL (a database of each test's own): the store's rules, the
//! migration keeping existing rooms and messages, and — through the real binary — that a
//! password is never written in clear to the log or to any table.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chat_app::accounts::{AccountStore, PostgresAccounts, RoomKind};
use chat_app::store::{migrate, MIGRATIONS};
use support::{admin_url, TestDb};
use tokio_postgres::NoTls;

async fn client(db: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn the_postgres_account_store_keeps_the_rules() {
    let _ = admin_url();
    let db = TestDb::new().await;
    let store = PostgresAccounts::connect(&db.url(), 2).await.unwrap();
    let ann = store
        .create_user("Ann", "ann", "$argon2id$x")
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .create_user("ann", "ann", "$argon2id$y")
        .await
        .unwrap()
        .is_none());
    let bob = store
        .create_user("bob", "bob", "$argon2id$z")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.user_by_fold("ann").await.unwrap().unwrap().username,
        "Ann"
    );
    assert_eq!(store.user_by_id(bob.id).await.unwrap().unwrap().fold, "bob");

    store.create_session("s1", ann.id).await.unwrap();
    store.create_session("s2", ann.id).await.unwrap();
    store.create_session("s3", bob.id).await.unwrap();
    assert_eq!(store.session_user("s2").await.unwrap(), Some(ann.id));
    store.delete_sessions(ann.id).await.unwrap();
    assert_eq!(store.session_user("s1").await.unwrap(), None);
    assert_eq!(store.session_user("s3").await.unwrap(), Some(bob.id));

    assert!(store.claim_room("secret", RoomKind::Private).await.unwrap());
    assert!(!store.claim_room("secret", RoomKind::Public).await.unwrap());
    assert_eq!(
        store.room_kind("secret").await.unwrap(),
        Some(RoomKind::Private)
    );
    assert_eq!(store.room_kind("lobby").await.unwrap(), None);
    assert!(store.add_member("secret", ann.id).await.unwrap());
    assert!(!store.add_member("secret", ann.id).await.unwrap());
    assert!(store.add_member("lobby", ann.id).await.unwrap());
    assert!(store.is_member("secret", ann.id).await.unwrap());
    assert!(!store.is_member("secret", bob.id).await.unwrap());
    assert_eq!(store.members("secret").await.unwrap(), vec![ann.id]);
    store.mark_read(ann.id, "secret", 7).await.unwrap();
    store.mark_read(ann.id, "secret", 3).await.unwrap(); // never moves back
    assert!(store.claim_room("lobby", RoomKind::Public).await.unwrap());
    assert_eq!(
        store.public_rooms(10).await.unwrap(),
        vec![("lobby".to_owned(), 1)]
    );
    let list = store.memberships(ann.id).await.unwrap();
    assert_eq!(store.membership_count(ann.id).await.unwrap(), 2);
    assert_eq!(
        (list[0].room.as_str(), list[0].kind, list[0].last_read_id),
        ("lobby", RoomKind::Public, 0)
    );
    assert_eq!(
        (list[1].room.as_str(), list[1].kind, list[1].last_read_id),
        ("secret", RoomKind::Private, 7)
    );
}

#[tokio::test]
async fn the_accounts_migration_keeps_existing_rooms_and_messages() {
    let db = TestDb::new().await;
    let mut client = client(&db).await;
    // A database as the previous release left it: only the first migration.
    client.batch_execute(MIGRATIONS[0].1).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO schema_migrations (version) VALUES ('0001_create_rooms_and_messages');
             INSERT INTO rooms (name) VALUES ('lobby');
             INSERT INTO messages (room, username, body) VALUES ('lobby', 'ann', 'kept');",
        )
        .await
        .unwrap();
    // Every later migration is applied, in order (the list grows with the schema).
    let later: Vec<String> = MIGRATIONS[1..]
        .iter()
        .map(|(version, _)| (*version).to_owned())
        .collect();
    assert_eq!(later[0], "0002_create_accounts");
    assert_eq!(migrate(&mut client).await.unwrap(), later);
    assert!(
        migrate(&mut client).await.unwrap().is_empty(),
        "applied once"
    );
    let row = client
        .query_one("SELECT body FROM messages WHERE room = 'lobby'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "kept");
    let store = PostgresAccounts::connect(&db.url(), 1).await.unwrap();
    // Existing rooms stay public: recorded as such (with their folded names) by the
    // room-names migration.
    assert_eq!(
        store.room_kind("lobby").await.unwrap(),
        Some(RoomKind::Public),
        "existing rooms stay public"
    );
}

const TIMEOUT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "tr0ub4dor&3-horse-staple";

fn post(port: u16, path: &str, body: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response[9..12].parse().unwrap()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `DATABASE_URL` (or none): the child, its log so far and its
/// port, and the channel that receives the rest of the log.
fn start(database_url: Option<String>) -> (Killed, Vec<String>, u16, mpsc::Receiver<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-app"));
    match database_url {
        Some(url) => command.env("DATABASE_URL", url),
        None => command.env_remove("DATABASE_URL"),
    };
    let mut child = Killed(
        command
            .env("PORT", "0")
            .env("BIND", "127.0.0.1")
            .env("LOG_LEVEL", "debug")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chat-app starts"),
    );
    let (lines, received) = mpsc::channel();
    let out = child.0.stdout.take().unwrap();
    let err = child.0.stderr.take().unwrap();
    for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    // Only the readers hold a sender now: if the app exits at start (its pipes close),
    // the wait below ends at once with what it printed, not after TIMEOUT.
    drop(lines);
    let mut log = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let port: u16 = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = received
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no 'listening on' line: {log:?}"));
        let port = line
            .split("listening on http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|port| port.parse().ok());
        log.push(line);
        if let Some(port) = port {
            break port;
        }
    };
    (child, log, port, received)
}

#[test]
fn with_nothing_configured_accounts_are_in_memory_and_the_log_says_so() {
    let (child, mut log, _, received) = start(None);
    drop(child);
    while let Ok(line) = received.recv_timeout(Duration::from_millis(500)) {
        log.push(line);
    }
    assert!(
        log.iter()
            .any(|l| l.contains("accounts are kept in memory")),
        "{log:?}"
    );
}

#[test]
fn a_password_is_never_in_the_log_or_a_table_in_clear() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    let (child, mut log, port, received) = start(Some(db.url()));
    let body = format!(r#"{{"username":"ann","password":"{PASSWORD}"}}"#);
    assert_eq!(post(port, "/api/register", &body), 201);
    assert_eq!(post(port, "/api/login", &body), 200);
    let wrong = format!(r#"{{"username":"ann","password":"{PASSWORD}x"}}"#);
    assert_eq!(post(port, "/api/login", &wrong), 401);
    drop(child);
    while let Ok(line) = received.recv_timeout(Duration::from_millis(500)) {
        log.push(line);
    }
    let log = log.join("\n");
    assert!(
        log.contains("account registered"),
        "the log has the request: {log}"
    );
    assert!(
        !log.contains(PASSWORD),
        "the password is in the log:\n{log}"
    );

    rt.block_on(async {
        let client = client(&db).await;
        for table in [
            "users",
            "sessions",
            "memberships",
            "room_access",
            "rooms",
            "messages",
        ] {
            let rows = client
                .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
                .await
                .unwrap();
            for row in rows {
                let text: String = row.get(0);
                assert!(!text.contains(PASSWORD), "{table}: {text}");
            }
        }
        let hash: String = client
            .query_one("SELECT password_hash FROM users WHERE fold = 'ann'", &[])
            .await
            .unwrap()
            .get(0);
        assert!(hash.starts_with("$argon2id$"), "{hash}");
    });
}

#[tokio::test]
async fn of_several_nodes_starting_at_once_one_makes_the_secret_and_all_use_it() {
    let db = TestDb::new().await;
    // Eight "nodes", each with a pool of its own, each with a candidate of its own.
    let mut nodes = Vec::new();
    for _ in 0..8 {
        nodes.push(PostgresAccounts::connect(&db.url(), 1).await.unwrap());
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(nodes.len()));
    let tasks: Vec<_> = nodes
        .into_iter()
        .enumerate()
        .map(|(n, node)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let candidate = format!("candidate-{n}");
                (
                    candidate.clone(),
                    node.stored_secret(&candidate).await.unwrap(),
                )
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    let kept = &seen[0].1;
    assert!(seen.iter().all(|(_, secret)| secret == kept), "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|(candidate, _)| candidate == kept)
            .count(),
        1,
        "the secret is one of the candidates: {seen:?}"
    );
    // Later starts read it, whatever they propose.
    let later = PostgresAccounts::connect(&db.url(), 1).await.unwrap();
    assert_eq!(&later.stored_secret("another").await.unwrap(), kept);
    let rows = client(&db)
        .await
        .query_one("SELECT count(*) FROM secret_key_base", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(rows, 1);
}
