//! Once a disconnect reaches a socket, nothing more is written to it (docs/protocol.md
//! §1.7): Phoenix closes the transport before the channel's reply.

use phx_server::{
    Channel, ChannelContext, Connect, ConnectInfo, Connected, HandleResult, Params, Payload,
    Refusal, SocketConfig,
};
use serde_json::json;

mod support;
use support::start;
use support::ws::{connect, heartbeat, ok, recv, send};

/// Socket id from the `id` param.
struct WithId;

impl Connect for WithId {
    type Assigns = ();

    async fn connect(&self, params: &Params, _: &ConnectInfo) -> Result<Connected<()>, Refusal> {
        Ok(Connected {
            id: params.get_str("id").map(str::to_owned),
            ..Connected::default()
        })
    }
}

/// `kick_me` pushes, disconnects its own socket id, then replies.
#[derive(Default)]
struct Kicker;

impl Channel for Kicker {
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
        event: &str,
        _p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        if event == "kick_me" {
            ctx.push("before", Payload::empty_object()).unwrap();
            let id = ctx.socket_id().unwrap().to_owned();
            ctx.pubsub().disconnect(&id);
            let _ = ctx.push("after", Payload::empty_object());
        }
        HandleResult::ok_empty()
    }
}

#[tokio::test]
async fn a_handler_disconnecting_its_own_socket_sends_no_reply() {
    let (_e, port) = start(|| SocketConfig::new(WithId).channel("room:*", Kicker::default)).await;
    let mut ws = connect(port, "id=u1&vsn=2.0.0").await.unwrap();
    let mut other = connect(port, "id=u2&vsn=2.0.0").await.unwrap();
    send(&mut ws, json!(["1", "1", "room:a", "phx_join", {}])).await;
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!(["1", "1", "room:a", "phx_reply", ok(json!({}))]))
    );
    send(&mut ws, json!(["1", "2", "room:a", "kick_me", {}])).await;
    // What was written before the disconnect arrives; then the close, nothing else.
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!(["1", null, "room:a", "before", {}]))
    );
    assert_eq!(recv(&mut ws).await, Err(1001));
    // Another socket is untouched.
    heartbeat(&mut other, "1").await;
}
