//! Testing channels in process, like `Phoenix.ChannelTest`: no network, no client.
//!
//! A [`TestSocket`] connects through a socket mounted on an [`Endpoint`] (its connect
//! hook runs), joins topics, pushes events and waits for replies and pushes, exactly as
//! the socket state machine handles a real client's messages (docs/protocol.md §3).
//! [`BroadcastProbe`] is `@endpoint.subscribe(topic)` + `assert_broadcast`.
//!
//! ```
//! use phx_server::testing::TestSocket;
//! use phx_server::{AcceptAll, Channel, ChannelContext, Endpoint, HandleResult, JoinResult, Payload, SocketConfig};
//! use serde_json::json;
//!
//! #[derive(Default)]
//! struct Echo;
//! impl Channel for Echo {
//!     type Assigns = ();
//!     type Info = ();
//!     async fn join(&mut self, _t: &str, _p: Payload, _c: &mut ChannelContext<'_, Self>) -> JoinResult {
//!         Ok(json!({"welcome": true}).into())
//!     }
//!     async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
//!         let _ = ctx.push("echoed", payload.clone());
//!         HandleResult::ok(payload)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let endpoint = Endpoint::builder()
//!     .socket("/socket", SocketConfig::new(AcceptAll).channel("echo:*", Echo::default))
//!     .build();
//! let mut socket = TestSocket::connect(&endpoint, "/socket", json!({})).await.unwrap();
//! assert_eq!(socket.join("echo:1", json!({})).await, Ok(json!({"welcome": true})));
//! let reply = socket.push("echo:1", "hi", json!({"n": 1})).await;
//! assert_eq!(reply.status, "ok");
//! assert_eq!(reply.response, json!({"n": 1}));
//! assert_eq!(socket.assert_push("echo:1", "echoed").await, json!({"n": 1}));
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use phx_protocol::{Message, Payload, Ref, Serializer};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::config::Accepted;
use crate::connect::{ConnectInfo, Refusal, Transport};
use crate::endpoint::Endpoint;
use crate::outbox::{LongPollBuffer, Outbox};
use crate::params::Params;
use crate::pubsub::{Broadcast, InstanceId, Mailbox, Subscriber, Target};
use crate::socket::{Driver, Flow};
use crate::transport::Authorized;

/// How long an assertion waits for what it expects. Generous: tests run on loaded
/// machines, and a passing assertion returns as soon as the frame is there.
pub const ASSERT_TIMEOUT: Duration = Duration::from_secs(10);

/// A reply to a push: `{"status": status, "response": response}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// `ok`, `error`, or the channel's own status.
    pub status: String,
    /// The response, as JSON (a binary response is a JSON array of its bytes).
    pub response: Value,
}

/// One frame the socket wrote, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The join_ref, as its JSON value (`null` for broadcasts).
    pub join_ref: Value,
    /// The ref (`null` except for replies).
    pub r#ref: Value,
    /// The topic.
    pub topic: String,
    /// The event (`phx_reply` for replies).
    pub event: String,
    /// The payload as JSON (binary payloads as an array of bytes).
    pub payload: Value,
}

/// An in-process client of one socket (see the module docs and
/// [the guide](crate::guide::testing)).
///
/// ```
/// use phx_server::testing::TestSocket;
/// use phx_server::{Connect, ConnectInfo, Connected, Endpoint, Params, Refusal, SocketConfig};
/// use serde_json::json;
///
/// struct TokenSocket;
/// impl Connect for TokenSocket {
///     type Assigns = ();
///     async fn connect(&self, p: &Params, _: &ConnectInfo) -> Result<Connected<()>, Refusal> {
///         match p.get_str("token") {
///             Some("letmein") => Ok(Connected::new(())),
///             _ => Err(Refusal::forbidden()),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let endpoint = Endpoint::builder().socket("/socket", SocketConfig::new(TokenSocket)).build();
/// assert!(TestSocket::connect(&endpoint, "/socket", json!({"token": "nope"})).await.is_err());
/// let mut socket = TestSocket::connect(&endpoint, "/socket", json!({"token": "letmein"}))
///     .await
///     .unwrap();
/// // No channel routes on this socket: every join is refused as Phoenix refuses it.
/// assert_eq!(socket.join("room:1", json!({})).await, Err(json!({"reason": "unmatched topic"})));
/// # }
/// ```
pub struct TestSocket {
    to_socket: mpsc::UnboundedSender<Message>,
    buffer: Arc<LongPollBuffer>,
    received: VecDeque<Frame>,
    next_ref: u64,
    join_refs: std::collections::HashMap<String, String>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for TestSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestSocket")
            .field("unread", &self.received.len())
            .finish_non_exhaustive()
    }
}

impl TestSocket {
    /// Connects to the socket mounted at `path` with `params` (a JSON object), running
    /// its connect hook as a V2 client would (Phoenix's `connect(UserSocket, params)`).
    pub async fn connect(endpoint: &Endpoint, path: &str, params: Value) -> Result<Self, Refusal> {
        Self::connect_with(endpoint, path, params, None).await
    }

    /// Like [`TestSocket::connect`], with `authToken` as phoenix.js would pass it.
    pub async fn connect_with(
        endpoint: &Endpoint,
        path: &str,
        params: Value,
        auth_token: Option<String>,
    ) -> Result<Self, Refusal> {
        // A missing mount is a mistake in the test itself.
        let (options, services) = endpoint
            .mount(path)
            .unwrap_or_else(|| panic!("no socket mounted at {path:?}"));
        let params = match params {
            Value::Object(map) => Params::from_map(map),
            _ => Params::from_map(Map::new()),
        };
        let info = ConnectInfo {
            peer_addr: None,
            uri: hyper::Uri::from_static("/"),
            headers: hyper::HeaderMap::new(),
            auth_token,
            transport: Transport::Test,
        };
        let connected: Accepted = options.connect_hook().connect(&params, &info).await?;
        let buffer = Arc::new(LongPollBuffer::bounded(usize::MAX, usize::MAX));
        let authorized = Authorized {
            serializer: Serializer::V2,
            connected,
        };
        let (socket, inbox) =
            authorized.into_socket(services, options, Outbox::Test(buffer.clone()));
        let (to_socket, from_test) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            Driver::new(socket, inbox, options.inbound_limit()),
            from_test,
        ));
        Ok(Self {
            to_socket,
            buffer,
            received: VecDeque::new(),
            next_ref: 0,
            join_refs: Default::default(),
            task,
        })
    }

    fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// Sends a raw message (`join_ref` and `ref` as given); returns nothing, replies
    /// arrive as frames.
    pub fn send(
        &mut self,
        join_ref: Option<&str>,
        r#ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: impl Into<Payload>,
    ) {
        let message = Message {
            join_ref: join_ref.map(Ref::from),
            r#ref: r#ref.map(Ref::from),
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload: payload.into(),
        };
        // The socket task ends only with the socket; a closed socket ignores the test.
        let _ = self.to_socket.send(message);
    }

    /// Joins `topic` (Phoenix's `subscribe_and_join`): `Ok(response)` or
    /// `Err(response)` as the channel's `join` answered.
    pub async fn join(&mut self, topic: &str, payload: impl Into<Payload>) -> Result<Value, Value> {
        let r#ref = self.next_ref();
        self.join_refs.insert(topic.to_owned(), r#ref.clone());
        self.send(Some(&r#ref), Some(&r#ref), topic, "phx_join", payload);
        let reply = self.assert_reply(&r#ref).await;
        match reply.status.as_str() {
            "ok" => Ok(reply.response),
            _ => {
                self.join_refs.remove(topic);
                Err(reply.response)
            }
        }
    }

    /// Pushes `event` to the channel on `topic` and waits for its reply.
    ///
    /// # Panics
    ///
    /// If no reply comes within [`ASSERT_TIMEOUT`] (a `noreply` handler): use
    /// [`TestSocket::push_noreply`] for those.
    pub async fn push(&mut self, topic: &str, event: &str, payload: impl Into<Payload>) -> Reply {
        let r#ref = self.push_noreply(topic, event, payload);
        self.assert_reply(&r#ref).await
    }

    /// Pushes `event` without waiting for a reply; returns the push's ref (for
    /// [`TestSocket::assert_reply`]).
    pub fn push_noreply(
        &mut self,
        topic: &str,
        event: &str,
        payload: impl Into<Payload>,
    ) -> String {
        let r#ref = self.next_ref();
        let join_ref = self.join_refs.get(topic).cloned();
        self.send(join_ref.as_deref(), Some(&r#ref), topic, event, payload);
        r#ref
    }

    /// Leaves `topic` and waits for the reply.
    pub async fn leave(&mut self, topic: &str) -> Reply {
        let reply = self.push(topic, "phx_leave", Payload::empty_object()).await;
        self.join_refs.remove(topic);
        reply
    }

    /// Waits for the reply to the push with `ref`.
    pub async fn assert_reply(&mut self, r#ref: &str) -> Reply {
        let frame = self
            .take_frame(|f| f.event == "phx_reply" && f.r#ref == r#ref)
            .await
            .unwrap_or_else(|| panic!("no reply to ref {ref:?} within {ASSERT_TIMEOUT:?}"));
        Reply {
            status: frame.payload["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            response: frame.payload["response"].clone(),
        }
    }

    /// Waits for `event` pushed (or broadcast) to this client on `topic`; returns its
    /// payload (Phoenix's `assert_push`).
    pub async fn assert_push(&mut self, topic: &str, event: &str) -> Value {
        self.take_frame(|f| f.topic == topic && f.event == event)
            .await
            .unwrap_or_else(|| panic!("no {event:?} on {topic:?} within {ASSERT_TIMEOUT:?}"))
            .payload
    }

    /// Checks that no `event` reaches this client on `topic` within `within` (Phoenix's
    /// `refute_push`).
    pub async fn refute_push(&mut self, topic: &str, event: &str, within: Duration) {
        if let Some(frame) = self
            .take_frame_within(within, |f| f.topic == topic && f.event == event)
            .await
        {
            panic!("unexpected {event:?} on {topic:?}: {frame:?}");
        }
    }

    /// The next frame of any kind, if one comes within [`ASSERT_TIMEOUT`].
    pub async fn next_frame(&mut self) -> Option<Frame> {
        self.take_frame(|_| true).await
    }

    /// Whether the socket has ended (closed by the server, a disconnect, or a crash).
    pub fn is_closed(&self) -> bool {
        self.task.is_finished()
    }

    /// Closes the socket as a client going away would: every channel terminates.
    pub async fn close(self) {
        drop(self.to_socket);
        let _ = self.task.await;
    }

    async fn take_frame(&mut self, matches: impl Fn(&Frame) -> bool) -> Option<Frame> {
        self.take_frame_within(ASSERT_TIMEOUT, matches).await
    }

    async fn take_frame_within(
        &mut self,
        within: Duration,
        matches: impl Fn(&Frame) -> bool,
    ) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(at) = self.received.iter().position(&matches) {
                return self.received.remove(at);
            }
            let notified = self.buffer.notified();
            let frames = self.buffer.take();
            if frames.is_empty() {
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return None;
                }
                continue;
            }
            self.received.extend(frames.iter().filter_map(decode));
        }
    }
}

/// Drives the socket: messages from the test in, callbacks one at a time.
async fn run(mut driver: Driver, mut from_test: mpsc::UnboundedReceiver<Message>) {
    loop {
        tokio::select! {
            msg = from_test.recv() => {
                let Some(msg) = msg else { break };
                if let Flow::Close(_) = driver.receive(msg, std::time::Instant::now()) {
                    break;
                }
            }
            flow = driver.step(true) => {
                if let Flow::Close(_) = flow {
                    break;
                }
            }
        }
    }
    driver.close().await;
}

/// A V2 frame as the socket wrote it: a JSON array, or a binary frame (§2.4).
fn decode(bytes: &Bytes) -> Option<Frame> {
    if bytes.first() == Some(&b'[') {
        let value: Value = serde_json::from_slice(bytes).ok()?;
        let [join_ref, r#ref, topic, event, payload] = value.as_array()?.as_slice() else {
            return None;
        };
        return Some(Frame {
            join_ref: join_ref.clone(),
            r#ref: r#ref.clone(),
            topic: topic.as_str()?.to_owned(),
            event: event.as_str()?.to_owned(),
            payload: payload.clone(),
        });
    }
    decode_binary(bytes)
}

fn decode_binary(bytes: &[u8]) -> Option<Frame> {
    let (&kind, rest) = bytes.split_first()?;
    let field = |rest: &mut &[u8], len: u8| -> Option<String> {
        let (text, after) = rest.split_at_checked(usize::from(len))?;
        *rest = after;
        String::from_utf8(text.to_vec()).ok()
    };
    let data = |rest: &[u8]| Value::from(rest.to_vec());
    match kind {
        // push: join_ref, topic, event
        0 => {
            let (sizes, mut rest) = rest.split_at_checked(3)?;
            let join_ref = field(&mut rest, sizes[0])?;
            let topic = field(&mut rest, sizes[1])?;
            let event = field(&mut rest, sizes[2])?;
            Some(Frame {
                join_ref: Value::from(join_ref),
                r#ref: Value::Null,
                topic,
                event,
                payload: data(rest),
            })
        }
        // reply: join_ref, ref, topic, status
        1 => {
            let (sizes, mut rest) = rest.split_at_checked(4)?;
            let join_ref = field(&mut rest, sizes[0])?;
            let r#ref = field(&mut rest, sizes[1])?;
            let topic = field(&mut rest, sizes[2])?;
            let status = field(&mut rest, sizes[3])?;
            let mut payload = Map::new();
            payload.insert("status".into(), Value::from(status));
            payload.insert("response".into(), data(rest));
            Some(Frame {
                join_ref: Value::from(join_ref),
                r#ref: Value::from(r#ref),
                topic,
                event: "phx_reply".into(),
                payload: Value::Object(payload),
            })
        }
        // broadcast: topic, event
        2 => {
            let (sizes, mut rest) = rest.split_at_checked(2)?;
            let topic = field(&mut rest, sizes[0])?;
            let event = field(&mut rest, sizes[1])?;
            Some(Frame {
                join_ref: Value::Null,
                r#ref: Value::Null,
                topic,
                event,
                payload: data(rest),
            })
        }
        _ => None,
    }
}

/// Subscribes to a topic to see what is broadcast on it (Phoenix's
/// `@endpoint.subscribe(topic)` and `assert_broadcast`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use phx_server::testing::BroadcastProbe;
/// let endpoint = phx_server::Endpoint::builder().build();
/// let mut probe = BroadcastProbe::subscribe(&endpoint, "room:lobby");
/// endpoint.broadcast("room:lobby", "new_msg", serde_json::json!({"body": "hi"})).unwrap();
/// assert_eq!(probe.assert_broadcast("new_msg").await, serde_json::json!({"body": "hi"}));
/// # }
/// ```
pub struct BroadcastProbe {
    endpoint: Endpoint,
    topic: String,
    instance: InstanceId,
    received: mpsc::UnboundedReceiver<(String, Value)>,
}

impl fmt::Debug for BroadcastProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastProbe")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// Receives every broadcast on the topic, decoded (nothing is encoded for it).
#[derive(Debug)]
struct ProbeMailbox(mpsc::UnboundedSender<(String, Value)>);

impl Mailbox for ProbeMailbox {
    fn intercepted(&self, _instance: InstanceId, broadcast: Arc<Broadcast>) {
        let payload = match &broadcast.payload {
            Payload::Json(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            Payload::Binary(bytes) => Value::from(bytes.to_vec()),
        };
        let _ = self.0.send((broadcast.event.clone(), payload));
    }
    fn disconnect(&self) {}
}

impl BroadcastProbe {
    /// Starts listening on `topic`.
    pub fn subscribe(endpoint: &Endpoint, topic: &str) -> Self {
        let (tx, received) = mpsc::unbounded_channel();
        let pubsub = endpoint.pubsub();
        let instance = pubsub.next_instance();
        pubsub.subscribe(
            topic,
            Subscriber {
                instance,
                target: Target::Listener(Arc::new(ProbeMailbox(tx))),
            },
        );
        Self {
            endpoint: endpoint.clone(),
            topic: topic.to_owned(),
            instance,
            received,
        }
    }

    /// Waits for `event` on the topic; returns its payload.
    pub async fn assert_broadcast(&mut self, event: &str) -> Value {
        let deadline = tokio::time::Instant::now() + ASSERT_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.received.recv()).await {
                Ok(Some((seen, payload))) if seen == event => return payload,
                Ok(Some(_)) => continue,
                _ => panic!(
                    "no {event:?} broadcast on {:?} within {ASSERT_TIMEOUT:?}",
                    self.topic
                ),
            }
        }
    }
}

impl Drop for BroadcastProbe {
    fn drop(&mut self) {
        self.endpoint
            .pubsub()
            .unsubscribe(&self.topic, self.instance);
    }
}
