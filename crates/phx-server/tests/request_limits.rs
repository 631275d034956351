//! Hostile request lines against a live endpoint: over-long and over-nested queries are
//! answered 414/400 on every socket route, and the server keeps serving afterwards.
//!
//! Before the request line cap and the iterative params decoder, the depth-8 000 query
//! overflowed a worker thread's stack and aborted this whole test process.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload as WsPayload};
use http_body_util::Empty;
use hyper::Request;
use phx_server::{
    Channel, ChannelContext, Endpoint, HandleResult, Params, Payload, SocketConfig,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_REQUEST_LINE,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

/// Generous: the machine running the tests may be loaded.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Room;

impl Channel for Room {
    type Assigns = ();
    type Info = ();

    async fn join(
        &mut self,
        _t: &str,
        _p: Payload,
        _c: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        Ok(Payload::empty_object())
    }
    async fn handle_in(
        &mut self,
        _e: &str,
        p: Payload,
        _c: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::ok(p)
    }
}

async fn start() -> (Endpoint, u16) {
    support::start(|| SocketConfig::new(phx_server::AcceptAll).channel("room:*", Room::default))
        .await
}

/// `a[b][b]…=1&vsn=2.0.0` with `depth` bracketed segments.
fn nested_query(depth: usize) -> String {
    format!("a{}=1&vsn=2.0.0", "[b]".repeat(depth))
}

/// Sends one GET with `target` over a fresh connection and returns the status code of
/// the answer (WebSocket upgrade headers included when `upgrade`).
async fn status_of(port: u16, target: &str, upgrade: bool) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    if upgrade {
        head.push_str(
            "Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        );
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("a readable answer, not a reset");
        assert!(n > 0, "connection closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"))
}

struct Executor;

impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for Executor {
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// A normal phoenix.js-like connect on `/socket/websocket` and a heartbeat round trip.
async fn connect_and_heartbeat(port: u16, query: &str) {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = Request::builder()
        .method("GET")
        .uri(format!("http://127.0.0.1:{port}/socket/websocket?{query}"))
        .header("Host", format!("127.0.0.1:{port}"))
        .header("Upgrade", "websocket")
        .header("Connection", "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let (mut ws, _) = tokio::time::timeout(
        PATIENCE,
        fastwebsockets::handshake::client(&Executor, req, stream),
    )
    .await
    .expect("handshake in time")
    .expect("the server accepts a normal connect");
    let heartbeat = json!([null, "7", "phoenix", "heartbeat", {}]).to_string();
    ws.write_frame(Frame::text(WsPayload::Owned(heartbeat.into_bytes())))
        .await
        .unwrap();
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.read_frame())
            .await
            .expect("heartbeat reply in time")
            .expect("readable frame");
        if frame.opcode == OpCode::Text {
            let reply: Value = serde_json::from_slice(&frame.payload).unwrap();
            assert_eq!(
                reply,
                json!([null, "7", "phoenix", "phx_reply", {"response": {}, "status": "ok"}])
            );
            return;
        }
    }
}

/// The long-poll route answers a normal first GET with a new session (§7.2).
async fn longpoll_opens_a_session(port: u16) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "GET /socket/longpoll?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("long-poll answer in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""status":410"#), "{answer}");
}

const ROUTES: [(&str, bool); 3] = [
    ("/socket/websocket", true),
    ("/socket/websocket", false),
    ("/socket/longpoll", false),
];

#[tokio::test]
async fn a_query_nested_8000_deep_is_refused_414_and_the_server_lives_on() {
    let (_endpoint, port) = start().await;
    let deep = nested_query(8_000);
    assert!(deep.len() > 20_000, "about 24 KB, as in the report");
    for (path, upgrade) in ROUTES {
        let status = status_of(port, &format!("{path}?{deep}"), upgrade).await;
        assert_eq!(status, 414, "{path} upgrade={upgrade}");
    }
    connect_and_heartbeat(port, "vsn=2.0.0").await;
    longpoll_opens_a_session(port).await;
}

#[tokio::test]
async fn a_long_flat_query_is_refused_414_on_every_route() {
    let (_endpoint, port) = start().await;
    let flat = format!("vsn=2.0.0&pad={}", "x".repeat(24 * 1024));
    for (path, upgrade) in ROUTES.into_iter().chain([("/elsewhere", false)]) {
        let status = status_of(port, &format!("{path}?{flat}"), upgrade).await;
        assert_eq!(status, 414, "{path} upgrade={upgrade}");
    }
    connect_and_heartbeat(port, "vsn=2.0.0").await;
}

#[tokio::test]
async fn the_request_line_cap_is_exact() {
    let (_endpoint, port) = start().await;
    // `GET ` + target + ` HTTP/1.1` is the request line.
    let overhead = "GET ".len() + " HTTP/1.1".len();
    let target = |len: usize| {
        let base = "/socket/longpoll?vsn=2.0.0&pad=";
        format!("{base}{}", "x".repeat(len - overhead - base.len()))
    };
    assert_eq!(
        status_of(port, &target(DEFAULT_MAX_REQUEST_LINE), false).await,
        200,
        "a request line of exactly the cap is served"
    );
    assert_eq!(
        status_of(port, &target(DEFAULT_MAX_REQUEST_LINE + 1), false).await,
        414
    );
}

#[tokio::test]
async fn a_head_over_the_header_limit_is_answered_431_not_dropped() {
    let (_endpoint, port) = start().await;
    let huge = format!(
        "/socket/longpoll?pad={}",
        "x".repeat(DEFAULT_MAX_HEADER_BYTES)
    );
    assert_eq!(status_of(port, &huge, false).await, 431);
    connect_and_heartbeat(port, "vsn=2.0.0").await;
}

#[tokio::test]
async fn params_nested_past_the_cap_are_refused_400_on_both_transports() {
    let (_endpoint, port) = start().await;
    let too_deep = nested_query(Params::MAX_DEPTH + 1);
    assert!(too_deep.len() < 200, "short: only the nesting is wrong");
    for (path, upgrade) in ROUTES {
        let status = status_of(port, &format!("{path}?{too_deep}"), upgrade).await;
        assert_eq!(status, 400, "{path} upgrade={upgrade}");
    }
    // The deepest allowed key connects.
    connect_and_heartbeat(port, &nested_query(Params::MAX_DEPTH)).await;
    longpoll_opens_a_session(port).await;
}
