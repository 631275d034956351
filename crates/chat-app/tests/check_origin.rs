//! The chat app's origin policy, through the real binary: invalid `CHECK_ORIGIN` values
//! stop start-up, and the default lets in only pages the app serves itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The chat app with the memory store on a free loopback port, plus `env`.
fn chat_app(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-app"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("CHECK_ORIGIN")
        .env_remove("PHX_HOST")
        .env_remove("RUST_LOG")
        .env("PORT", "0")
        .env("BIND", "127.0.0.1")
        .env("LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A started chat app, killed when dropped.
struct Running {
    child: Child,
    port: u16,
    log: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &[(&str, &str)]) -> Running {
    // Owned by the guard from the start: killed even if this panics.
    let mut app = Running {
        child: chat_app(env).spawn().expect("chat-app starts"),
        port: 0,
        log: Vec::new(),
    };
    let (lines, received) = mpsc::channel();
    let stdout = app.child.stdout.take().expect("piped stdout");
    let stderr = app.child.stderr.take().expect("piped stderr");
    for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
        let lines = lines.clone();
        // Reads until the app exits: a closed pipe would fail the app's log writes.
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    // Only the readers hold a sender now: an app that exits at start ends the wait
    // below at once with what it printed.
    drop(lines);
    let deadline = Instant::now() + TIMEOUT;
    while app.port == 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = received.recv_timeout(left) else {
            panic!("chat-app printed no 'listening on' line:\n{:?}", app.log);
        };
        if let Some(port) = line
            .split("listening on http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|port| port.parse().ok())
        {
            app.port = port;
        }
        app.log.push(line);
    }
    app
}

/// The status of a WebSocket handshake to the app with these `Host` and `Origin`.
fn websocket_status(port: u16, host: &str, origin: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to chat-app");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line).unwrap();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!("no status line for Host {host}, Origin {origin}: {status_line:?}")
        })
}

#[test]
fn invalid_check_origin_values_stop_start_up_naming_the_value() {
    for value in [
        "yes",
        "1",
        "*",
        "example.com",
        "",
        "//a.com,",
        "http://evil.test\\@a.com",
    ] {
        let mut child = chat_app(&[("CHECK_ORIGIN", value)])
            .spawn()
            .expect("chat-app starts");
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("chat-app kept running with CHECK_ORIGIN={value:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            !status.success(),
            "CHECK_ORIGIN={value:?} exited with {status}"
        );
        assert!(
            stderr.contains(&format!("'{value}'")) && stderr.contains("CHECK_ORIGIN"),
            "the message names the value and the setting: {stderr}"
        );
        assert!(
            stderr.contains("expected `true`, `false`, or a comma-separated list of origins"),
            "the message lists the accepted forms: {stderr}"
        );
    }
}

#[test]
fn the_default_policy_allows_only_the_apps_own_hosts() {
    let app = start(&[]);
    let port = app.port;
    assert!(
        app.log
            .iter()
            .any(|line| line.contains("origin=only pages from")
                && line.contains(&format!("//localhost:{port}"))),
        "the policy is on the start line: {:?}",
        app.log
    );
    let own = format!("127.0.0.1:{port}");
    for origin in [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        format!("http://[::1]:{port}"),
        format!("https://localhost:{port}"),
    ] {
        assert_eq!(websocket_status(port, &own, &origin), 101, "{origin}");
    }
    for origin in [
        "http://evil.test".to_owned(),
        format!("http://evil.test:{port}"),
        "http://localhost".to_owned(),
        format!("http://localhost:{}", port.wrapping_add(1)),
        "null".to_owned(),
    ] {
        assert_eq!(websocket_status(port, &own, &origin), 403, "{origin}");
    }
    // DNS rebinding: the Host header agrees with the Origin and is not trusted.
    let rebound = format!("evil.test:{port}");
    assert_eq!(websocket_status(port, &rebound, "http://evil.test"), 403);
    assert_eq!(
        websocket_status(port, &rebound, &format!("http://evil.test:{port}")),
        403
    );
}

#[test]
fn the_configured_host_is_allowed_on_any_port() {
    let app = start(&[("PHX_HOST", "chat.example.org")]);
    let port = app.port;
    let own = format!("127.0.0.1:{port}");
    assert_eq!(
        websocket_status(port, &own, "https://chat.example.org"),
        101
    );
    assert_eq!(
        websocket_status(port, &own, "http://chat.example.org:8080"),
        101
    );
    assert_eq!(
        websocket_status(port, &own, "https://evil.example.org"),
        403
    );
    assert_eq!(
        websocket_status(port, &own, &format!("http://localhost:{port}")),
        101
    );
}

#[test]
fn an_explicit_list_replaces_the_default() {
    let app = start(&[("CHECK_ORIGIN", "//*.example.org, https://b.io")]);
    let port = app.port;
    let own = format!("127.0.0.1:{port}");
    assert_eq!(websocket_status(port, &own, "http://chat.example.org"), 101);
    assert_eq!(websocket_status(port, &own, "https://b.io"), 101);
    assert_eq!(websocket_status(port, &own, "http://b.io"), 403);
    assert_eq!(
        websocket_status(port, &own, &format!("http://localhost:{port}")),
        403
    );
}
