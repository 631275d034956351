//! A raw WebSocket client for the integration tests: handshake, JSON frames, close codes.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload as WsPayload, WebSocket};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

pub type Ws = WebSocket<TokioIo<Upgraded>>;

struct Executor;

impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for Executor {
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// Opens `/socket/websocket?<query>`; `Err(status)` when the upgrade is refused.
pub async fn connect(port: u16, query: &str) -> Result<Ws, StatusCode> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    handshake(stream, port, query).await
}

/// Like [`connect`], with a small kernel receive buffer: a client that does not read
/// then pushes back on the server at once (loopback buffers otherwise grow to 32 MB
/// here and hide what the server keeps in its own memory).
pub async fn connect_small_window(port: u16, query: &str) -> Result<Ws, StatusCode> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    handshake(stream, port, query).await
}

async fn handshake(stream: TcpStream, port: u16, query: &str) -> Result<Ws, StatusCode> {
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
    match fastwebsockets::handshake::client(&Executor, req, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(fastwebsockets::WebSocketError::InvalidStatusCode(code)) => {
            Err(StatusCode::from_u16(code).unwrap())
        }
        Err(other) => panic!("handshake failed: {other}"),
    }
}

/// Sends one JSON text frame.
pub async fn send(ws: &mut Ws, frame: Value) {
    let text = frame.to_string();
    ws.write_frame(Frame::text(WsPayload::Owned(text.into_bytes())))
        .await
        .unwrap();
}

/// The next data frame as JSON, or the close code (generous timeout: a loaded 2-core
/// machine is slow, never a reason to fail).
pub async fn recv(ws: &mut Ws) -> Result<Value, u16> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), ws.read_frame())
            .await
            .expect("a frame within 20 s");
        let Ok(frame) = frame else {
            return Err(1006);
        };
        match frame.opcode {
            OpCode::Text => return Ok(serde_json::from_slice(&frame.payload).unwrap()),
            OpCode::Close => {
                return Err(frame
                    .payload
                    .get(..2)
                    .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]])))
            }
            _ => continue,
        }
    }
}

/// Sends a heartbeat with `r#ref` and waits for its reply (skipping other frames).
pub async fn heartbeat(ws: &mut Ws, r#ref: &str) {
    send(ws, json!([null, r#ref, "phoenix", "heartbeat", {}])).await;
    loop {
        let frame = recv(ws).await.expect("heartbeat reply before close");
        if frame[1] == r#ref && frame[2] == "phoenix" {
            assert_eq!(frame[4]["status"], "ok");
            return;
        }
    }
}

/// `{"response": response, "status": "ok"}`.
pub fn ok(response: Value) -> Value {
    json!({"response": response, "status": "ok"})
}

/// This process's resident set size in bytes (each tests/*.rs file is its own process).
pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/self/status")
}
