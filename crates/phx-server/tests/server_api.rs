//! The server API and the health endpoints over real HTTP: a backend in any language
//! broadcasts, disconnects and reads presence; load balancers read /healthz and /readyz.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use phx_server::{
    Channel, ChannelContext, Endpoint, HandleResult, JoinResult, Payload, ServerApi, SocketConfig,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::ws::{connect, heartbeat, recv, send};

const KEY: &str = "k3y-for-tests";

/// Tracks the `user` join param in presence.
#[derive(Default)]
struct Room;

impl Channel for Room {
    type Assigns = ();
    type Info = String;

    async fn join(
        &mut self,
        _t: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        let user: Value = p.parse().unwrap_or(Value::Null);
        if let Some(user) = user["user"].as_str() {
            ctx.send_info(user.to_owned());
        }
        Ok(Payload::empty_object())
    }

    async fn handle_info(
        &mut self,
        user: String,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let _ = ctx.presence().track(&user, json!({"via": "test"}));
        HandleResult::noreply()
    }

    async fn handle_in(
        &mut self,
        _e: &str,
        _p: Payload,
        _c: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::noreply()
    }
}

struct WithId;

impl phx_server::Connect for WithId {
    type Assigns = ();
    async fn connect(
        &self,
        params: &phx_server::Params,
        _: &phx_server::ConnectInfo,
    ) -> Result<phx_server::Connected<()>, phx_server::Refusal> {
        let mut connected = phx_server::Connected::new(());
        if let Some(id) = params.get_str("id") {
            connected = connected.with_id(id);
        }
        Ok(connected)
    }
}

async fn start(store_up: Arc<AtomicBool>) -> (Endpoint, u16) {
    let endpoint = Endpoint::builder()
        .server_api(ServerApi::new(KEY).body_limit(1024))
        .ready_check("store", move || {
            let up = store_up.load(Ordering::Relaxed);
            async move {
                if up {
                    Ok(())
                } else {
                    Err("connection refused".to_owned())
                }
            }
        })
        .socket(
            "/socket",
            SocketConfig::new(WithId).channel("room:*", Room::default),
        )
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = endpoint.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (endpoint, port)
}

/// One HTTP/1.1 request; returns the status and the body as JSON (or a string).
async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head[9..12].parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    (status, body)
}

fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {KEY}"))
}

async fn post_json(port: u16, path: &str, body: Value) -> (u16, Value) {
    let (name, value) = auth();
    http(
        port,
        "POST",
        path,
        &[(name, &value), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await
}

#[tokio::test]
async fn a_broadcast_over_http_reaches_subscribers_json_and_binary() {
    let (_e, port) = start(Arc::new(AtomicBool::new(true))).await;
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    send(&mut ws, json!(["1", "1", "room:lobby", "phx_join", {}])).await;
    recv(&mut ws).await.unwrap();
    let (status, body) = post_json(
        port,
        "/api/broadcast",
        json!({"topic": "room:lobby", "event": "notice", "payload": {"text": "hi"}}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!([null, null, "room:lobby", "notice", {"text": "hi"}]))
    );

    let (name, value) = auth();
    let (status, _) = http(
        port,
        "POST",
        "/api/broadcast?topic=room:lobby&event=blob",
        &[(name, &value), ("Content-Type", "application/octet-stream")],
        &[1, 2, 3],
    )
    .await;
    assert_eq!(status, 200);
    let frame = tokio::time::timeout(std::time::Duration::from_secs(20), ws.read_frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame.opcode, fastwebsockets::OpCode::Binary);
    // kind 2 (broadcast), topic and event lengths, then the bytes.
    assert_eq!(frame.payload[0], 2);
    assert!(frame.payload.ends_with(b"room:lobbyblob\x01\x02\x03"));
}

#[tokio::test]
async fn disconnect_over_http_closes_that_socket_1001_and_no_other() {
    let (_e, port) = start(Arc::new(AtomicBool::new(true))).await;
    let mut a = connect(port, "vsn=2.0.0&id=user:1").await.unwrap();
    let mut b = connect(port, "vsn=2.0.0&id=user:2").await.unwrap();
    heartbeat(&mut a, "1").await;
    heartbeat(&mut b, "1").await;
    let (status, _) = post_json(port, "/api/disconnect", json!({"socket_id": "user:1"})).await;
    assert_eq!(status, 200);
    assert_eq!(recv(&mut a).await, Err(1001));
    heartbeat(&mut b, "2").await;
}

#[tokio::test]
async fn presence_over_http_is_the_presence_state_clients_get() {
    let (_e, port) = start(Arc::new(AtomicBool::new(true))).await;
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    send(
        &mut ws,
        json!(["1", "1", "room:p", "phx_join", {"user": "ann"}]),
    )
    .await;
    recv(&mut ws).await.unwrap();
    let diff = recv(&mut ws).await.unwrap();
    assert_eq!(diff[3], "presence_diff");
    let (name, value) = auth();
    let (status, list) = http(
        port,
        "GET",
        "/api/presence?topic=room:p",
        &[(name, &value)],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["ann"]["metas"][0]["via"], "test");
    assert_eq!(
        list["ann"]["metas"][0]["phx_ref"],
        diff[4]["joins"]["ann"]["metas"][0]["phx_ref"]
    );
}

#[tokio::test]
async fn bad_requests_get_their_status_and_a_json_error_and_broadcast_nothing() {
    let (_e, port) = start(Arc::new(AtomicBool::new(true))).await;
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    send(&mut ws, json!(["1", "1", "room:lobby", "phx_join", {}])).await;
    recv(&mut ws).await.unwrap();
    let good = json!({"topic": "room:lobby", "event": "x", "payload": {}}).to_string();
    // (headers, body, expected status)
    type Case = (Vec<(&'static str, String)>, String, u16);
    let cases: Vec<Case> = vec![
        (vec![], good.clone(), 401),
        (
            vec![("Authorization", "Bearer nope".into())],
            good.clone(),
            403,
        ),
        (
            vec![("Authorization", "Basic abc".into())],
            good.clone(),
            401,
        ),
        (vec![auth()], "{not json".into(), 400),
        (
            vec![auth()],
            json!({"topic": "room:lobby", "event": "x", "payload": {}, "extra": 1}).to_string(),
            400,
        ),
        (
            vec![auth()],
            json!({"topic": "room:lobby"}).to_string(),
            400,
        ),
        (
            vec![auth()],
            json!({"topic": "room:lobby", "event": "x", "payload": [1]}).to_string(),
            400,
        ),
        (
            vec![auth()],
            json!({"topic": "room:lobby", "event": "x", "payload": {"pad": "p".repeat(2000)}})
                .to_string(),
            413,
        ),
    ];
    for (headers, body, expected) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, answer) =
            http(port, "POST", "/api/broadcast", &headers, body.as_bytes()).await;
        assert_eq!(status, expected, "{body}");
        assert!(answer["error"].is_string(), "a JSON error: {answer}");
    }
    let (name, value) = auth();
    let (status, _) = http(port, "GET", "/api/broadcast", &[(name, &value)], b"").await;
    assert_eq!(status, 405);
    // Nothing was broadcast: the next frame is the heartbeat reply.
    heartbeat(&mut ws, "after").await;
}

#[tokio::test]
async fn readiness_names_what_is_down() {
    let store_up = Arc::new(AtomicBool::new(true));
    let (endpoint, port) = start(store_up.clone()).await;
    assert_eq!(http(port, "GET", "/healthz", &[], b"").await.0, 200);
    assert_eq!(
        http(port, "GET", "/readyz", &[], b"").await,
        (200, json!({"status": "ready"}))
    );
    store_up.store(false, Ordering::Relaxed);
    assert_eq!(
        http(port, "GET", "/readyz", &[], b"").await,
        (
            503,
            json!({"status": "unavailable", "down": {"store": "connection refused"}})
        )
    );
    store_up.store(true, Ordering::Relaxed);
    assert_eq!(http(port, "GET", "/readyz", &[], b"").await.0, 200);
    assert!(!endpoint.is_draining(), "no drain began");
}
