//! The §3 state machine driven directly: messages in, frames out, no network.

use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use phx_protocol::{Payload, Serializer};
use serde_json::{json, Map, Value};

use super::*;
use crate::outbox::LongPollBuffer;
use crate::outcome::StopReason;
use crate::{
    Channel, ChannelContext, ChannelRef, Endpoint, HandleResult, ReplyRef, SocketConfig,
    TerminateReason,
};

/// The channel refs handed out by `ref` events, for the test to message channels with.
type Refs = Arc<Mutex<Vec<ChannelRef<TestInfo>>>>;
/// The reply refs taken by `reply_later` events, for the test to answer with.
type Replies = Arc<Mutex<Vec<ReplyRef>>>;

#[derive(Default)]
struct TestChannel {
    refs: Refs,
    replies: Replies,
    /// Join mode `fragile`: `terminate` panics.
    crash_in_terminate: bool,
}

/// What the test channel receives in `handle_info`.
enum TestInfo {
    /// Sent to itself from `join`: pushes `hello`.
    Hello,
    /// Sent through a [`ChannelRef`]: answered with a `pong` push.
    Ping(u32),
    /// Asks whether `reply_ref` is available outside `handle_in` (pushed back).
    AskReplyRef,
}

/// A channel that keeps every default callback.
struct PlainChannel;

impl Channel for PlainChannel {
    type Assigns = String;
    type Info = ();

    async fn join(
        &mut self,
        _topic: &str,
        _p: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        Ok(Payload::empty_object())
    }

    async fn handle_in(
        &mut self,
        _event: &str,
        _p: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::NoReply
    }
}

/// A channel that intercepts `shout` but keeps the default `handle_out`.
struct InterceptingChannel;

impl Channel for InterceptingChannel {
    type Assigns = String;
    type Info = ();
    const INTERCEPTS: &'static [&'static str] = &["shout"];

    async fn join(
        &mut self,
        _topic: &str,
        _p: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        Ok(Payload::empty_object())
    }

    async fn handle_in(
        &mut self,
        _event: &str,
        _p: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::NoReply
    }
}

/// A channel whose intercepts are chosen per instance at run time, not by a constant.
struct ConfiguredChannel {
    intercepts: &'static [&'static str],
}

impl Channel for ConfiguredChannel {
    type Assigns = String;
    type Info = ();

    fn intercepts(&self) -> &'static [&'static str] {
        self.intercepts
    }

    async fn join(
        &mut self,
        _topic: &str,
        _p: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        Ok(Payload::empty_object())
    }

    async fn handle_in(
        &mut self,
        _event: &str,
        _p: Payload,
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
        let _ = ctx.push(&format!("{event}_filtered"), payload.clone());
        HandleResult::NoReply
    }
}

impl Channel for TestChannel {
    type Assigns = String;
    type Info = TestInfo;
    const INTERCEPTS: &'static [&'static str] = &["shout"];

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
            Some("fragile") => self.crash_in_terminate = true,
            _ => {}
        }
        ctx.send_info(TestInfo::Hello);
        Ok(Payload::empty_object())
    }

    async fn handle_out(
        &mut self,
        event: &str,
        payload: &Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        ctx.push(&format!("{event}_out"), payload.clone()).unwrap();
        HandleResult::NoReply
    }

    async fn handle_info(
        &mut self,
        info: TestInfo,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        match info {
            TestInfo::Hello => ctx.push("hello", Payload::empty_object()).unwrap(),
            TestInfo::AskReplyRef => {
                let has = ctx.reply_ref().is_some();
                ctx.push("reply_ref", json!({"some": has})).unwrap();
            }
            TestInfo::Ping(n) => ctx.push("pong", json!({"n": n})).unwrap(),
        }
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
            "heartbeat" => HandleResult::ok(Payload::json(&json!({"seen_by": "channel"}))),
            "push_then_reply" => {
                ctx.push("pushed", Payload::empty_object()).unwrap();
                HandleResult::ok_empty()
            }
            "track" => {
                let key: Value = p.parse().unwrap_or(Value::Null);
                let key = key["key"].as_str().unwrap_or("alice");
                ctx.presence().track(key, Map::new()).unwrap();
                HandleResult::ok_empty()
            }
            "untrack" => {
                let key: Value = p.parse().unwrap_or(Value::Null);
                ctx.presence()
                    .untrack(key["key"].as_str().unwrap_or("alice"));
                HandleResult::ok_empty()
            }
            "ref" => {
                self.refs.lock().unwrap().push(ctx.channel_ref());
                HandleResult::ok_empty()
            }
            "reply_later" => {
                let reply = ctx.reply_ref().expect("a reply ref inside handle_in");
                self.replies.lock().unwrap().push(reply);
                HandleResult::NoReply
            }
            "whoami" => {
                let topic = ctx.topic().to_owned();
                HandleResult::ok(Payload::json(&json!({
                    "topic": topic,
                    "join_ref": ctx.join_ref().and_then(Ref::as_str),
                    "socket_id": ctx.socket_id(),
                    "transport": ctx.transport().as_atom(),
                    "serializer": format!("{:?}", ctx.serializer()),
                    "user": ctx.assigns(),
                    "subscribers": ctx.pubsub().subscriber_count(&topic),
                })))
            }
            "broadcast" => HandleResult::ok(Payload::json(
                &json!({"ok": ctx.broadcast("news", p).is_ok()}),
            )),
            "broadcast_from" => HandleResult::ok(Payload::json(
                &json!({"ok": ctx.broadcast_from("news", p).is_ok()}),
            )),
            "push" => {
                let pushed = match ctx.push("pushed", p) {
                    Ok(()) => "ok".to_owned(),
                    Err(error) => error.to_string(),
                };
                HandleResult::ok(Payload::json(&json!({"push": pushed})))
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
        if self.crash_in_terminate {
            panic!("terminate crash");
        }
        let _ = ctx.push(
            "bye",
            Payload::json(&json!({"reason": format!("{reason:?}")})),
        );
    }
}

/// Assigns every socket the user `alice`.
struct WithUser;

impl crate::Connect for WithUser {
    type Assigns = String;

    async fn connect(
        &self,
        _: &crate::Params,
        _: &crate::ConnectInfo,
    ) -> Result<crate::Connected<String>, crate::Refusal> {
        Ok(crate::Connected::new("alice".to_owned()))
    }
}

struct Harness {
    socket: Socket,
    inbox: SocketInbox,
    endpoint: Endpoint,
    buffer: Arc<LongPollBuffer>,
    serializer: Serializer,
    refs: Refs,
    replies: Replies,
}

impl Harness {
    fn new(serializer: Serializer, max_channels: usize) -> Self {
        Self::on(Endpoint::builder().build(), serializer, max_channels, None)
    }

    /// A V2 socket with this socket id on its own endpoint.
    fn with_id(id: &str) -> Self {
        Self::on(Endpoint::builder().build(), Serializer::V2, 100, Some(id))
    }

    /// A socket on `endpoint`, which other harnesses may share.
    fn on(
        endpoint: Endpoint,
        serializer: Serializer,
        max_channels: usize,
        id: Option<&str>,
    ) -> Self {
        let refs = Refs::default();
        let replies = Replies::default();
        let (channel_refs, channel_replies) = (refs.clone(), replies.clone());
        let config = SocketConfig::new(WithUser)
            .max_channels(max_channels)
            .channel("room:*", move || TestChannel {
                refs: channel_refs.clone(),
                replies: channel_replies.clone(),
                crash_in_terminate: false,
            })
            .channel("plain:*", || PlainChannel)
            .channel("intercepting:*", || InterceptingChannel)
            .channel("configured:*", || ConfiguredChannel {
                intercepts: &["whisper"],
            });
        let options = config.into_options();
        let buffer = Arc::new(LongPollBuffer::new(10_000));
        let (socket, inbox) = Socket::new(
            endpoint.hub().clone(),
            options.settings().clone(),
            serializer,
            Outbox::LongPoll(buffer.clone()),
            Arc::new("alice".to_owned()),
            id.map(str::to_owned),
        );
        Self {
            socket,
            inbox,
            endpoint,
            buffer,
            serializer,
            refs,
            replies,
        }
    }

    async fn send(&mut self, frame: Value) {
        let msg = self
            .serializer
            .decode_text(frame.to_string().as_bytes())
            .expect("valid test frame");
        self.socket.handle_message(msg).await;
    }

    /// Hands the next inbox message to the socket, as the transport's loop does.
    async fn deliver(&mut self) -> Flow {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), self.inbox.recv())
            .await
            .expect("a message in the socket's inbox");
        self.socket.handle_msg(msg).await
    }

    /// Whether a message waits in the inbox (taking it if so).
    fn inbox_has_a_message(&self) -> bool {
        self.inbox.recv().now_or_never().is_some()
    }

    fn frames(&self) -> Vec<Value> {
        self.buffer
            .take()
            .iter()
            .map(|b| serde_json::from_slice(b).expect("JSON frame"))
            .collect()
    }

    fn channel_ref(&self, at: usize) -> ChannelRef<TestInfo> {
        self.refs.lock().unwrap()[at].clone()
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

fn unmatched() -> Value {
    json!({"response": {"reason": "unmatched topic"}, "status": "error"})
}

// --- The socket id topic (§1.7) ---

#[tokio::test]
async fn a_broadcast_other_than_disconnect_on_the_socket_id_leaves_the_socket_open() {
    let mut h = Harness::with_id("user_socket:1");
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    // Phoenix's socket ignores every other broadcast on its id topic.
    h.endpoint
        .broadcast("user_socket:1", "refresh", Payload::empty_object())
        .unwrap();
    assert!(
        !h.inbox_has_a_message(),
        "not even queued for the socket task"
    );
    assert_eq!(
        h.frames(),
        Vec::<Value>::new(),
        "nothing reaches the client"
    );
    h.send(json!(["3", "4", "room:1", "echo", {"still": "open"}]))
        .await;
    assert_eq!(
        h.frames(),
        vec![json!([
            "3",
            "4",
            "room:1",
            "phx_reply",
            ok(json!({"still": "open"}))
        ])]
    );
    h.endpoint.disconnect("user_socket:1");
    assert_eq!(h.deliver().await, Flow::Close(CLOSE_DISCONNECT));
}

#[tokio::test]
async fn close_unsubscribes_the_socket_id_topic() {
    let mut h = Harness::with_id("user_socket:1");
    assert_eq!(h.endpoint.subscriber_count("user_socket:1"), 1);
    h.socket.close().await;
    assert_eq!(h.endpoint.subscriber_count("user_socket:1"), 0);
    // A disconnect now finds no one: nothing queues for the closed socket.
    h.endpoint.disconnect("user_socket:1");
    assert!(!h.inbox_has_a_message());
}

// --- Releasing shared state when the transport task ends without `close` ---

/// Joins room:1 and room:2 on `h` and tracks a presence on each.
async fn join_and_track(h: &mut Harness) {
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.send(json!(["3", "4", "room:1", "track", {"key": "gone"}]))
        .await;
    h.send(json!(["5", "5", "room:2", "phx_join", {}])).await;
    h.send(json!(["5", "6", "room:2", "track", {"key": "gone"}]))
        .await;
    h.frames();
}

/// What an observer on room:1 must see once `gone`'s socket is dropped: its leave diff.
async fn assert_released(endpoint: &Endpoint, observer: &mut Harness) {
    for topic in ["room:1", "room:2"] {
        assert_eq!(
            endpoint.hub().tracker.key_count(topic),
            0,
            "{topic}: presence untracked"
        );
    }
    assert_eq!(endpoint.subscriber_count("room:1"), 1, "only the observer");
    assert_eq!(endpoint.subscriber_count("room:2"), 0);
    assert_eq!(endpoint.subscriber_count("user_socket:gone"), 0);
    let frames = observer.frames();
    let diffs: Vec<&Value> = frames.iter().filter(|f| f[3] == "presence_diff").collect();
    assert_eq!(diffs.len(), 1, "one leave diff for room:1: {frames:?}");
    assert_eq!(diffs[0][4]["joins"], json!({}));
    assert!(diffs[0][4]["leaves"]["gone"]["metas"].is_array());
}

/// An endpoint without presence batching (diffs go out at once), an observer joined to
/// room:1 on it, and the socket id `user_socket:gone` socket to end.
fn endpoint_with_observer() -> (Endpoint, Harness, Harness) {
    let endpoint = Endpoint::builder()
        .presence_burst_window(std::time::Duration::ZERO)
        .build();
    let observer = Harness::on(endpoint.clone(), Serializer::V2, 100, None);
    let gone = Harness::on(
        endpoint.clone(),
        Serializer::V2,
        100,
        Some("user_socket:gone"),
    );
    (endpoint, observer, gone)
}

#[tokio::test]
async fn dropping_a_socket_without_close_untracks_and_unsubscribes_its_channels() {
    let (endpoint, mut observer, mut gone) = endpoint_with_observer();
    observer
        .send(json!(["1", "1", "room:1", "phx_join", {}]))
        .await;
    join_and_track(&mut gone).await;
    observer.frames();
    assert_eq!(endpoint.hub().tracker.key_count("room:1"), 1);
    drop(gone);
    assert_released(&endpoint, &mut observer).await;
}

#[tokio::test]
async fn an_aborted_transport_task_still_releases_its_channels() {
    let (endpoint, mut observer, mut gone) = endpoint_with_observer();
    observer
        .send(json!(["1", "1", "room:1", "phx_join", {}]))
        .await;
    let (joined, is_joined) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        join_and_track(&mut gone).await;
        let _ = joined.send(());
        std::future::pending::<()>().await;
        drop(gone);
    });
    is_joined.await.unwrap();
    observer.frames();
    assert_eq!(endpoint.hub().tracker.key_count("room:1"), 1);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_released(&endpoint, &mut observer).await;
}

#[tokio::test]
async fn a_panicking_transport_task_still_releases_its_channels() {
    let (endpoint, mut observer, mut gone) = endpoint_with_observer();
    observer
        .send(json!(["1", "1", "room:1", "phx_join", {}]))
        .await;
    let (joined, is_joined) = tokio::sync::oneshot::channel();
    let (go_on, proceed) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        join_and_track(&mut gone).await;
        let _ = joined.send(());
        let _ = proceed.await;
        panic!("transport task panics while holding its socket");
    });
    is_joined.await.unwrap();
    observer.frames();
    assert_eq!(endpoint.hub().tracker.key_count("room:1"), 1);
    go_on.send(()).unwrap();
    assert!(task.await.unwrap_err().is_panic());
    assert_released(&endpoint, &mut observer).await;
}

// --- The heartbeat guard (§3.1) ---

#[tokio::test]
async fn an_event_named_heartbeat_on_a_channel_topic_reaches_the_channel() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["3", "4", "room:1", "heartbeat", {}])).await;
    assert_eq!(
        h.frames(),
        vec![json!([
            "3",
            "4",
            "room:1",
            "phx_reply",
            ok(json!({"seen_by": "channel"}))
        ])]
    );
}

#[tokio::test]
async fn phx_join_on_the_phoenix_topic_gets_the_unmatched_topic_error() {
    let mut h = Harness::new(Serializer::V2, 100);
    // Phoenix answers only `heartbeat` on `phoenix` itself; a join there is routed like
    // any other topic and, with no route, gets the ignore reply (null join_ref).
    h.send(json!(["3", "3", "phoenix", "phx_join", {}])).await;
    h.send(json!(["3", "4", "phoenix", "other", {}])).await;
    assert_eq!(
        h.frames(),
        vec![
            json!([null, "3", "phoenix", "phx_reply", unmatched()]),
            json!([null, "4", "phoenix", "phx_reply", unmatched()]),
        ]
    );
}

// --- Infos and intercepted broadcasts ---

#[tokio::test]
async fn after_close_channel_refs_report_the_socket_gone_and_queue_nothing() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.send(json!(["3", "4", "room:1", "ref", {}])).await;
    let channel = h.channel_ref(0);
    assert!(channel.send(TestInfo::Ping(1)), "the socket is alive");
    h.socket.close().await;
    assert!(!h.inbox_has_a_message(), "close drops what was queued");
    assert!(
        !channel.send(TestInfo::Ping(2)),
        "documented: false once the socket is gone"
    );
    assert!(!h.inbox_has_a_message(), "nothing queues after close");
}

#[tokio::test]
async fn infos_sent_through_a_channel_ref_reach_handle_info() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.send(json!(["3", "4", "room:1", "ref", {}])).await;
    h.frames();
    let channel = h.channel_ref(0);
    let sent = tokio::spawn(async move { channel.send(TestInfo::Ping(7)) });
    assert!(sent.await.unwrap());
    assert_eq!(h.deliver().await, Flow::Continue);
    assert_eq!(
        h.frames(),
        vec![json!(["3", null, "room:1", "pong", {"n": 7}])]
    );
}

#[tokio::test]
async fn infos_for_a_channel_that_was_replaced_do_not_reach_its_successor() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.send(json!(["3", "4", "room:1", "ref", {}])).await;
    h.send(json!(["6", "6", "room:1", "phx_join", {}])).await;
    h.frames();
    assert!(h.channel_ref(0).send(TestInfo::Ping(1)));
    assert_eq!(h.deliver().await, Flow::Continue);
    assert_eq!(h.frames(), Vec::<Value>::new());
}

#[tokio::test]
async fn an_intercepted_broadcast_reaches_handle_out_and_others_go_straight_out() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    let payload = || Payload::json(&json!({"a": 1}));
    h.endpoint.broadcast("room:1", "plain", payload()).unwrap();
    assert_eq!(
        h.frames(),
        vec![json!([null, null, "room:1", "plain", {"a": 1}])]
    );
    h.endpoint.broadcast("room:1", "shout", payload()).unwrap();
    assert_eq!(h.frames(), Vec::<Value>::new(), "held for handle_out");
    assert_eq!(h.deliver().await, Flow::Continue);
    assert_eq!(
        h.frames(),
        vec![json!(["3", null, "room:1", "shout_out", {"a": 1}])]
    );
}

// --- Duplicate joins whose new join fails (§3.5) ---

#[tokio::test]
async fn a_refused_duplicate_join_still_closes_the_old_channel_after_its_reply() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["6", "6", "room:1", "phx_join", {"mode": "refuse"}]))
        .await;
    h.send(json!(["3", "7", "room:1", "echo", {}])).await;
    assert_eq!(
        h.frames(),
        vec![
            json!(["6", "6", "room:1", "phx_reply", {"response": {"reason": "nope"}, "status": "error"}]),
            json!(["3", "3", "room:1", "phx_close", {}]),
            json!([null, "7", "room:1", "phx_reply", unmatched()]),
        ],
        "error reply, old close (no terminate push), then the topic is not joined"
    );
    assert_eq!(h.endpoint.subscriber_count("room:1"), 0);
}

#[tokio::test]
async fn a_crashed_duplicate_join_still_closes_the_old_channel_after_its_reply() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.send(json!(["3", "4", "room:1", "track", {}])).await;
    h.frames();
    h.send(json!(["6", "6", "room:1", "phx_join", {"mode": "crash"}]))
        .await;
    let (diffs, frames): (Vec<Value>, Vec<Value>) = h
        .frames()
        .into_iter()
        .partition(|f| f[3] == "presence_diff");
    assert_eq!(
        frames,
        vec![
            json!(["6", "6", "room:1", "phx_reply", {"response": {"reason": "join crashed"}, "status": "error"}]),
            json!(["3", "3", "room:1", "phx_close", {}]),
        ]
    );
    // The old channel's presence left (its own client sees the leave too, §6.3).
    assert!(diffs.iter().any(|d| d[4]["leaves"].get("alice").is_some()));
    assert_eq!(h.endpoint.subscriber_count("room:1"), 0);
    assert_eq!(h.endpoint.hub().tracker.key_count("room:1"), 0);
}

// --- A crash inside terminate (§3.6) ---

#[tokio::test]
async fn a_crash_inside_terminate_ends_only_that_channel() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {"mode": "fragile"}]))
        .await;
    h.send(json!(["5", "5", "room:2", "phx_join", {"mode": "fragile"}]))
        .await;
    h.send(json!(["7", "7", "room:3", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["3", "8", "room:1", "phx_leave", {}])).await;
    h.send(json!(["5", "9", "room:2", "boom", {}])).await;
    h.send(json!(["7", "10", "room:3", "echo", {}])).await;
    assert_eq!(
        h.frames(),
        vec![
            json!(["3", "8", "room:1", "phx_reply", ok(json!({}))]),
            json!(["3", "3", "room:1", "phx_close", {}]),
            json!(["5", "5", "room:2", "phx_error", {"reason": "channel_crash"}]),
            json!(["7", "10", "room:3", "phx_reply", ok(json!({}))]),
        ]
    );
    assert_eq!(h.endpoint.subscriber_count("room:1"), 0);
    assert_eq!(h.endpoint.subscriber_count("room:2"), 0);
    // Closing runs every terminate even when one of them panics.
    h.send(json!(["9", "9", "room:4", "phx_join", {"mode": "fragile"}]))
        .await;
    h.socket.close().await;
    assert_eq!(h.endpoint.subscriber_count("room:3"), 0);
    assert_eq!(h.endpoint.subscriber_count("room:4"), 0);
}

// --- What a callback can do (ChannelContext) and the default callbacks ---

#[tokio::test]
async fn the_context_describes_the_channel_and_its_socket() {
    let mut h = Harness::with_id("user_socket:7");
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["3", "4", "room:1", "whoami", {}])).await;
    let whoami = json!({
        "topic": "room:1",
        "join_ref": "3",
        "socket_id": "user_socket:7",
        "transport": ":longpoll",
        "serializer": "V2",
        "user": "alice",
        "subscribers": 1,
    });
    assert_eq!(
        h.frames(),
        vec![json!(["3", "4", "room:1", "phx_reply", ok(whoami)])]
    );
}

#[tokio::test]
async fn broadcast_reaches_every_subscriber_and_broadcast_from_all_but_the_sender() {
    let endpoint = Endpoint::builder().build();
    let mut a = Harness::on(endpoint.clone(), Serializer::V2, 100, None);
    let mut b = Harness::on(endpoint, Serializer::V2, 100, None);
    a.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    b.send(json!(["5", "5", "room:1", "phx_join", {}])).await;
    a.frames();
    b.frames();
    a.send(json!(["3", "4", "room:1", "broadcast_from", {"n": 1}]))
        .await;
    let news = |n: u32| json!([null, null, "room:1", "news", {"n": n}]);
    assert_eq!(
        a.frames(),
        vec![json!([
            "3",
            "4",
            "room:1",
            "phx_reply",
            ok(json!({"ok": true}))
        ])]
    );
    assert_eq!(b.frames(), vec![news(1)]);
    a.send(json!(["3", "5", "room:1", "broadcast", {"n": 2}]))
        .await;
    assert_eq!(
        a.frames(),
        vec![
            news(2),
            json!(["3", "5", "room:1", "phx_reply", ok(json!({"ok": true}))])
        ]
    );
    assert_eq!(b.frames(), vec![news(2)]);
    // Broadcast payloads must be objects (§5).
    a.send(json!(["3", "6", "room:1", "broadcast_from", [1]]))
        .await;
    assert_eq!(
        a.frames(),
        vec![json!([
            "3",
            "6",
            "room:1",
            "phx_reply",
            ok(json!({"ok": false}))
        ])]
    );
    assert_eq!(b.frames(), Vec::<Value>::new());
}

#[tokio::test]
async fn pushes_take_objects_only() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["3", "4", "room:1", "push", {"a": 1}])).await;
    h.send(json!(["3", "5", "room:1", "push", [1]])).await;
    h.send(json!(["3", "6", "room:1", "push", "text"])).await;
    let refused = ok(json!({"push": PushError::NotAnObject.to_string()}));
    assert_eq!(
        h.frames(),
        vec![
            json!(["3", null, "room:1", "pushed", {"a": 1}]),
            json!(["3", "4", "room:1", "phx_reply", ok(json!({"push": "ok"}))]),
            json!(["3", "5", "room:1", "phx_reply", refused]),
            json!(["3", "6", "room:1", "phx_reply", refused]),
        ]
    );
}

#[tokio::test]
async fn a_reply_ref_answers_the_message_later_from_another_task() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    h.frames();
    h.send(json!(["3", "4", "room:1", "reply_later", {}])).await;
    assert_eq!(h.frames(), Vec::<Value>::new(), "no reply yet");
    let reply = h.replies.lock().unwrap().remove(0);
    let answered =
        tokio::spawn(async move { reply.reply("ok", Payload::json(&json!({"later": true}))) });
    assert_eq!(answered.await.unwrap(), Ok(()));
    assert_eq!(
        h.frames(),
        vec![json!([
            "3",
            "4",
            "room:1",
            "phx_reply",
            ok(json!({"later": true}))
        ])]
    );
    // Outside handle_in there is no message to answer.
    h.send(json!(["3", "5", "room:1", "ref", {}])).await;
    h.frames();
    assert!(h.channel_ref(0).send(TestInfo::AskReplyRef));
    h.deliver().await;
    assert_eq!(
        h.frames(),
        vec![json!(["3", null, "room:1", "reply_ref", {"some": false}])]
    );
}

#[tokio::test]
async fn channels_intercept_nothing_by_default() {
    assert!(<PlainChannel as Channel>::INTERCEPTS.is_empty());
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "plain:1", "phx_join", {}])).await;
    h.frames();
    h.endpoint
        .broadcast("plain:1", "shout", Payload::empty_object())
        .unwrap();
    assert_eq!(
        h.frames(),
        vec![json!([null, null, "plain:1", "shout", {}])]
    );
    assert!(!h.inbox_has_a_message());
}

#[tokio::test]
async fn the_default_handle_out_pushes_the_intercepted_broadcast_unchanged() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "intercepting:1", "phx_join", {}]))
        .await;
    h.frames();
    h.endpoint
        .broadcast("intercepting:1", "shout", Payload::json(&json!({"a": 1})))
        .unwrap();
    assert_eq!(h.deliver().await, Flow::Continue);
    // Pushed by the channel: it carries the channel's join_ref.
    assert_eq!(
        h.frames(),
        vec![json!(["3", null, "intercepting:1", "shout", {"a": 1}])]
    );
}

#[tokio::test]
async fn an_instance_can_choose_its_intercepts_at_run_time() {
    assert!(<ConfiguredChannel as Channel>::INTERCEPTS.is_empty());
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "configured:1", "phx_join", {}]))
        .await;
    h.frames();
    h.endpoint
        .broadcast("configured:1", "whisper", Payload::json(&json!({"a": 1})))
        .unwrap();
    assert_eq!(h.deliver().await, Flow::Continue);
    assert_eq!(
        h.frames(),
        vec![json!(["3", null, "configured:1", "whisper_filtered", {"a": 1}])]
    );
    // Events the instance does not list still go out as plain broadcasts.
    h.endpoint
        .broadcast("configured:1", "shout", Payload::empty_object())
        .unwrap();
    assert_eq!(
        h.frames(),
        vec![json!([null, null, "configured:1", "shout", {}])]
    );
    assert!(!h.inbox_has_a_message());
}

// --- Presence and fan-out across sockets ---

#[tokio::test]
async fn a_channel_that_untracks_one_key_still_leaves_the_others_when_it_ends() {
    let mut h = Harness::new(Serializer::V2, 100);
    h.send(json!(["3", "3", "room:1", "phx_join", {}])).await;
    for (r, event, key) in [
        ("4", "track", "a"),
        ("5", "track", "b"),
        ("6", "track", "c"),
        ("7", "untrack", "b"),
    ] {
        h.send(json!(["3", r, "room:1", event, {"key": key}])).await;
    }
    assert_eq!(h.endpoint.hub().tracker.key_count("room:1"), 2);
    h.send(json!(["3", "8", "room:1", "phx_leave", {}])).await;
    assert_eq!(
        h.endpoint.hub().tracker.key_count("room:1"),
        0,
        "a and c leave with the channel"
    );
}

/// The text of each WebSocket frame queued on `queue` (unmasked server frames).
fn ws_texts(queue: &crate::outbox::WsQueue) -> Vec<Value> {
    let mut items = Vec::new();
    queue.take(&mut items, usize::MAX);
    items
        .into_iter()
        .map(|item| {
            let Some(frame) = item.data() else {
                panic!("a data frame expected");
            };
            assert_eq!(frame[0], 0x81, "FIN + text opcode");
            let (len, at) = match frame[1] {
                126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
                127 => panic!("test frames are small"),
                len => (usize::from(len), 2),
            };
            assert_eq!(frame.len(), at + len, "one whole frame");
            serde_json::from_slice(&frame[at..]).expect("JSON frame")
        })
        .collect()
}

#[tokio::test]
async fn a_broadcast_reaches_each_subscriber_in_its_own_serializer_and_transport() {
    let endpoint = Endpoint::builder().build();
    let config = SocketConfig::new(WithUser)
        .channel("plain:*", || PlainChannel)
        .into_options();
    let mut long_polls = Vec::new();
    let mut web_sockets = Vec::new();
    let mut sockets = Vec::new();
    for serializer in [Serializer::V1, Serializer::V2] {
        let buffer = Arc::new(LongPollBuffer::new(100));
        let queue = Arc::new(crate::outbox::WsQueue::new(100, 1 << 20, 1 << 20));
        for outbox in [
            Outbox::LongPoll(buffer.clone()),
            Outbox::WebSocket(queue.clone()),
        ] {
            let (mut socket, _inbox) = Socket::new(
                endpoint.hub().clone(),
                config.settings().clone(),
                serializer,
                outbox,
                Arc::new("alice".to_owned()),
                None,
            );
            let join = match serializer {
                Serializer::V1 => {
                    r#"{"topic":"plain:1","event":"phx_join","payload":{},"ref":"1"}"#
                }
                Serializer::V2 => r#"["1","1","plain:1","phx_join",{}]"#,
            };
            socket
                .handle_message(serializer.decode_text(join.as_bytes()).unwrap())
                .await;
            sockets.push(socket);
        }
        buffer.take();
        ws_texts(&queue);
        long_polls.push(buffer);
        web_sockets.push(queue);
    }
    endpoint
        .broadcast("plain:1", "news", Payload::json(&json!({"n": 1})))
        .unwrap();
    let v1 = json!({"event": "news", "payload": {"n": 1}, "ref": null, "topic": "plain:1"});
    let v2 = json!([null, null, "plain:1", "news", {"n": 1}]);
    for (at, expected) in [v1, v2].into_iter().enumerate() {
        let polled: Vec<Value> = long_polls[at]
            .take()
            .iter()
            .map(|b| serde_json::from_slice(b).expect("bare JSON text for long poll"))
            .collect();
        assert_eq!(polled, vec![expected.clone()]);
        assert_eq!(ws_texts(&web_sockets[at]), vec![expected]);
    }
}

/// Pushes what it is sent three ways: as it came (owned), shared, and a small one.
struct PushBack;

impl Channel for PushBack {
    type Assigns = String;
    type Info = ();

    async fn join(
        &mut self,
        _topic: &str,
        _p: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        Ok(Payload::empty_object())
    }

    async fn handle_in(
        &mut self,
        _event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let shared = p.clone().into_shared();
        ctx.push("owned", p).unwrap();
        ctx.push("shared", shared.clone()).unwrap();
        ctx.push("shared_again", shared).unwrap();
        ctx.push("small", json!({"n": 1})).unwrap();
        HandleResult::NoReply
    }
}

#[tokio::test]
async fn pushes_written_around_their_payload_are_byte_for_byte_the_encoded_frames() {
    let endpoint = Endpoint::builder().build();
    let config = SocketConfig::new(WithUser)
        .channel("list:*", || PushBack)
        .into_options();
    // A presence-list-like payload past the own-segment size, with text that needs
    // escaping, and one just under it.
    let entry = |i: usize| format!(r#""u\"{i}":{{"metas":[{{"phx_ref":"F{i}é"}}]}}"#);
    let big = format!(
        "{{{}}}",
        (0..2_000).map(entry).collect::<Vec<_>>().join(",")
    );
    let small = format!(r#"{{"pad":"{}"}}"#, "x".repeat(OWN_SEGMENT - 20));
    assert!(big.len() > 65_535, "a 64-bit WebSocket length");
    for payload in [big, small] {
        for serializer in [Serializer::V1, Serializer::V2] {
            let buffer = Arc::new(LongPollBuffer::new(100));
            let queue = Arc::new(crate::outbox::WsQueue::new(100, 1 << 24, 1 << 24));
            for outbox in [
                Outbox::LongPoll(buffer.clone()),
                Outbox::WebSocket(queue.clone()),
            ] {
                let (mut socket, _inbox) = Socket::new(
                    endpoint.hub().clone(),
                    config.settings().clone(),
                    serializer,
                    outbox,
                    Arc::new("alice".to_owned()),
                    None,
                );
                let (join, push) = match serializer {
                    Serializer::V1 => (
                        r#"{"topic":"list:1","event":"phx_join","payload":{},"ref":"7"}"#
                            .to_owned(),
                        format!(
                            r#"{{"topic":"list:1","event":"push","payload":{payload},"ref":"8"}}"#
                        ),
                    ),
                    Serializer::V2 => (
                        r#"["7","7","list:1","phx_join",{}]"#.to_owned(),
                        format!(r#"["7","8","list:1","push",{payload}]"#),
                    ),
                };
                for text in [join, push] {
                    socket
                        .handle_message(serializer.decode_text(text.as_bytes()).unwrap())
                        .await;
                }
            }
            let join_ref = Ref::from("7");
            let small = json!({"n": 1}).to_string();
            let expected: Vec<Vec<u8>> = [
                ("owned", payload.as_str()),
                ("shared", payload.as_str()),
                ("shared_again", payload.as_str()),
                ("small", small.as_str()),
            ]
            .into_iter()
            .map(|(event, body)| {
                let body = RawValue::from_string(body.to_owned()).unwrap();
                let mut out = Vec::new();
                serializer
                    .encode(
                        &Outbound::Message {
                            join_ref: Some(&join_ref),
                            r#ref: None,
                            topic: "list:1",
                            event,
                            payload: PayloadRef::Json(&body),
                        },
                        &mut out,
                    )
                    .unwrap();
                out
            })
            .collect();
            let polled: Vec<Vec<u8>> = buffer.take().iter().map(|b| b.to_vec()).collect();
            assert_eq!(polled[1..], expected, "long poll, {serializer:?}");
            let mut items = Vec::new();
            queue.take(&mut items, usize::MAX);
            let written: Vec<Vec<u8>> = items.iter().filter_map(|i| i.data()).collect();
            let framed: Vec<Vec<u8>> = expected
                .iter()
                .map(|m| crate::outbox::ws_frame(fastwebsockets::OpCode::Text, m).to_vec())
                .collect();
            assert_eq!(written[1..], framed, "WebSocket, {serializer:?}");
            let around = items
                .iter()
                .filter(|i| matches!(i, crate::outbox::WsOut::Around(_)))
                .count();
            let want = if payload.len() >= OWN_SEGMENT { 3 } else { 2 };
            assert_eq!(around, want, "frames written around their payload");
        }
    }
}

#[tokio::test]
async fn a_presence_change_right_after_a_diff_waits_for_the_window_across_flush_ticks() {
    // A long window, so the whole test runs inside the first one.
    // One diff per window on its own, so the second change is held.
    let endpoint = Endpoint::builder()
        .presence_burst_window(std::time::Duration::from_secs(60))
        .presence_burst_limit(1)
        .build();
    let mut observer = Harness::on(endpoint.clone(), Serializer::V2, 100, None);
    let mut member = Harness::on(endpoint.clone(), Serializer::V2, 100, None);
    observer
        .send(json!(["1", "1", "room:1", "phx_join", {}]))
        .await;
    member
        .send(json!(["3", "3", "room:1", "phx_join", {}]))
        .await;
    observer.frames();
    let diffs = |h: &Harness| {
        h.frames()
            .into_iter()
            .filter(|f| f[3] == "presence_diff")
            .count()
    };
    member
        .send(json!(["3", "4", "room:1", "track", {"key": "a"}]))
        .await;
    assert_eq!(
        diffs(&observer),
        1,
        "the first change after a quiet window goes out at once"
    );
    // The flusher's tick inside the window must keep the topic's throttle state.
    endpoint.hub().tracker.flush_due(endpoint.pubsub());
    member
        .send(json!(["3", "5", "room:1", "track", {"key": "b"}]))
        .await;
    endpoint.hub().tracker.flush_due(endpoint.pubsub());
    assert_eq!(diffs(&observer), 0, "held until the window ends");
}

// --- The driver: backpressure bounds and close (what mutation testing found untested) ---

/// A channel counting its `terminate` calls.
struct TerminateProbe(Arc<std::sync::atomic::AtomicUsize>);

impl Channel for TerminateProbe {
    type Assigns = String;
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
        _: &str,
        _: Payload,
        _: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::NoReply
    }

    async fn terminate(&mut self, _: TerminateReason, _: &mut ChannelContext<'_, Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Alice's V2 socket on `endpoint` with `config`'s routes, writing to `outbox`.
fn alice_socket(
    endpoint: &Endpoint,
    config: SocketConfig<String>,
    outbox: Outbox,
) -> (Socket, SocketInbox) {
    Socket::new(
        endpoint.hub().clone(),
        config.into_options().settings().clone(),
        Serializer::V2,
        outbox,
        Arc::new("alice".to_owned()),
        None,
    )
}

/// A driver over a V2 socket whose `probe:*` channels count their terminations.
fn driver() -> (Driver, Arc<std::sync::atomic::AtomicUsize>, Endpoint) {
    let terminated = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = terminated.clone();
    let endpoint = Endpoint::builder().build();
    let (socket, inbox) = alice_socket(
        &endpoint,
        SocketConfig::new(WithUser).channel("probe:*", move || TerminateProbe(counter.clone())),
        Outbox::LongPoll(Arc::new(LongPollBuffer::new(10_000))),
    );
    (Driver::new(socket, inbox, None), terminated, endpoint)
}

/// A client push on a joined-or-not topic with a JSON string payload of `len` bytes.
fn push_of(len: usize) -> Message {
    let body = "x".repeat(len.saturating_sub(2));
    Serializer::V2
        .decode_text(
            json!([null, "1", "probe:1", "ev", body])
                .to_string()
                .as_bytes(),
        )
        .expect("valid frame")
}

#[tokio::test]
async fn the_driver_stops_reading_at_32_waiting_messages() {
    let (mut driver, _, _endpoint) = driver();
    let now = std::time::Instant::now();
    for _ in 0..31 {
        driver.receive(push_of(10), now);
    }
    assert!(
        driver.accepts(),
        "31 small messages leave room for one more"
    );
    driver.receive(push_of(10), now);
    assert!(!driver.accepts(), "32 waiting messages stop reading");
}

#[tokio::test]
async fn the_driver_counts_waiting_payload_bytes_up_to_one_mebibyte() {
    let (mut driver, _, _endpoint) = driver();
    let now = std::time::Instant::now();
    // Far above any small constant, far below the budget: still reading.
    driver.receive(push_of(64 * 1024), now);
    assert!(driver.accepts(), "64 KiB waiting is under the 1 MiB budget");
    // Exactly the budget in total is still accepted; one byte more is not.
    driver.receive(push_of(1024 * 1024 - 64 * 1024), now);
    assert!(
        driver.accepts(),
        "exactly 1 MiB waiting is still under the bound"
    );
    driver.receive(push_of(1), now);
    assert!(
        !driver.accepts(),
        "past 1 MiB waiting the driver stops reading"
    );
}

#[tokio::test]
async fn running_a_waiting_message_gives_its_bytes_back() {
    let (mut driver, _, _endpoint) = driver();
    let now = std::time::Instant::now();
    driver.receive(push_of(1024 * 1024 + 1), now);
    assert!(
        !driver.accepts(),
        "one message over the budget stops reading"
    );
    // The push goes to an unjoined topic: answered with an error, and done.
    let step = tokio::time::timeout(std::time::Duration::from_secs(10), driver.step(true));
    assert!(matches!(
        step.await.expect("the step finishes"),
        Flow::Continue
    ));
    assert!(driver.accepts(), "its bytes no longer count once it ran");
    driver.receive(push_of(1024 * 1024), now);
    assert!(
        driver.accepts(),
        "nothing of it is left over: a whole budget fits again"
    );
}

#[tokio::test]
async fn closing_the_driver_terminates_its_channels() {
    let (mut driver, terminated, endpoint) = driver();
    let join = Serializer::V2
        .decode_text(
            json!(["1", "1", "probe:1", "phx_join", {}])
                .to_string()
                .as_bytes(),
        )
        .expect("valid frame");
    driver.receive(join, std::time::Instant::now());
    let step = tokio::time::timeout(std::time::Duration::from_secs(10), driver.step(true));
    step.await.expect("the join runs");
    assert_eq!(endpoint.hub().pubsub.subscriber_count("probe:1"), 1);
    driver.close().await;
    assert_eq!(
        terminated.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "close runs terminate (dropping the socket would only release it)"
    );
    assert_eq!(endpoint.hub().pubsub.subscriber_count("probe:1"), 0);
}

// --- Exact routes and app state (mutation-test misses) ---

/// The app state the `state:*` channel reads.
struct Greeting(&'static str);

/// Answers its join with the endpoint's [`Greeting`], if any.
struct StateReader;

impl Channel for StateReader {
    type Assigns = String;
    type Info = ();

    async fn join(
        &mut self,
        _: &str,
        _: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        let greeting = ctx.state::<Greeting>().map(|g| g.0);
        Ok(Payload::json(&json!({ "greeting": greeting })))
    }

    async fn handle_in(
        &mut self,
        _: &str,
        _: Payload,
        _: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::NoReply
    }
}

/// A V2 socket on `endpoint` with an exact `lobby` route and a `state:*` route; returns
/// it with the buffer its frames go to.
fn socket_with_routes(endpoint: &Endpoint) -> (Socket, SocketInbox, Arc<LongPollBuffer>) {
    let buffer = Arc::new(LongPollBuffer::new(10_000));
    let config = SocketConfig::new(WithUser)
        .channel("lobby", || PlainChannel)
        .channel("state:*", || StateReader);
    let (socket, inbox) = alice_socket(endpoint, config, Outbox::LongPoll(buffer.clone()));
    (socket, inbox, buffer)
}

async fn join_reply(socket: &mut Socket, buffer: &LongPollBuffer, topic: &str) -> Value {
    let frame = json!(["1", "1", topic, "phx_join", {}]).to_string();
    let msg = Serializer::V2
        .decode_text(frame.as_bytes())
        .expect("valid frame");
    socket.handle_message(msg).await;
    let frames: Vec<Value> = buffer
        .take()
        .iter()
        .map(|b| serde_json::from_slice(b).expect("JSON frame"))
        .collect();
    frames
        .into_iter()
        .find(|f| f[3] == "phx_reply")
        .map(|f| f[4].clone())
        .expect("a join reply")
}

#[tokio::test]
async fn an_exact_route_matches_its_topic_only() {
    let endpoint = Endpoint::builder().build();
    let (mut socket, _inbox, buffer) = socket_with_routes(&endpoint);
    assert_eq!(
        join_reply(&mut socket, &buffer, "lobby").await,
        ok(json!({}))
    );
    assert_eq!(
        join_reply(&mut socket, &buffer, "lobby:2").await,
        unmatched(),
        "an exact route is not a prefix"
    );
}

#[tokio::test]
async fn channels_read_the_app_state_given_to_the_endpoint() {
    let endpoint = Endpoint::builder().state(Greeting("hello")).build();
    let (mut socket, _inbox, buffer) = socket_with_routes(&endpoint);
    assert_eq!(
        join_reply(&mut socket, &buffer, "state:1").await,
        ok(json!({"greeting": "hello"}))
    );
    let bare = Endpoint::builder().build();
    let (mut socket, _inbox, buffer) = socket_with_routes(&bare);
    assert_eq!(
        join_reply(&mut socket, &buffer, "state:1").await,
        ok(json!({"greeting": null})),
        "no state given: None"
    );
}

// --- A channel ending its own socket (ChannelContext::close_socket / kill_socket) ---

/// `close` pushes then closes the socket with 4001; `kill` pushes then kills it.
struct Ender;

impl Channel for Ender {
    type Assigns = String;
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
        let _ = ctx.push("last", Payload::empty_object());
        match event {
            "close" => ctx.close_socket(4001),
            _ => ctx.kill_socket(),
        }
        HandleResult::noreply()
    }
}

/// Runs `event` on a joined `end:1` channel of a WebSocket-backed socket; returns the
/// socket's queue and the flow the socket reported.
async fn end_with(event: &str) -> (Arc<crate::outbox::WsQueue>, Flow) {
    let endpoint = Endpoint::builder().build();
    let queue = Arc::new(crate::outbox::WsQueue::new(100, 1 << 20, 1 << 20));
    let (mut socket, _inbox) = alice_socket(
        &endpoint,
        SocketConfig::new(WithUser).channel("end:*", || Ender),
        Outbox::WebSocket(queue.clone()),
    );
    for frame in [
        json!(["1", "1", "end:1", "phx_join", {}]),
        json!(["1", "2", "end:1", event, {}]),
    ] {
        let msg = Serializer::V2
            .decode_text(frame.to_string().as_bytes())
            .expect("valid frame");
        let flow = socket.handle_message(msg).await;
        if frame[3] != "phx_join" {
            return (queue, flow);
        }
    }
    unreachable!()
}

#[tokio::test]
async fn close_socket_closes_in_order_with_its_code() {
    let (queue, flow) = end_with("close").await;
    assert_eq!(flow, Flow::Close(4001));
    assert_eq!(queue.close_code(), 4001);
    assert!(!queue.is_killed(), "an orderly close, not a kill");
    let mut items = Vec::new();
    queue.take(&mut items, usize::MAX);
    let close = items
        .iter()
        .position(|i| matches!(i, crate::outbox::WsOut::Close(_)));
    let last = items.iter().position(|i| {
        i.data()
            .is_some_and(|f| f.windows(6).any(|w| w == b"\"last\""))
    });
    assert!(
        matches!((last, close), (Some(l), Some(c)) if l < c),
        "the push made before the close goes out first, then the close frame"
    );
}

#[tokio::test]
async fn kill_socket_aborts_the_transport_without_a_close_frame() {
    let (queue, flow) = end_with("kill").await;
    assert!(matches!(flow, Flow::Close(_)), "the socket ends");
    assert!(
        queue.is_killed(),
        "the writer is stopped at once: nothing queued is written"
    );
    assert_eq!(queue.kill_code(), crate::outbox::websocket::CLOSE_ABORT);
}

// --- Fan-out counts deliveries and drops (phx_deliveries_total, phx_frames_dropped_total) ---

#[test]
fn a_fan_out_counts_what_it_delivered_and_what_it_dropped() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        // The counters bind to the recorder active when they are made.
        let pubsub = PubSub::with_telemetry(Arc::new(Telemetry::new()));
        let channel = |queue: &Arc<crate::outbox::WsQueue>| Subscriber {
            instance: pubsub.next_instance(),
            target: Target::Channel {
                outbox: Outbox::WebSocket(queue.clone()),
                serializer: Serializer::V2,
                mailbox: Arc::new(Inbox::default()),
                intercepts: &[],
            },
        };
        let queue = || Arc::new(crate::outbox::WsQueue::new(100, 1 << 20, 1 << 20));
        let (open, killed) = (queue(), queue());
        killed.kill(1011);
        for queue in [&open, &open, &killed] {
            pubsub.subscribe("room:1", channel(queue));
        }
        pubsub
            .broadcast("room:1", "news", Payload::empty_object())
            .expect("broadcast");
    });
    // One snapshot: taking one resets the debugging recorder's counters.
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == name)
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
    };
    assert_eq!(
        counter("phx_deliveries_total"),
        Some(2),
        "two open outboxes"
    );
    assert_eq!(
        counter("phx_frames_dropped_total"),
        Some(1),
        "one killed connection"
    );
}
