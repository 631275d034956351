//! Broadcasts from Phoenix nodes (the Redis adapter's Phoenix mode hands them to the node
//! through `Inbound::foreign_broadcast`) reach channels and sockets the way a Phoenix
//! node's dispatcher hands them out: the fastlane (`Phoenix.Channel.Server`) writes them
//! to sockets unless the channel intercepts the event; `Phoenix.PubSub`'s plain sends run
//! every channel's `handle_out`; `disconnect` on a socket id closes those sockets. The
//! wire format itself is tested with real Erlang in `conformance-tests/interop`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use phx_server::cluster::{Adapter, Dispatch, Inbound};
use phx_server::testing::TestSocket;
use phx_server::{
    Channel, ChannelContext, Connect, ConnectInfo, Connected, Endpoint, HandleResult, Params,
    Payload, Refusal, SocketConfig,
};
use serde_json::{json, Value};

/// An adapter that only keeps the node's inbound, so the test can play the Phoenix side.
#[derive(Default)]
struct PhoenixSide {
    inbound: Arc<Mutex<Option<Arc<dyn Inbound>>>>,
}

impl std::fmt::Debug for PhoenixSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoenixSide")
    }
}

impl Adapter for PhoenixSide {
    fn publish(&self, _topic: &str, _message: Bytes) {}
    fn subscribe(&self, _topic: &str) {}
    fn unsubscribe(&self, _topic: &str) {}
    fn publish_control(&self, _message: Bytes) {}
    fn start(&self, inbound: Arc<dyn Inbound>) {
        *self.inbound.lock().unwrap() = Some(inbound);
    }
}

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

/// A channel whose `handle_out` marks what went through it; `Room<true>` intercepts
/// `news`, `Room<false>` nothing.
#[derive(Default)]
struct Room<const WATCH: bool>;

impl<const WATCH: bool> Channel for Room<WATCH> {
    type Assigns = ();
    type Info = ();

    const INTERCEPTS: &'static [&'static str] = if WATCH { &["news"] } else { &[] };

    async fn join(
        &mut self,
        _topic: &str,
        _payload: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        Ok(Payload::empty_object())
    }

    async fn handle_in(
        &mut self,
        _event: &str,
        _payload: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::NoReply
    }

    async fn handle_out(
        &mut self,
        event: &str,
        payload: &Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let original: Value = payload
            .as_json()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null);
        let _ = ctx.push(event, json!({"via": "handle_out", "payload": original}));
        HandleResult::NoReply
    }
}

async fn node() -> (Endpoint, Arc<dyn Inbound>) {
    let side = PhoenixSide::default();
    let inbound = side.inbound.clone();
    let endpoint = Endpoint::builder()
        .socket(
            "/socket",
            SocketConfig::new(WithId)
                .channel("room:*", Room::<false>::default)
                .channel("watched:*", Room::<true>::default),
        )
        .cluster(side)
        .build();
    let inbound = inbound.lock().unwrap().clone().expect("adapter started");
    (endpoint, inbound)
}

fn payload(value: Value) -> Payload {
    value.into()
}

#[tokio::test]
async fn the_fastlane_writes_to_sockets_and_intercepting_channels_get_handle_out() {
    let (endpoint, phoenix) = node().await;
    let mut client = TestSocket::connect(&endpoint, "/socket", json!({}))
        .await
        .expect("connects");
    client.join("room:1", json!({})).await.expect("joins");
    client.join("watched:1", json!({})).await.expect("joins");

    phoenix.foreign_broadcast(
        "room:1",
        "news",
        payload(json!({"n": 1})),
        Dispatch::Fastlane,
    );
    assert_eq!(client.assert_push("room:1", "news").await, json!({"n": 1}));
    phoenix.foreign_broadcast(
        "watched:1",
        "news",
        payload(json!({"n": 2})),
        Dispatch::Fastlane,
    );
    assert_eq!(
        client.assert_push("watched:1", "news").await,
        json!({"via": "handle_out", "payload": {"n": 2}})
    );
}

#[tokio::test]
async fn a_pubsub_dispatched_broadcast_runs_every_channels_handle_out() {
    let (endpoint, phoenix) = node().await;
    let mut client = TestSocket::connect(&endpoint, "/socket", json!({}))
        .await
        .expect("connects");
    client.join("room:2", json!({})).await.expect("joins");
    phoenix.foreign_broadcast(
        "room:2",
        "news",
        payload(json!({"n": 3})),
        Dispatch::HandleOut,
    );
    assert_eq!(
        client.assert_push("room:2", "news").await,
        json!({"via": "handle_out", "payload": {"n": 3}})
    );
}

#[tokio::test]
async fn a_disconnect_on_a_socket_id_closes_those_sockets_only() {
    let (endpoint, phoenix) = node().await;
    let mut kicked = TestSocket::connect(&endpoint, "/socket", json!({"id": "user_socket:42"}))
        .await
        .expect("connects");
    kicked.join("room:3", json!({})).await.expect("joins");
    let mut other = TestSocket::connect(&endpoint, "/socket", json!({"id": "user_socket:43"}))
        .await
        .expect("connects");
    other.join("room:3", json!({})).await.expect("joins");

    phoenix.foreign_broadcast(
        "user_socket:42",
        "disconnect",
        Payload::empty_object(),
        Dispatch::Fastlane,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !kicked.is_closed() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "socket 42 still open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!other.is_closed());
    phoenix.foreign_broadcast("room:3", "news", payload(json!({})), Dispatch::Fastlane);
    assert_eq!(other.assert_push("room:3", "news").await, json!({}));
}
