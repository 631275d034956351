//! Frame-level rules: unmasked client frames close with 1002
//! (RFC 6455 §5.1), and one limit applies alike to single frames and fragmented messages.

use fastwebsockets::{Frame, OpCode, Payload as WsPayload};
use phx_server::{AcceptAll, SocketConfig};
use serde_json::json;

mod support;
use support::start;
use support::ws::{connect, heartbeat, recv, Ws};

const LIMIT: usize = 4096;

fn config() -> SocketConfig {
    SocketConfig::new(AcceptAll).max_frame_size(LIMIT)
}

/// A heartbeat text of exactly `len` bytes (padded inside the payload).
fn heartbeat_of_len(len: usize) -> Vec<u8> {
    let bare = json!([null, "1", "phoenix", "heartbeat", {"pad": ""}]).to_string();
    let pad = "p".repeat(len - bare.len());
    let text = json!([null, "1", "phoenix", "heartbeat", {"pad": pad}]).to_string();
    assert_eq!(text.len(), len);
    text.into_bytes()
}

async fn send_fragmented(ws: &mut Ws, text: &[u8]) {
    let (a, b) = text.split_at(text.len() / 2);
    ws.write_frame(Frame::new(
        false,
        OpCode::Text,
        None,
        WsPayload::Owned(a.to_vec()),
    ))
    .await
    .unwrap();
    ws.write_frame(Frame::new(
        true,
        OpCode::Continuation,
        None,
        WsPayload::Owned(b.to_vec()),
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn an_unmasked_client_frame_closes_with_1002() {
    let (_e, port) = start(config).await;
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    ws.set_auto_apply_mask(false);
    let text = json!([null, "1", "phoenix", "heartbeat", {}]).to_string();
    ws.write_frame(Frame::text(WsPayload::Owned(text.into_bytes())))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await, Err(1002));
}

#[tokio::test]
async fn a_message_of_exactly_the_limit_is_accepted_single_or_fragmented() {
    let (_e, port) = start(config).await;
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    ws.write_frame(Frame::text(WsPayload::Owned(heartbeat_of_len(LIMIT))))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await.unwrap()[3], "phx_reply");
    send_fragmented(&mut ws, &heartbeat_of_len(LIMIT)).await;
    assert_eq!(recv(&mut ws).await.unwrap()[3], "phx_reply");
    heartbeat(&mut ws, "after").await;
}

#[tokio::test]
async fn one_byte_over_the_limit_closes_with_1009_single_or_fragmented() {
    let (_e, port) = start(config).await;
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    ws.write_frame(Frame::text(WsPayload::Owned(heartbeat_of_len(LIMIT + 1))))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await, Err(1009));
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    send_fragmented(&mut ws, &heartbeat_of_len(LIMIT + 1)).await;
    assert_eq!(recv(&mut ws).await, Err(1009));
}
