//! The §3 state machine driven directly: messages in, frames out, no network.

use std::sync::Arc;

use phx_protocol::{Payload, Serializer};
use serde_json::{json, Value};

use super::*;
use crate::connect::AcceptAll;
use crate::outbox::LongPollBuffer;
use crate::{Channel, ChannelContext, HandleResult, SocketConfig, TerminateReason};

#[derive(Default)]
struct TestChannel;

struct Hello;

impl Channel for TestChannel {
    type Assigns = ();
    type Info = Hello;

    async fn join(
        &mut self,
        _topic: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        let params: Value = p.parse().unwrap_or(Value::Null);
        match params["mode"].as_str() {
            Some("refuse") => return Err(Payload::json(&json!({"reason": "nope"}))),
            Some("crash") => panic!("join crash"),
            Some("push") => assert_eq!(
                ctx.push("early", Payload::empty_object()),
                Err(PushError::NotJoined)
            ),
            _ => {}
        }
        ctx.send_info(Hello);
        Ok(Payload::empty_object())
    }

    async fn handle_info(&mut self, _: Hello, ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
        ctx.push("hello", Payload::empty_object()).unwrap();
        HandleResult::NoReply
    }

    async fn handle_in(
        &mut self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        match event {
            "echo" => HandleResult::ok(p),
            "push_then_reply" => {
                ctx.push("pushed", Payload::empty_object()).unwrap();
                HandleResult::ok_empty()
            }
            "stop" => HandleResult::Stop {
                reason: StopReason::Normal,
                reply: Some(("ok".into(), Payload::empty_object())),
            },
            "fail" => HandleResult::Stop {
                reason: StopReason::Error("bad".into()),
                reply: None,
            },
            _ => panic!("crash on {event}"),
        }
    }

    async fn terminate(&mut self, reason: TerminateReason, ctx: &mut ChannelContext<'_, Self>) {
        let _ = ctx.push(
            "bye",
            Payload::json(&json!({"reason": format!("{reason:?}")})),
        );
    }
}

use crate::outcome::StopReason;

struct Harness {
    socket: Socket,
    buffer: Arc<LongPollBuffer>,
    serializer: Serializer,
}

impl Harness {
    fn new(serializer: Serializer, max_channels: usize) -> Self {
        let config = SocketConfig::new(AcceptAll)
            .max_channels(max_channels)
            .channel("room:*", TestChannel::default)
            .into_options();
        let pubsub = PubSub::default();
        let hub = Hub {
            telemetry: Arc::new(Telemetry::new()),
            tracker: Arc::new(Tracker::new(
                None,
                crate::presence::BurstPolicy {
                    limit: 1,
                    window: std::time::Duration::ZERO,
                },
            )),
            pubsub,
            state: State::default(),
        };
        let buffer = Arc::new(LongPollBuffer::new(10_000));
        let (socket, _inbox) = Socket::new(
            hub,
            config.settings().clone(),
            serializer,
            Outbox::LongPoll(buffer.clone()),
            Arc::new(()),
            None,
        );
        Self {
            socket,
            buffer,
            serializer,
        }
    }

    async fn send(&mut self, frame: Value) {
        let msg = self
            .serializer
            .decode_text(frame.to_string().as_bytes())
            .expect("valid test frame");
        self.socket.handle_message(msg).await;
    }

    fn frames(&self) -> Vec<Value> {
        self.buffer
            .take()
            .iter()
            .map(|b| serde_json::from_slice(b).expect("JSON frame"))
            .collect()
    }
}

fn ok(response: Value) -> Value {
    json!({"response": response, "status": "ok"})
}

#[tokio::test]
async fn heartbeat_is_answered_with_null_join_ref() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["9", "5", "phoenix", "heartbeat", {}])).await;
    assert_eq!(
        h.frames(),
        vec![json!([null, "5", "phoenix", "phx_reply", ok(json!({}))])]
    );
}

#[tokio::test]
async fn unmatched_topic_replies_with_null_join_ref() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "nope:1", "phx_join", {}])).await;
    h.send(json!(["3", "4", "room:1", "new_msg", {}])).await;
    let unmatched = json!({"response": {"reason": "unmatched topic"}, "status": "error"});
    assert_eq!(
        h.frames(),
        vec![
            json!([null, "3", "nope:1", "phx_reply", unmatched]),
            json!([null, "4", "room:1", "phx_reply", unmatched]),
        ]
    );
}

#[tokio::test]
async fn join_reply_precedes_the_channels_first_push() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {"mode": "push"}]))
        .await;
    assert_eq!(
        h.frames(),
        vec![
            json!(["3", "3", "room:1", "phx_reply", ok(json!({}))]),
            json!(["3", null, "room:1", "hello", {}]),
        ]
    );
}

#[tokio::test]
async fn refused_and_crashed_joins_reply_error_and_record_nothing() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {"mode": "refuse"}]))
        .await;
    h.send(json!(["6", "6", "room:2", "phx_join", {"mode": "crash"}]))
        .await;
    h.send(json!(["6", "7", "room:2", "echo", {}])).await;
    assert_eq!(
        h.frames(),
        vec![
            json!(["3", "3", "room:1", "phx_reply", {"response": {"reason": "nope"}, "status": "error"}]),
            json!(["6", "6", "room:2", "phx_reply", {"response": {"reason": "join crashed"}, "status": "error"}]),
            json!([null, "7", "room:2", "phx_reply", {"response": {"reason": "unmatched topic"}, "status": "error"}]),
        ]
    );
}

#[tokio::test]
async fn too_many_channels_is_refused_with_the_join_ref() {
    let mut h = Harness::new(Serializer::V2, 1);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["6", "6", "room:2", "phx_join", {}])).await;
    let refused = json!({"response": {"reason": "too many channels joined"}, "status": "error"});
    assert_eq!(
        h.frames(),
        vec![json!(["6", "6", "room:2", "phx_reply", refused])]
    );
}

#[tokio::test]
async fn duplicate_join_orders_new_reply_old_close_then_new_pushes() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["6", "6", "room:1", "phx_join", {}])).await;
    assert_eq!(
        h.frames(),
        vec![
            json!(["6", "6", "room:1", "phx_reply", ok(json!({}))]),
            json!(["3", "3", "room:1", "phx_close", {}]),
            json!(["6", null, "room:1", "hello", {}]),
        ]
    );
}

#[tokio::test]
async fn stale_join_ref_is_dropped_and_null_join_ref_delivered() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["1", "4", "room:1", "echo", {"a": 1}])).await;
    h.send(json!([null, "5", "room:1", "echo", {"b": 2}])).await;
    assert_eq!(
        h.frames(),
        vec![json!([
            "3",
            "5",
            "room:1",
            "phx_reply",
            ok(json!({"b": 2}))
        ])]
    );
}

#[tokio::test]
async fn pushes_made_by_a_handler_precede_its_reply() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["3", "4", "room:1", "push_then_reply", {}]))
        .await;
    assert_eq!(
        h.frames(),
        vec![
            json!(["3", null, "room:1", "pushed", {}]),
            json!(["3", "4", "room:1", "phx_reply", ok(json!({}))]),
        ]
    );
}

#[tokio::test]
async fn leave_replies_closes_then_terminate_pushes() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["2", "7", "room:1", "phx_leave", {}])).await; // stale: ignored
    assert_eq!(h.frames(), Vec::<Value>::new());
    h.send(json!(["3", "8", "room:1", "phx_leave", {}])).await;
    assert_eq!(
        h.frames(),
        vec![
            json!(["3", "8", "room:1", "phx_reply", ok(json!({}))]),
            json!(["3", "3", "room:1", "phx_close", {}]),
            json!(["3", null, "room:1", "bye", {"reason": "Left"}]),
        ]
    );
    h.send(json!(["9", "9", "room:1", "phx_leave", {}])).await; // not joined
    assert_eq!(
        h.frames(),
        vec![json!(["9", "9", "room:1", "phx_reply", ok(json!({}))])]
    );
}

#[tokio::test]
async fn a_crash_errors_only_its_channel() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.send(json!(["6", "6", "room:2", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["3", "10", "room:1", "boom", {}])).await;
    assert_eq!(
        h.frames(),
        vec![
            json!(["3", null, "room:1", "bye", {"reason": "Crashed"}]),
            json!(["3", "3", "room:1", "phx_error", {"reason": "channel_crash"}]),
        ]
    );
    h.send(json!(["6", "11", "room:2", "echo", {"still": "here"}]))
        .await;
    h.send(json!(["3", "12", "room:1", "echo", {}])).await;
    assert_eq!(
        h.frames(),
        vec![
            json!([
                "6",
                "11",
                "room:2",
                "phx_reply",
                ok(json!({"still": "here"}))
            ]),
            json!([null, "12", "room:1", "phx_reply", {"response": {"reason": "unmatched topic"}, "status": "error"}]),
        ]
    );
}

#[tokio::test]
async fn stop_closes_and_error_stop_errors() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.send(json!(["6", "6", "room:2", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["3", "4", "room:1", "stop", {}])).await;
    h.send(json!(["6", "7", "room:2", "fail", {}])).await;
    assert_eq!(
        h.frames(),
        vec![
            json!(["3", "4", "room:1", "phx_reply", ok(json!({}))]),
            json!(["3", "3", "room:1", "phx_close", {}]),
            json!(["3", null, "room:1", "bye", {"reason": "Stopped(Normal)"}]),
            json!(["6", null, "room:2", "bye", {"reason": "Stopped(Error(\"bad\"))"}]),
            json!(["6", "6", "room:2", "phx_error", {"reason": "channel_crash"}]),
        ]
    );
}

#[tokio::test]
async fn v1_sockets_use_the_ref_as_channel_join_ref_and_close_with_null() {
    let mut h = Harness::new(Serializer::V1, 100);
    h.send(json!({"topic": "room:1", "event": "phx_join", "payload": {}, "ref": "1"}))
        .await;
    h.send(json!({"topic": "room:1", "event": "stop", "payload": {}, "ref": "2"}))
        .await;
    let frames = h.frames();
    assert_eq!(
        frames[0],
        json!({"event": "phx_reply", "payload": ok(json!({})), "ref": "1", "topic": "room:1"})
    );
    assert_eq!(
        frames[1],
        json!({"event": "hello", "payload": {}, "ref": null, "topic": "room:1"})
    );
    assert!(frames
        .contains(&json!({"event": "phx_close", "payload": {}, "ref": null, "topic": "room:1"})));
}

#[tokio::test]
async fn closing_terminates_channels_silently() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.socket.close().await;
    assert_eq!(h.frames(), Vec::<Value>::new());
    assert_eq!(h.socket.core.hub.pubsub.subscriber_count("room:1"), 0);
}
