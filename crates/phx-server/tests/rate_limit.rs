//! The per-socket inbound rate limit: refusals past the rate, a
//! close past the second threshold, heartbeats never limited.

use phx_server::{
    AcceptAll, Channel, ChannelContext, HandleResult, Payload, RateLimit, SocketConfig,
};
use serde_json::{json, Value};

mod support;
use support::start;
use support::ws::{connect, heartbeat, recv, send};

#[derive(Default)]
struct Echo;

impl Channel for Echo {
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
        _event: &str,
        p: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::ok(p)
    }
}

/// 1 message per second after a burst of 5: the test sends far faster than that.
fn config() -> SocketConfig {
    SocketConfig::new(AcceptAll)
        .channel("room:*", Echo::default)
        .rate_limit(RateLimit::per_second(1).burst(5).close_after(20))
}

fn status(frame: &Value) -> (&str, Value) {
    (
        frame[4]["status"].as_str().unwrap_or_default(),
        frame[4]["response"].clone(),
    )
}

#[tokio::test]
async fn messages_past_the_burst_are_refused_with_a_reason() {
    let (_e, port) = start(config).await;
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    send(&mut ws, json!(["1", "1", "room:a", "phx_join", {}])).await; // 1 of 5
    assert_eq!(status(&recv(&mut ws).await.unwrap()).0, "ok");
    for n in 0..8 {
        send(
            &mut ws,
            json!(["1", format!("m{n}"), "room:a", "echo", {"n": n}]),
        )
        .await;
    }
    let mut oks = 0;
    for n in 0..8 {
        let frame = recv(&mut ws).await.unwrap();
        assert_eq!(frame[1], format!("m{n}"), "replies in order");
        match status(&frame) {
            ("ok", _) => oks += 1,
            ("error", reason) => assert_eq!(reason, json!({"reason": "rate limited"})),
            other => panic!("unexpected {other:?}"),
        }
    }
    // The join and four messages fit the burst (a token may refill on a slow machine).
    assert!((4..=6).contains(&oks), "{oks} accepted");
    // Heartbeats are never limited.
    for n in 0..10 {
        heartbeat(&mut ws, &format!("hb{n}")).await;
    }
}

#[tokio::test]
async fn a_client_that_keeps_flooding_is_closed_1008() {
    let (_e, port) = start(config).await;
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    for n in 0..100 {
        send(
            &mut ws,
            json!(["1", n.to_string(), "room:a", "phx_join", {}]),
        )
        .await;
    }
    let code = loop {
        match recv(&mut ws).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert_eq!(code, 1008);
    // The server lives on.
    let mut fresh = connect(port, "vsn=2.0.0").await.unwrap();
    heartbeat(&mut fresh, "1").await;
}
