//! `GET /metrics`: every counter moves by exactly what a scripted session did, and the
//! output is Prometheus text. One test per file: the recorder is process-wide.

use std::collections::HashMap;
use std::time::Duration;

use phx_server::{
    AcceptAll, Channel, ChannelContext, Endpoint, HandleResult, JoinResult, Payload, SocketConfig,
};
use serde_json::json;

mod support;
use support::ws::{connect, heartbeat, recv, send};

#[derive(Default)]
struct Room;

impl Channel for Room {
    type Assigns = ();
    type Info = ();

    async fn join(
        &mut self,
        topic: &str,
        _p: Payload,
        _c: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        match topic {
            "room:closed" => Err(json!({"reason": "closed"}).into()),
            _ => Ok(Payload::empty_object()),
        }
    }

    async fn handle_in(
        &mut self,
        _e: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let _ = ctx.broadcast("news", p);
        HandleResult::ok_empty()
    }
}

async fn start() -> (Endpoint, u16) {
    let endpoint = Endpoint::builder()
        .metrics(true)
        .socket(
            "/socket",
            SocketConfig::new(AcceptAll).channel("room:*", Room::default),
        )
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = endpoint.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (endpoint, port)
}

/// `/metrics` parsed as Prometheus text: `name{labels}` → value. Panics on a line
/// that is not a comment, blank, or `series value`.
async fn scrape(port: u16) -> HashMap<String, f64> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/plain"));
    let mut series = HashMap::new();
    for line in body.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value.parse().expect("a number");
        let name_part = name.split('{').next().unwrap();
        assert!(
            name_part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name_part:?}"
        );
        series.insert(name.to_owned(), value);
    }
    series
}

fn get(series: &HashMap<String, f64>, name: &str) -> f64 {
    series.get(name).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_by_exactly_what_a_session_did() {
    let (_endpoint, port) = start().await;
    let before = scrape(port).await;

    let mut a = connect(port, "vsn=2.0.0").await.unwrap();
    let mut b = connect(port, "vsn=2.0.0").await.unwrap();
    for ws in [&mut a, &mut b] {
        send(ws, json!(["1", "1", "room:lobby", "phx_join", {}])).await; // 2 joins ok
        recv(ws).await.unwrap();
    }
    send(&mut a, json!(["2", "2", "room:closed", "phx_join", {}])).await; // 1 refused
    recv(&mut a).await.unwrap();
    send(&mut a, json!(["3", "3", "room:x", "nope", {}])).await; // not joined: unmatched
    recv(&mut a).await.unwrap();
    send(&mut a, json!(["1", "4", "room:lobby", "say", {"n": 1}])).await; // 1 broadcast → 2
    for _ in 0..2 {
        recv(&mut a).await.unwrap(); // the broadcast and the reply, any order
    }
    recv(&mut b).await.unwrap();
    heartbeat(&mut a, "h").await;
    drop(a);
    drop(b);
    // Both sockets closed: wait until the gauge says so.
    let mut after = scrape(port).await;
    for _ in 0..200 {
        if get(&after, r#"phx_sockets_open{transport="websocket"}"#)
            == get(&before, r#"phx_sockets_open{transport="websocket"}"#)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = scrape(port).await;
    }

    let delta = |name: &str| get(&after, name) - get(&before, name);
    assert_eq!(
        delta(r#"phx_sockets_opened_total{transport="websocket"}"#),
        2.0
    );
    assert_eq!(
        delta(r#"phx_sockets_closed_total{transport="websocket",reason="client"}"#),
        2.0
    );
    assert_eq!(delta(r#"phx_sockets_open{transport="websocket"}"#), 0.0);
    assert_eq!(delta(r#"phx_joins_total{route="room:*"}"#), 3.0);
    assert_eq!(delta(r#"phx_join_errors_total{route="room:*"}"#), 1.0);
    assert_eq!(
        delta(r#"phx_channels_joined{route="room:*"}"#),
        0.0,
        "all left again"
    );
    // 3 joins, 1 unmatched push, 1 event, 1 heartbeat.
    assert_eq!(
        delta(r#"phx_messages_in_total{transport="websocket"}"#),
        6.0
    );
    assert_eq!(delta("phx_broadcasts_total"), 1.0);
    assert_eq!(delta("phx_deliveries_total"), 2.0);
    // Replies: 3 joins, unmatched, the event's; the heartbeat's.
    assert_eq!(delta("phx_messages_out_total"), 6.0);
    assert_eq!(
        delta(r#"phx_handle_in_duration_seconds_count{route="room:*"}"#),
        1.0
    );
}
