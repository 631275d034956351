//! Runs the real `chat-app` binary: a page directory it accepts, start and wait for its
//! start line, plain HTTP requests.

#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const BIN: &str = env!("CARGO_BIN_EXE_chat-app");

/// A `js-client/`-shaped directory (index.html and phoenix.mjs), so the tests do not
/// depend on `npm ci` having run.
pub fn page_dir(with_phoenix: bool) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chat-app-page-{}-{}",
        std::process::id(),
        with_phoenix
    ));
    let module = dir.join("node_modules/phoenix/priv/static");
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html>").unwrap();
    if with_phoenix {
        std::fs::write(module.join("phoenix.mjs"), "export {}").unwrap();
    }
    dir
}

/// The binary with a clean environment for its settings.
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "DATABASE_URL",
        "API_KEY",
        "RUST_LOG",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "STATIC_DIR",
        "PORT",
        "BIND",
        "METRICS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A running app; killed when dropped.
pub struct App {
    pub child: Child,
    pub addr: String,
    pub log: mpsc::Receiver<String>,
}

impl App {
    /// Starts `cmd` on a free port and waits (up to 30 s) for its start line.
    pub fn start(mut cmd: Command) -> Self {
        cmd.env("PORT", "0");
        let mut child = cmd.spawn().expect("spawn chat-app");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chat-app did not start; its log:\n{}", seen.join("\n"));
            };
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap().to_owned();
                return Self {
                    child,
                    addr,
                    log: rx,
                };
            }
            seen.push(line);
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `method path` with `body` (and `Authorization: Bearer key` if given) over HTTP/1.1:
/// (status, body).
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(
        addr.replace("[::]", "[::1]")
            .replace("0.0.0.0", "127.0.0.1"),
    )
    .await
    .unwrap();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("HTTP answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub async fn get(addr: &str, path: &str) -> (u16, String) {
    request(addr, "GET", path, None, "").await
}
