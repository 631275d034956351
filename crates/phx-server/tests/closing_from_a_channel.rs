//! A channel ends its own socket: `close_socket` (an orderly close with a code, after
//! what was already pushed) and `kill_socket` (the connection vanishes with no close
//! frame, as when Phoenix kills the transport process).

use phx_server::{AcceptAll, Channel, ChannelContext, HandleResult, Payload, SocketConfig};
use serde_json::json;

mod support;
use support::ws::{connect, recv, send};

#[derive(Default)]
struct Room;

impl Channel for Room {
    type Assigns = ();
    type Info = ();

    async fn join(
        &mut self,
        _: &str,
        _: Payload,
        _: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        Ok(Payload::empty_object())
    }

    async fn handle_in(
        &mut self,
        event: &str,
        _: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        match event {
            "close" => {
                let _ = ctx.push("bye", json!({}));
                ctx.close_socket(4001);
            }
            "kill" => ctx.kill_socket(),
            _ => {}
        }
        HandleResult::noreply()
    }
}

async fn joined(port: u16) -> support::ws::Ws {
    let mut ws = connect(port, "vsn=2.0.0").await.expect("upgrade");
    send(&mut ws, json!(["1", "1", "room:1", "phx_join", {}])).await;
    let reply = recv(&mut ws).await.expect("join reply");
    assert_eq!(reply[3], "phx_reply");
    ws
}

#[tokio::test]
async fn close_socket_writes_what_was_pushed_then_closes_with_the_code() {
    let (_endpoint, port) =
        support::start(|| SocketConfig::new(AcceptAll).channel("room:*", Room::default)).await;
    let mut ws = joined(port).await;
    send(&mut ws, json!(["1", "2", "room:1", "close", {}])).await;
    let pushed = recv(&mut ws).await.expect("the push made before the close");
    assert_eq!(pushed[3], "bye");
    assert_eq!(
        recv(&mut ws).await,
        Err(4001),
        "a close frame with the code"
    );
}

#[tokio::test]
async fn kill_socket_drops_the_connection_without_a_close_frame() {
    let (endpoint, port) =
        support::start(|| SocketConfig::new(AcceptAll).channel("room:*", Room::default)).await;
    let mut ws = joined(port).await;
    send(&mut ws, json!(["1", "2", "room:1", "kill", {}])).await;
    assert_eq!(
        recv(&mut ws).await,
        Err(1006),
        "the connection ends with no close frame"
    );
    // Its channels are gone too.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while endpoint.subscriber_count("room:1") != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "channel not released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
