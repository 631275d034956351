//! The WebSocket transport over real TCP: handshake, framing, close codes, back-pressure.

use std::future::Future;

use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload as WsPayload, WebSocket};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use phx_server::{
    Channel, ChannelContext, CheckOrigin, Connect, ConnectInfo, Connected, HandleResult, Params,
    Payload, Refusal, SocketConfig,
};
use serde_json::{json, Value};
use tokio::net::TcpStream;

mod support;
use support::start;

struct Executor;

impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for Executor {
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// Refuses `reject=true`; assigns the auth token.
struct TestConnect;

impl Connect for TestConnect {
    /// The `authToken` phoenix.js passed, if any.
    type Assigns = Option<String>;

    async fn connect(
        &self,
        params: &Params,
        info: &ConnectInfo,
    ) -> Result<Connected<Option<String>>, Refusal> {
        if params.get_str("reject") == Some("true") {
            return Err(Refusal::forbidden());
        }
        Ok(Connected::new(info.auth_token.clone()))
    }
}

#[derive(Default)]
struct Echo;

impl Channel for Echo {
    type Assigns = Option<String>;
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
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        match event {
            "echo" => HandleResult::ok(p),
            "token" => {
                let token = ctx.assigns().clone();
                HandleResult::ok(Payload::json(&json!({ "token": token })))
            }
            "flood" => {
                // 200 frames of 256 KiB each to this topic, whether the client reads or not.
                let big = "x".repeat(256 * 1024);
                for _ in 0..200 {
                    let _ = ctx.broadcast("big", Payload::json(&json!({ "data": big })));
                }
                HandleResult::NoReply
            }
            _ => HandleResult::NoReply,
        }
    }
}

fn default_config() -> SocketConfig<Option<String>> {
    SocketConfig::new(TestConnect).channel("room:*", Echo::default)
}

async fn connect(
    port: u16,
    query: &str,
    protocol: Option<&str>,
) -> Result<WebSocket<TokioIo<Upgraded>>, StatusCode> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = Request::builder()
        .method("GET")
        .uri(format!("http://127.0.0.1:{port}/socket/websocket?{query}"))
        .header("Host", format!("127.0.0.1:{port}"))
        .header("Upgrade", "websocket")
        .header("Connection", "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13");
    if let Some(p) = protocol {
        req = req.header("Sec-WebSocket-Protocol", p);
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    match fastwebsockets::handshake::client(&Executor, req, stream).await {
        Ok((ws, resp)) => {
            if let Some(p) = protocol {
                let answered = resp
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap().to_owned());
                assert_eq!(answered.as_deref(), Some("phoenix"), "offered {p}");
            }
            Ok(ws)
        }
        Err(fastwebsockets::WebSocketError::InvalidStatusCode(code)) => {
            Err(StatusCode::from_u16(code).unwrap())
        }
        Err(other) => panic!("handshake failed: {other}"),
    }
}

async fn send(ws: &mut WebSocket<TokioIo<Upgraded>>, frame: Value) {
    let text = frame.to_string();
    ws.write_frame(Frame::text(WsPayload::Owned(text.into_bytes())))
        .await
        .unwrap();
}

/// Next data frame as JSON, or the close code.
async fn recv(ws: &mut WebSocket<TokioIo<Upgraded>>) -> Result<Value, u16> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.read_frame())
            .await
            .expect("frame in time");
        let frame = frame.expect("readable frame");
        match frame.opcode {
            OpCode::Text => return Ok(serde_json::from_slice(&frame.payload).unwrap()),
            OpCode::Close => return Err(u16::from_be_bytes([frame.payload[0], frame.payload[1]])),
            _ => continue,
        }
    }
}

fn ok(response: Value) -> Value {
    json!({"response": response, "status": "ok"})
}

#[tokio::test]
async fn join_echo_and_heartbeat_round_trip() {
    let (_e, port) = start(default_config).await;
    let mut ws = connect(port, "vsn=2.0.0", None).await.unwrap();
    send(&mut ws, json!(["3", "3", "room:a", "phx_join", {}])).await;
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!(["3", "3", "room:a", "phx_reply", ok(json!({}))]))
    );
    send(&mut ws, json!(["3", "4", "room:a", "echo", {"n": 1}])).await;
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!([
            "3",
            "4",
            "room:a",
            "phx_reply",
            ok(json!({"n": 1}))
        ]))
    );
    send(&mut ws, json!([null, "5", "phoenix", "heartbeat", {}])).await;
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!([null, "5", "phoenix", "phx_reply", ok(json!({}))]))
    );
}

#[tokio::test]
async fn v1_is_the_default_serializer_and_bad_vsn_is_refused() {
    let (_e, port) = start(default_config).await;
    let mut ws = connect(port, "", None).await.unwrap();
    send(
        &mut ws,
        json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "1"}),
    )
    .await;
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!({"event": "phx_reply", "payload": ok(json!({})), "ref": "1", "topic": "phoenix"}))
    );
    for vsn in ["2.1.0", "abc", "123.1.1"] {
        assert_eq!(
            connect(port, &format!("vsn={vsn}"), None).await.err(),
            Some(StatusCode::FORBIDDEN)
        );
    }
}

#[tokio::test]
async fn refused_connect_is_403() {
    let (_e, port) = start(default_config).await;
    assert_eq!(
        connect(port, "reject=true&vsn=2.0.0", None).await.err(),
        Some(StatusCode::FORBIDDEN)
    );
}

#[tokio::test]
async fn auth_token_subprotocol_is_answered_and_decoded() {
    let (_e, port) = start(default_config).await;
    // "s3cr3t" → standard base64 without padding.
    let mut ws = connect(
        port,
        "vsn=2.0.0",
        Some("phoenix, base64url.bearer.phx.czNjcjN0"),
    )
    .await
    .unwrap();
    send(&mut ws, json!(["3", "3", "room:a", "phx_join", {}])).await;
    recv(&mut ws).await.unwrap();
    send(&mut ws, json!(["3", "4", "room:a", "token", {}])).await;
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!([
            "3",
            "4",
            "room:a",
            "phx_reply",
            ok(json!({"token": "s3cr3t"}))
        ]))
    );
}

#[tokio::test]
async fn malformed_frame_closes_1011_and_server_lives_on() {
    let (_e, port) = start(default_config).await;
    let mut ws = connect(port, "vsn=2.0.0", None).await.unwrap();
    ws.write_frame(Frame::text(WsPayload::Owned(b"[\"3\",\"3\"".to_vec())))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await, Err(1011));
    let mut ws = connect(port, "vsn=2.0.0", None).await.unwrap();
    ws.write_frame(Frame::binary(WsPayload::Owned(vec![9, 0, 0])))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await, Err(1011));
    let mut ws = connect(port, "vsn=2.0.0", None).await.unwrap();
    send(&mut ws, json!([null, "1", "phoenix", "heartbeat", {}])).await;
    assert!(recv(&mut ws).await.is_ok());
}

#[tokio::test]
async fn binary_push_reaches_the_channel_and_binary_reply_is_kind_1() {
    let (_e, port) = start(default_config).await;
    let mut ws = connect(port, "vsn=2.0.0", None).await.unwrap();
    send(&mut ws, json!(["3", "3", "room:a", "phx_join", {}])).await;
    recv(&mut ws).await.unwrap();
    // kind 0 client push: join_ref "3", ref "5", topic "room:a", event "echo", payload 01 02.
    let mut frame = vec![0, 1, 1, 6, 4];
    frame.extend_from_slice(b"35room:aecho");
    frame.extend_from_slice(&[1, 2]);
    ws.write_frame(Frame::binary(WsPayload::Owned(frame)))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.read_frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.opcode, OpCode::Binary);
    let mut expected = vec![1, 1, 1, 6, 2];
    expected.extend_from_slice(b"35room:aok");
    expected.extend_from_slice(&[1, 2]);
    assert_eq!(&reply.payload[..], &expected[..]);
}

#[tokio::test]
async fn idle_socket_is_closed_with_1002() {
    let (_e, port) = start(|| default_config().timeout(Duration::from_millis(200))).await;
    let mut ws = connect(port, "vsn=2.0.0", None).await.unwrap();
    assert_eq!(recv(&mut ws).await, Err(1002));
}

#[tokio::test]
async fn disconnect_by_socket_id_closes_1001() {
    struct WithId;
    impl Connect for WithId {
        type Assigns = Option<String>;

        async fn connect(
            &self,
            params: &Params,
            _: &ConnectInfo,
        ) -> Result<Connected<Option<String>>, Refusal> {
            Ok(Connected {
                assigns: None,
                id: params.get_str("id").map(str::to_owned),
            })
        }
    }
    let (endpoint, port) =
        start(|| SocketConfig::new(WithId).channel("room:*", Echo::default)).await;
    let mut a = connect(port, "id=u1&vsn=2.0.0", None).await.unwrap();
    let mut b = connect(port, "id=u2&vsn=2.0.0", None).await.unwrap();
    // Make sure both sockets are registered before disconnecting.
    for ws in [&mut a, &mut b] {
        send(ws, json!([null, "1", "phoenix", "heartbeat", {}])).await;
        recv(ws).await.unwrap();
    }
    endpoint.disconnect("u1");
    assert_eq!(recv(&mut a).await, Err(1001));
    send(&mut b, json!([null, "2", "phoenix", "heartbeat", {}])).await;
    assert!(recv(&mut b).await.is_ok());
}

#[tokio::test]
async fn origin_is_checked_before_connect() {
    let (_e, port) =
        start(|| default_config().check_origin(CheckOrigin::Allowed(vec!["//example.com".into()])))
            .await;
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = Request::builder()
        .uri(format!(
            "http://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"
        ))
        .header("Host", "127.0.0.1")
        .header("Origin", "http://evil.com")
        .header("Upgrade", "websocket")
        .header("Connection", "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let result = fastwebsockets::handshake::client(&Executor, req, stream).await;
    assert!(matches!(
        result,
        Err(fastwebsockets::WebSocketError::InvalidStatusCode(403))
    ));
}

#[tokio::test]
async fn a_reader_that_falls_behind_is_closed_1013_not_buffered_forever() {
    flood_until_closed(|| default_config().outbound_capacity(8)).await;
}

#[tokio::test]
async fn queued_bytes_are_bounded_too_not_only_frames() {
    // 1 024 frames allowed, but 200 × 256 KiB is far over the 8 MiB byte bound.
    flood_until_closed(default_config).await;
}

async fn flood_until_closed(config: fn() -> SocketConfig<Option<String>>) {
    let (_e, port) = start(config).await;
    let mut ws = connect(port, "vsn=2.0.0", None).await.unwrap();
    send(&mut ws, json!(["3", "3", "room:a", "phx_join", {}])).await;
    recv(&mut ws).await.unwrap();
    send(&mut ws, json!(["3", "4", "room:a", "flood", {}])).await;
    // The handler queues 200 frames of 256 KiB without yielding: far more than the
    // queue (8 frames) plus the kernel's socket buffers hold.
    let mut received = 0;
    let code = loop {
        match recv(&mut ws).await {
            Ok(_) => received += 1,
            Err(code) => break code,
        }
    };
    assert_eq!(code, 1013);
    assert!(
        received < 200,
        "some frames were dropped with the connection ({received} arrived)"
    );
}
