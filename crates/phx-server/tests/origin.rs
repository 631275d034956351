//! `check_origin` over real HTTP (§1.5): the default policy cannot be fooled by a
//! DNS-rebinding page, a garbled `Origin` or a backslash, on WebSocket and long poll.
//!
//! Requests are written byte by byte so that headers no HTTP client would send (bytes
//! that are not ASCII) reach the server as an attacker sends them.

use std::time::Duration;

use phx_server::{AcceptAll, Endpoint, SocketConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::start;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The default socket: `CheckOrigin::Host`, no endpoint host configured.
fn default_config() -> SocketConfig {
    SocketConfig::new(AcceptAll)
}

/// An HTTP/1.1 answer: status and, unless it switched protocols, the body.
struct Answer {
    status: u16,
    body: String,
}

/// Sends `request` (head only) and reads the answer.
async fn send_raw(port: u16, request: &[u8]) -> Answer {
    tokio::time::timeout(TIMEOUT, async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the answer's head");
            received.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        if status == 101 {
            return Answer {
                status,
                body: String::new(),
            };
        }
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no content-length in {head:?}"));
        while received.len() < head_end + length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the answer's body");
            received.extend_from_slice(&chunk[..n]);
        }
        Answer {
            status,
            body: String::from_utf8_lossy(&received[head_end..head_end + length]).into_owned(),
        }
    })
    .await
    .expect("the server answered within the timeout")
}

fn websocket_request(host: &str, origin: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nOrigin: "
    )
    .into_bytes();
    request.extend_from_slice(origin);
    request.extend_from_slice(b"\r\n\r\n");
    request
}

fn longpoll_request(host: &str, origin: &[u8]) -> Vec<u8> {
    let mut request =
        format!("GET /socket/longpoll?vsn=2.0.0 HTTP/1.1\r\nHost: {host}\r\nOrigin: ").into_bytes();
    request.extend_from_slice(origin);
    request.extend_from_slice(b"\r\n\r\n");
    request
}

/// WebSocket: 101 when accepted, 403 when refused.
async fn websocket_status(port: u16, host: &str, origin: &[u8]) -> u16 {
    send_raw(port, &websocket_request(host, origin))
        .await
        .status
}

/// Long poll: the status phoenix.js reads from the body (410 opens a session, 403 is
/// a refusal).
async fn longpoll_status(port: u16, host: &str, origin: &[u8]) -> u64 {
    let answer = send_raw(port, &longpoll_request(host, origin)).await;
    assert_eq!(answer.status, 200, "long poll answers in the body");
    let body: serde_json::Value = serde_json::from_str(&answer.body)
        .unwrap_or_else(|_| panic!("JSON body, got {:?}", answer.body));
    body["status"].as_u64().expect("a status in the body")
}

#[tokio::test]
async fn dns_rebinding_is_refused_on_websocket() {
    let (_endpoint, port) = start(default_config).await;
    let evil_host = format!("evil.test:{port}");
    assert_eq!(
        websocket_status(port, &evil_host, b"http://evil.test").await,
        403
    );
    assert_eq!(
        websocket_status(
            port,
            &evil_host,
            format!("http://evil.test:{port}").as_bytes()
        )
        .await,
        403
    );
    // The page the server is configured for (localhost by default) still connects.
    let origin = format!("http://localhost:{port}");
    assert_eq!(
        websocket_status(port, &format!("localhost:{port}"), origin.as_bytes()).await,
        101
    );
}

#[tokio::test]
async fn dns_rebinding_is_refused_on_long_poll() {
    let (_endpoint, port) = start(default_config).await;
    let evil_host = format!("evil.test:{port}");
    assert_eq!(
        longpoll_status(port, &evil_host, b"http://evil.test").await,
        403
    );
    assert_eq!(
        longpoll_status(
            port,
            &evil_host,
            format!("http://evil.test:{port}").as_bytes()
        )
        .await,
        403
    );
    let origin = format!("http://localhost:{port}");
    assert_eq!(
        longpoll_status(port, &format!("localhost:{port}"), origin.as_bytes()).await,
        410
    );
}

#[tokio::test]
async fn a_configured_host_replaces_localhost() {
    let endpoint = Endpoint::builder()
        .host("chat.example.org")
        .socket("/socket", default_config())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { endpoint.serve(listener).await });
    let host = format!("127.0.0.1:{port}");
    assert_eq!(
        websocket_status(port, &host, b"https://chat.example.org").await,
        101
    );
    assert_eq!(
        websocket_status(port, &host, format!("http://localhost:{port}").as_bytes()).await,
        403
    );
    assert_eq!(
        longpoll_status(port, &host, b"https://chat.example.org").await,
        410
    );
    assert_eq!(longpoll_status(port, &host, b"http://localhost").await, 403);
}

#[tokio::test]
async fn an_origin_that_is_not_ascii_is_refused_not_ignored() {
    let (_endpoint, port) = start(default_config).await;
    let host = format!("localhost:{port}");
    // Latin-1 é: not text as far as `HeaderValue::to_str` goes.
    let garbled = format!("http://localhost:{port}\u{e9}");
    let latin1: Vec<u8> = garbled.chars().map(|c| c as u8).collect();
    assert_eq!(websocket_status(port, &host, &latin1).await, 403);
    assert_eq!(longpoll_status(port, &host, &latin1).await, 403);
    // UTF-8 is refused as well.
    assert_eq!(websocket_status(port, &host, garbled.as_bytes()).await, 403);
    assert_eq!(longpoll_status(port, &host, garbled.as_bytes()).await, 403);
}

#[tokio::test]
async fn a_backslash_does_not_smuggle_an_allowed_host() {
    let (_endpoint, port) = start(default_config).await;
    let host = format!("localhost:{port}");
    for origin in [
        r"http://evil.test\@localhost",
        r"http://evil.test\@localhost:4000",
    ] {
        assert_eq!(
            websocket_status(port, &host, origin.as_bytes()).await,
            403,
            "{origin}"
        );
        assert_eq!(
            longpoll_status(port, &host, origin.as_bytes()).await,
            403,
            "{origin}"
        );
    }
    // Userinfo without the backslash is refused too.
    assert_eq!(
        websocket_status(port, &host, b"http://evil.test@localhost").await,
        403
    );
}

/// Every `warn` line phx-server logs on this test's thread (the runtime of a
/// `#[tokio::test]` is current-thread: the server's tasks run here too).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().map(str::to_owned).collect()
    }
}

#[tokio::test]
async fn a_refused_origin_is_explained_once_with_the_host_and_how_to_allow_it() {
    let captured = Captured::default();
    let _guard = captured.install();
    let (_endpoint, port) = start(default_config).await;
    // The usual mistake: the page opened as 127.0.0.1 while the host is localhost.
    let host = format!("127.0.0.1:{port}");
    let page = format!("http://127.0.0.1:{port}");
    assert_eq!(websocket_status(port, &host, page.as_bytes()).await, 403);

    let lines = captured.lines();
    assert_eq!(lines.len(), 1, "one line for the refusal: {lines:#?}");
    let line = &lines[0];
    for expected in [
        "WARN",
        "origin refused by check_origin",
        &format!("origin={page}"),
        "allowed=pages from host localhost",
        "EndpointBuilder::host(\"127.0.0.1\")",
        &format!("CheckOrigin::allowed([\"//127.0.0.1:{port}\"])"),
        "socket=/socket",
    ] {
        assert!(line.contains(expected), "{expected:?} missing from {line}");
    }

    // The same page again, on either transport: nothing more at warn.
    assert_eq!(websocket_status(port, &host, page.as_bytes()).await, 403);
    assert_eq!(longpoll_status(port, &host, page.as_bytes()).await, 403);
    assert_eq!(captured.lines().len(), 1, "{:#?}", captured.lines());

    // Another page, refused by long poll: explained too.
    let other = format!("http://[::1]:{port}");
    assert_eq!(longpoll_status(port, &host, other.as_bytes()).await, 403);
    let lines = captured.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[1].contains(&format!("CheckOrigin::allowed([\"//[::1]:{port}\"])")));
}

#[tokio::test]
async fn random_origins_cannot_flood_the_log() {
    let captured = Captured::default();
    let _guard = captured.install();
    let (_endpoint, port) = start(default_config).await;
    let host = format!("localhost:{port}");
    for i in 0..300 {
        let origin = format!("http://random-{i}.test");
        assert_eq!(websocket_status(port, &host, origin.as_bytes()).await, 403);
    }
    let lines = captured.lines();
    // 64 origins explained, then one line saying the rest go to debug.
    assert_eq!(
        lines.len(),
        65,
        "{:#?}",
        &lines[lines.len().saturating_sub(3)..]
    );
    assert!(lines[64].contains("logged at debug only"), "{}", lines[64]);
}
