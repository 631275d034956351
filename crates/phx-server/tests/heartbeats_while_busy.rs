//! A channel callback awaiting I/O (a slow database, a partition) holds neither the
//! socket's heartbeats nor its order (docs/protocol.md §3.1, §3.8).

use std::sync::Arc;
use std::time::Duration;

use phx_server::{AcceptAll, Channel, ChannelContext, HandleResult, Payload, SocketConfig};
use serde_json::json;
use tokio::sync::Notify;

mod support;
use support::start;
use support::ws::{connect, ok, recv, send};

/// `wait` blocks until the test releases it; `echo` answers at once.
struct Slow(Arc<Notify>);

impl Channel for Slow {
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
        p: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        if event == "wait" {
            self.0.notified().await;
        }
        HandleResult::ok(p)
    }
}

#[tokio::test]
async fn heartbeats_are_answered_while_a_callback_awaits_io() {
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let (_e, port) = start(move || {
        let gate = gate.clone();
        SocketConfig::new(AcceptAll).channel("slow:*", move || Slow(gate.clone()))
    })
    .await;
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    send(&mut ws, json!(["1", "1", "slow:a", "phx_join", {}])).await;
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!(["1", "1", "slow:a", "phx_reply", ok(json!({}))]))
    );
    // The channel is now stuck in `wait`; a later message to the same channel queues
    // behind it, and heartbeats are answered meanwhile, as often as the client asks.
    send(&mut ws, json!(["1", "2", "slow:a", "wait", {"n": 1}])).await;
    send(&mut ws, json!(["1", "3", "slow:a", "echo", {"n": 2}])).await;
    for n in 0..3 {
        let r#ref = format!("hb{n}");
        send(&mut ws, json!([null, r#ref, "phoenix", "heartbeat", {}])).await;
        assert_eq!(
            recv(&mut ws).await,
            Ok(json!([null, r#ref, "phoenix", "phx_reply", ok(json!({}))])),
            "heartbeat {n} answered while the channel waits"
        );
    }
    release.notify_one();
    // Then the waiting message and the one queued behind it, in order.
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!([
            "1",
            "2",
            "slow:a",
            "phx_reply",
            ok(json!({"n": 1}))
        ]))
    );
    assert_eq!(
        recv(&mut ws).await,
        Ok(json!([
            "1",
            "3",
            "slow:a",
            "phx_reply",
            ok(json!({"n": 2}))
        ]))
    );
}

#[tokio::test]
async fn a_socket_closed_during_a_callback_terminates_cleanly() {
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let (endpoint, port) = start(move || {
        let gate = gate.clone();
        SocketConfig::new(AcceptAll).channel("slow:*", move || Slow(gate.clone()))
    })
    .await;
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    send(&mut ws, json!(["1", "1", "slow:a", "phx_join", {}])).await;
    recv(&mut ws).await.unwrap();
    send(&mut ws, json!(["1", "2", "slow:a", "wait", {}])).await;
    // Wait until the channel is subscribed, then drop the client mid-callback.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while endpoint.subscriber_count("slow:a") != 1 {
        assert!(tokio::time::Instant::now() < deadline, "joined in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(ws);
    release.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while endpoint.subscriber_count("slow:a") != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the channel left after its socket closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
