//! Sessions across a real restart of the `chat-app` binary: on PostgreSQL without
//! `SECRET_KEY_BASE`, the secret is made once and kept in the database, so a token
//! issued before a restart still connects after it; a configured secret wins over the
//! stored one; in memory the start line says that sessions end with the process.

mod binary;
mod support;

use std::process::Command;
use std::time::Duration;

use binary::{command, page_dir, request, App};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The binary on `database_url` (none: memory), with `secret` as `SECRET_KEY_BASE`.
fn chat(database_url: Option<&str>, secret: Option<&str>, uploads: &std::path::Path) -> Command {
    let mut cmd = command();
    cmd.env_remove("SECRET_KEY_BASE")
        .env_remove("REDIS_URL")
        .env("STATIC_DIR", page_dir(true))
        .env("UPLOAD_DIR", uploads)
        .env("DATABASE_URL", database_url.unwrap_or(""));
    if let Some(secret) = secret {
        cmd.env("SECRET_KEY_BASE", secret);
    }
    cmd
}

fn loopback(addr: &str) -> String {
    addr.replace("0.0.0.0", "127.0.0.1")
}

/// The status of a WebSocket upgrade of `/socket/websocket` with `token`: 101 when the
/// connect hook accepts it, 403 when it refuses (what phoenix.js meets on reconnect).
async fn socket_status(addr: &str, token: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(loopback(addr))
        .await
        .unwrap();
    let head = format!(
        "GET /socket/websocket?token={token}&vsn=2.0.0 HTTP/1.1\r\nHost: localhost\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
        .await
        .expect("an answer to the upgrade within 10 s")
        .unwrap();
    let line = String::from_utf8_lossy(&buf);
    line[9..12].parse().unwrap_or_else(|_| panic!("{line:?}"))
}

async fn api(addr: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, body) = request(&loopback(addr), "POST", path, None, &body.to_string()).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_token_issued_before_a_restart_still_connects_after_it_on_postgresql() {
    let db = support::TestDb::new().await;
    let url = db.url();
    let uploads = tempfile::tempdir().unwrap();
    let credentials = json!({"username": "ann", "password": "correct horse battery"});

    let first = App::start(chat(Some(&url), None, uploads.path()));
    let (status, body) = api(&first.addr, "/api/register", credentials.clone()).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(socket_status(&first.addr, &token).await, 101);
    drop(first); // killed: a crash is a restart too

    let second = App::start(chat(Some(&url), None, uploads.path()));
    assert_eq!(
        socket_status(&second.addr, &token).await,
        101,
        "the token of before the restart was refused"
    );
    let (status, body) = api(&second.addr, "/api/session", json!({"token": token})).await;
    assert_eq!((status, &body["user"]["username"]), (200, &json!("ann")));
    drop(second);

    // A configured secret wins over the stored one: the stored one's tokens are refused,
    // and the configured one's survive a restart as before.
    let secret = "a configured secret_key_base of at least sixty-four bytes, for the test";
    let third = App::start(chat(Some(&url), Some(secret), uploads.path()));
    assert_eq!(socket_status(&third.addr, &token).await, 403);
    let (status, body) = api(&third.addr, "/api/login", credentials).await;
    assert_eq!(status, 200, "{body}");
    let configured_token = body["token"].as_str().unwrap().to_owned();
    drop(third);
    let fourth = App::start(chat(Some(&url), Some(secret), uploads.path()));
    assert_eq!(socket_status(&fourth.addr, &configured_token).await, 101);
    drop(fourth);
}

#[tokio::test]
async fn in_memory_the_start_line_says_sessions_end_with_the_process() {
    let uploads = tempfile::tempdir().unwrap();
    let mut cmd = chat(None, None, uploads.path());
    cmd.env("PORT", "0");
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let listening = line.contains("listening on http://");
            seen.push(line);
            if listening {
                break;
            }
        }
        seen
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "no start line in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = log.join().unwrap().join("\n");
    assert!(
        seen.contains("every session ends when it stops"),
        "no warning that sessions end:\n{seen}"
    );
    assert!(
        seen.contains(r#"secret_key_base="random for this process (sessions end when it stops)""#),
        "{seen}"
    );
}
