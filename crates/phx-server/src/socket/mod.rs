//! The per-connection socket: the channel table and the state machine of
//! docs/protocol.md §3.
//!
//! Transport-agnostic: the WebSocket and long-poll drivers feed it decoded messages and
//! messages from other tasks, and it writes everything through its [`Outbox`]. All
//! callbacks of all its channels run here, one at a time, so frames leave in the order
//! they were produced (§3.8). Panics in channel code are caught per callback (§3.6).
//!
//! The socket sees a channel only through [`ErasedChannel`], which the channel layer
//! implements for every [`Channel`](crate::Channel): that keeps this module below the
//! user-facing channel API.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use phx_protocol::{event, Message, Outbound, Payload, PayloadRef, Ref, Serializer};
use serde_json::value::RawValue;

use crate::outbox::{Outbox, OutboxError, CLOSE_SLOW_READER};
use crate::outcome::{HandleResult, JoinResult, TerminateReason};
use crate::presence::Tracker;
use crate::pubsub::{Broadcast, InstanceId, Mailbox, PubSub, Subscriber, Target, CLOSE_DISCONNECT};
use crate::state::State;
use crate::telemetry::{RouteTelemetry, Telemetry};

mod driver;
mod inbox;
mod router;

pub(crate) use driver::Driver;
pub(crate) use inbox::Inbox;
pub(crate) use router::{ChannelFactory, Router};

/// Messages a socket receives from outside its transport.
#[derive(Debug)]
pub(crate) enum SocketMsg {
    /// An intercepted broadcast for one channel instance.
    Intercepted(InstanceId, Arc<Broadcast>),
    /// An info for one channel instance (`ChannelRef::send`).
    Info(InstanceId, Box<dyn Any + Send>),
    /// `disconnect` on the socket's id topic (§1.7); its outbox is already closed.
    Disconnect,
    /// The inbox refused a message for lack of room: the socket is too slow.
    Overflowed,
}

/// The sending side of a socket's inbox, cloned into subscriptions and channel refs.
pub(crate) type SocketInbox = Arc<Inbox>;

/// What the transport should do after a message was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// Close the connection with this WebSocket close code.
    Close(u16),
}

/// What every socket of an endpoint shares: PubSub, presence, app state.
#[derive(Clone, Debug)]
pub(crate) struct Hub {
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) pubsub: PubSub,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) state: State,
}

/// The socket's settings, from its `SocketConfig`.
#[derive(Clone, Debug)]
pub(crate) struct SocketSettings {
    pub(crate) router: Router,
    pub(crate) max_channels: usize,
}

/// The join_refs of one channel instance (§3.2).
#[derive(Clone, Debug)]
pub(crate) struct JoinRefs {
    /// As received with `phx_join` (null for V1): what §3.3/§3.4 compare and what
    /// `phx_close`/`phx_error` carry.
    pub(crate) stored: Option<Ref>,
    /// `join_ref || ref`: what pushes and replies carry.
    pub(crate) channel: Option<Ref>,
}

/// Why a push or reply was not sent.
///
/// Most code ignores it (`let _ = ctx.push(...)`): a push fails when the client is
/// gone or too slow, and the socket is closing then anyway. The cases worth a look are
/// mistakes in the channel: pushing from `join`, or a payload that is not an object.
///
/// ```
/// # use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
/// use phx_server::PushError;
/// use serde_json::json;
/// # #[derive(Default)] struct Room;
/// # impl Channel for Room {
/// #   type Assigns = (); type Info = ();
/// async fn join(&mut self, _: &str, _: Payload, ctx: &mut ChannelContext<'_, Self>) -> JoinResult {
///     // Too early: send yourself an info and push from handle_info.
///     assert_eq!(ctx.push("hello", json!({})), Err(PushError::NotJoined));
///     Ok(Payload::empty_object())
/// }
/// #   async fn handle_in(&mut self, _: &str, _: Payload, ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
/// #       assert_eq!(ctx.push("n", json!(7)), Err(PushError::NotAnObject));
/// #       HandleResult::noreply()
/// #   }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Pushes are refused while the channel is joining (Phoenix raises); send yourself
    /// an info from `join` and push from `handle_info`.
    #[error("cannot push before the channel has joined")]
    NotJoined,
    /// The serializer refused (a header field over 255 bytes, binary on V1, §2.4).
    #[error(transparent)]
    Encode(#[from] phx_protocol::EncodeError),
    /// The transport refused or is gone.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Payloads must be JSON objects or binary (§5).
    #[error("push payloads must be JSON objects or binary")]
    NotAnObject,
}

/// A push payload of this many bytes or more is written from its own buffer rather than
/// copied into the frame ([`SocketCore::push`]): past it, a copy costs more than
/// the extra piece of the vectored write.
pub(crate) const OWN_SEGMENT: usize = 4096;

/// State shared by all channels of a socket; what a channel's context borrows.
#[derive(Debug)]
pub(crate) struct SocketCore {
    pub(crate) hub: Hub,
    pub(crate) serializer: Serializer,
    pub(crate) outbox: Outbox,
    pub(crate) inbox: SocketInbox,
    /// What connect assigned, of the socket's `Connect::Assigns` type.
    pub(crate) assigns: Arc<dyn Any + Send + Sync>,
    pub(crate) id: Option<Arc<str>>,
    /// Infos a channel sent itself, run after the current callback.
    pub(crate) deferred: VecDeque<(InstanceId, Box<dyn Any + Send>)>,
    /// Set by a channel closing its own socket: the transport closes with this code.
    pub(crate) stop: Option<u16>,
    /// Set once the socket is closing: pushes from `terminate` go nowhere.
    closed: bool,
}

impl SocketCore {
    /// Encodes and queues one message.
    pub(crate) fn write(&mut self, msg: &Outbound<'_>) -> Result<(), PushError> {
        if self.closed {
            return Ok(());
        }
        // A fresh buffer per frame: an idle socket keeps none.
        let mut encoded = Vec::new();
        let kind = self.serializer.encode(msg, &mut encoded)?;
        let frame = self.outbox.frame(kind, &encoded)?;
        self.outbox.send(frame)?;
        self.hub.telemetry.messages_out.increment(1);
        Ok(())
    }

    /// Encodes and queues a push (`[join_ref, null, topic, event, payload]`). A shared
    /// JSON payload (the presence list every joiner of a storm window gets), or one of
    /// at least [`OWN_SEGMENT`] bytes, is not copied into the frame: the frame is this
    /// socket's head and tail around the payload's own buffer (see
    /// [`Outbox::send_around`]), the same bytes on the wire.
    pub(crate) fn push(
        &mut self,
        join_ref: Option<&Ref>,
        topic: &str,
        event: &str,
        payload: Payload,
    ) -> Result<(), PushError> {
        let text = match payload {
            Payload::Json(text) if text.is_shared() || text.get().len() >= OWN_SEGMENT => text,
            payload => {
                return self.write(&Outbound::Message {
                    join_ref,
                    r#ref: None,
                    topic,
                    event,
                    payload: payload.as_ref(),
                })
            }
        };
        if self.closed {
            return Ok(());
        }
        let msg = Outbound::Message {
            join_ref,
            r#ref: None,
            topic,
            event,
            payload: PayloadRef::Json(&text),
        };
        let (mut head, mut tail) = (Vec::new(), Vec::new());
        let kind = self.serializer.encode_around(&msg, &mut head, &mut tail)?;
        self.outbox
            .send_around(kind, &head, text.into_bytes(), &tail)?;
        self.hub.telemetry.messages_out.increment(1);
        Ok(())
    }

    /// Writes a message the socket itself produced; failures are logged, not raised
    /// (the only possible ones are a closed transport and over-long binary fields).
    fn write_logged(&mut self, msg: &Outbound<'_>) {
        if let Err(error) = self.write(msg) {
            tracing::debug!(%error, "frame not written");
        }
    }

    fn reply(
        &mut self,
        join_ref: Option<&Ref>,
        r#ref: Option<&Ref>,
        topic: &str,
        status: &str,
        response: PayloadRef<'_>,
    ) {
        self.write_logged(&Outbound::Reply {
            join_ref,
            r#ref,
            topic,
            status,
            response,
        });
    }

    fn control(&mut self, join_ref: Option<&Ref>, topic: &str, event: &str, payload: &RawValue) {
        // phx_close / phx_error: ref = join_ref = the stored join_ref (§3.6).
        self.write_logged(&Outbound::Message {
            join_ref,
            r#ref: join_ref,
            topic,
            event,
            payload: PayloadRef::Json(payload),
        });
    }
}

/// What a channel callback sees of its socket: the socket's shared state and the
/// identity of the channel instance being called.
#[derive(Debug)]
pub(crate) struct Scope<'a> {
    pub(crate) core: &'a mut SocketCore,
    pub(crate) topic: &'a str,
    pub(crate) refs: &'a JoinRefs,
    pub(crate) instance: InstanceId,
    /// False during `join`: pushes are refused then.
    pub(crate) joined: bool,
    /// The `ref` of the client message being handled (`handle_in` only).
    pub(crate) message_ref: Option<Option<Ref>>,
}

/// A boxed callback future borrowing the channel and the socket.
pub(crate) type CallbackFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A channel as the socket drives it (implemented for every `Channel` by the channel
/// layer, which also turns the [`Scope`] into the channel's typed context).
pub(crate) trait ErasedChannel: Send {
    fn join<'a>(
        &'a mut self,
        topic: &'a str,
        payload: Payload,
        scope: Scope<'a>,
    ) -> CallbackFuture<'a, JoinResult>;
    fn handle_in<'a>(
        &'a mut self,
        event: &'a str,
        payload: Payload,
        scope: Scope<'a>,
    ) -> CallbackFuture<'a, HandleResult>;
    fn handle_out<'a>(
        &'a mut self,
        event: &'a str,
        payload: &'a Payload,
        scope: Scope<'a>,
    ) -> CallbackFuture<'a, HandleResult>;
    fn handle_info<'a>(
        &'a mut self,
        info: Box<dyn Any + Send>,
        scope: Scope<'a>,
    ) -> CallbackFuture<'a, HandleResult>;
    fn terminate<'a>(
        &'a mut self,
        reason: TerminateReason,
        scope: Scope<'a>,
    ) -> CallbackFuture<'a, ()>;
    /// Broadcast events this channel handles in `handle_out`.
    fn intercepts(&self) -> &'static [&'static str];
}

struct Entry {
    topic: String,
    instance: InstanceId,
    refs: JoinRefs,
    channel: Box<dyn ErasedChannel>,
    telemetry: Arc<RouteTelemetry>,
}

/// What a callback was asked to do.
enum Call {
    In {
        event: String,
        payload: Payload,
        r#ref: Option<Ref>,
    },
    Out(Arc<Broadcast>),
    Info(Box<dyn Any + Send>),
}

pub(crate) struct Socket {
    core: SocketCore,
    settings: Arc<SocketSettings>,
    channels: HashMap<String, Entry>,
    /// The socket's own subscription to its id topic.
    id_subscription: Option<InstanceId>,
}

fn json(text: &'static str) -> &'static RawValue {
    // Only called with the literal JSON constants below.
    serde_json::from_str(text).expect("static JSON")
}

fn empty() -> &'static RawValue {
    json("{}")
}

impl Socket {
    pub(crate) fn new(
        hub: Hub,
        settings: Arc<SocketSettings>,
        serializer: Serializer,
        outbox: Outbox,
        assigns: Arc<dyn Any + Send + Sync>,
        id: Option<String>,
    ) -> (Self, SocketInbox) {
        let inbox = SocketInbox::default();
        let inbox_rx = inbox.clone();
        let id: Option<Arc<str>> = id.map(Into::into);
        let id_subscription = id.as_ref().map(|id| {
            let instance = hub.pubsub.next_instance();
            hub.pubsub.subscribe(
                id,
                Subscriber {
                    instance,
                    target: Target::Socket {
                        mailbox: inbox.clone() as Arc<dyn Mailbox>,
                        outbox: outbox.clone(),
                    },
                },
            );
            instance
        });
        let core = SocketCore {
            hub,
            serializer,
            outbox,
            inbox,
            assigns,
            id,
            deferred: VecDeque::new(),
            stop: None,
            closed: false,
        };
        let socket = Self {
            core,
            settings,
            channels: HashMap::new(),
            id_subscription,
        };
        (socket, inbox_rx)
    }

    pub(crate) fn serializer(&self) -> Serializer {
        self.core.serializer
    }

    /// Handles one decoded client message (§3).
    pub(crate) async fn handle_message(&mut self, msg: Message) -> Flow {
        if driver::is_heartbeat(&msg) {
            if driver::answer_heartbeat(self.core.serializer, &self.core.outbox, &msg) {
                self.core.hub.telemetry.messages_out.increment(1);
            }
            return Flow::Continue;
        }
        match msg.event.as_str() {
            event::JOIN => self.join(msg).await,
            event::LEAVE => self.leave(msg).await,
            _ => self.route(msg).await,
        }
        self.drain_deferred().await;
        self.flow()
    }

    /// Handles a message from outside the transport.
    pub(crate) async fn handle_msg(&mut self, msg: SocketMsg) -> Flow {
        match msg {
            SocketMsg::Disconnect => return Flow::Close(CLOSE_DISCONNECT),
            SocketMsg::Overflowed => return Flow::Close(CLOSE_SLOW_READER),
            SocketMsg::Intercepted(instance, b) => {
                if let Some(topic) = self.topic_of(instance) {
                    self.call(&topic, Call::Out(b)).await;
                }
            }
            SocketMsg::Info(instance, info) => self.core.deferred.push_back((instance, info)),
        }
        self.drain_deferred().await;
        self.flow()
    }

    /// `Close` once a channel asked to close its socket.
    fn flow(&self) -> Flow {
        match self.core.stop {
            Some(code) => Flow::Close(code),
            None => Flow::Continue,
        }
    }

    fn topic_of(&self, instance: InstanceId) -> Option<String> {
        self.channels
            .values()
            .find(|e| e.instance == instance)
            .map(|e| e.topic.clone())
    }

    fn unmatched(&mut self, msg: &Message) {
        let response = PayloadRef::Json(json(r#"{"reason":"unmatched topic"}"#));
        self.core
            .reply(None, msg.r#ref.as_ref(), &msg.topic, "error", response);
    }

    /// §3.2 and §3.5.
    async fn join(&mut self, msg: Message) {
        let Message {
            join_ref,
            r#ref,
            topic,
            payload,
            ..
        } = msg;
        // §3.5: a duplicate join kills the old instance without terminate; its
        // phx_close goes after the new join reply.
        let replaced = self.channels.remove(&topic).map(|old| {
            self.forget(&old);
            old.refs.stored
        });
        let write_replaced_close = |core: &mut SocketCore| {
            if let Some(old_ref) = &replaced {
                core.control(old_ref.as_ref(), &topic, event::CLOSE, empty());
            }
        };

        let Some((route, factory)) = self.settings.router.route(&topic) else {
            self.core.hub.telemetry.unmatched_joins.increment(1);
            let response = PayloadRef::Json(json(r#"{"reason":"unmatched topic"}"#));
            self.core
                .reply(None, r#ref.as_ref(), &topic, "error", response);
            write_replaced_close(&mut self.core);
            return;
        };
        let telemetry = self.core.hub.telemetry.route(route);
        telemetry.joins.increment(1);
        if self.channels.len() >= self.settings.max_channels {
            telemetry.join_errors.increment(1);
            tracing::error!(max = self.settings.max_channels, "too many channels joined");
            let response = PayloadRef::Json(json(r#"{"reason":"too many channels joined"}"#));
            self.core
                .reply(join_ref.as_ref(), r#ref.as_ref(), &topic, "error", response);
            write_replaced_close(&mut self.core);
            return;
        }

        let mut channel = factory();
        let instance = self.core.hub.pubsub.next_instance();
        let refs = JoinRefs {
            stored: join_ref.clone(),
            channel: join_ref.clone().or_else(|| r#ref.clone()),
        };
        let scope = Scope {
            core: &mut self.core,
            topic: &topic,
            refs: &refs,
            instance,
            joined: false,
            message_ref: None,
        };
        let started = std::time::Instant::now();
        let result = AssertUnwindSafe(channel.join(&topic, payload, scope))
            .catch_unwind()
            .await;
        let socket_id = self.core.id.as_deref().unwrap_or("");
        match &result {
            Ok(Ok(_)) => {
                tracing::info!(%topic, socket_id, "JOINED {topic} in {:?}", started.elapsed())
            }
            Ok(Err(_)) => tracing::info!(
                %topic,
                socket_id,
                "REFUSED JOIN {topic} in {:?}",
                started.elapsed()
            ),
            Err(_) => {}
        }
        match result {
            Ok(Ok(reply)) => {
                // In a cluster, the reply waits until other nodes' broadcasts to the
                // topic reach this node (the engine confirmed the subscription).
                let mut remote = self.core.hub.pubsub.prepare_remote(&topic);
                if let Some(remote) = remote.as_mut() {
                    remote.confirmed().await;
                }
                self.core.reply(
                    join_ref.as_ref(),
                    r#ref.as_ref(),
                    &topic,
                    "ok",
                    reply.as_ref(),
                );
                write_replaced_close(&mut self.core);
                // Subscribed only now, so no broadcast overtakes the join reply (§3.2).
                self.core.hub.pubsub.subscribe(
                    &topic,
                    Subscriber {
                        instance,
                        target: Target::Channel {
                            outbox: self.core.outbox.clone(),
                            serializer: self.core.serializer,
                            mailbox: self.core.inbox.clone() as Arc<dyn Mailbox>,
                            intercepts: channel.intercepts(),
                        },
                    },
                );
                drop(remote);
                telemetry.joined.increment(1.0);
                self.channels.insert(
                    topic.clone(),
                    Entry {
                        topic,
                        instance,
                        refs,
                        channel,
                        telemetry,
                    },
                );
            }
            Ok(Err(response)) => {
                telemetry.join_errors.increment(1);
                self.core.reply(
                    join_ref.as_ref(),
                    r#ref.as_ref(),
                    &topic,
                    "error",
                    response.as_ref(),
                );
                write_replaced_close(&mut self.core);
                self.untrack(instance);
            }
            Err(_panic) => {
                telemetry.join_errors.increment(1);
                tracing::error!(%topic, "channel join crashed");
                let response = PayloadRef::Json(json(r#"{"reason":"join crashed"}"#));
                self.core
                    .reply(join_ref.as_ref(), r#ref.as_ref(), &topic, "error", response);
                write_replaced_close(&mut self.core);
                self.untrack(instance);
            }
        }
    }

    /// §3.4.
    async fn leave(&mut self, msg: Message) {
        let Some(entry) = self.channels.get(&msg.topic) else {
            // Not joined: ok reply echoing the message's join_ref, no phx_close.
            let ok = PayloadRef::Json(empty());
            self.core.reply(
                msg.join_ref.as_ref(),
                msg.r#ref.as_ref(),
                &msg.topic,
                "ok",
                ok,
            );
            return;
        };
        if msg.join_ref.is_some() && msg.join_ref != entry.refs.stored {
            // The client raced a server close: Phoenix sends nothing.
            return;
        }
        let Some(mut entry) = self.channels.remove(&msg.topic) else {
            return;
        };
        self.forget(&entry);
        tracing::debug!(topic = %entry.topic, socket_id = self.core.id.as_deref().unwrap_or(""), "LEFT");
        let ok = PayloadRef::Json(empty());
        self.core.reply(
            entry.refs.channel.as_ref(),
            msg.r#ref.as_ref(),
            &entry.topic,
            "ok",
            ok,
        );
        self.core.control(
            entry.refs.stored.as_ref(),
            &entry.topic,
            event::CLOSE,
            empty(),
        );
        // Phoenix's channel process runs terminate after telling the socket to close,
        // so its pushes follow phx_close.
        self.terminate(&mut entry, TerminateReason::Left).await;
    }

    /// §3.3: a message for a joined channel, a stale one, or an unmatched topic.
    async fn route(&mut self, msg: Message) {
        let Some(entry) = self.channels.get(&msg.topic) else {
            self.unmatched(&msg);
            return;
        };
        if msg.join_ref.is_some() && msg.join_ref != entry.refs.stored {
            return; // stale join_ref: dropped silently (Phoenix ≥ 1.8.3)
        }
        let Message {
            r#ref,
            topic,
            event,
            payload,
            ..
        } = msg;
        self.call(
            &topic,
            Call::In {
                event,
                payload,
                r#ref,
            },
        )
        .await;
    }

    async fn drain_deferred(&mut self) {
        while let Some((instance, info)) = self.core.deferred.pop_front() {
            if let Some(topic) = self.topic_of(instance) {
                self.call(&topic, Call::Info(info)).await;
            }
        }
    }

    /// Runs one callback of the channel on `topic` and applies its result.
    async fn call(&mut self, topic: &str, call: Call) {
        let Self { core, channels, .. } = self;
        let Some(entry) = channels.get_mut(topic) else {
            return;
        };
        let message_ref = match &call {
            Call::In { r#ref, .. } => Some(r#ref.clone()),
            _ => None,
        };
        let scope = Scope {
            core,
            topic: &entry.topic,
            refs: &entry.refs,
            instance: entry.instance,
            joined: true,
            message_ref: message_ref.clone(),
        };
        let channel = &mut entry.channel;
        let result = match call {
            Call::In { event, payload, .. } => {
                let started = std::time::Instant::now();
                let result = AssertUnwindSafe(channel.handle_in(&event, payload, scope))
                    .catch_unwind()
                    .await;
                entry.telemetry.handle_in.record(started.elapsed());
                result
            }
            Call::Out(b) => {
                AssertUnwindSafe(channel.handle_out(&b.event, &b.payload, scope))
                    .catch_unwind()
                    .await
            }
            Call::Info(info) => {
                AssertUnwindSafe(channel.handle_info(info, scope))
                    .catch_unwind()
                    .await
            }
        };
        match result {
            Ok(outcome) => self.apply(topic, outcome, message_ref).await,
            Err(_panic) => {
                tracing::error!(%topic, "channel crashed");
                if let Some(mut entry) = self.channels.remove(topic) {
                    self.forget(&entry);
                    self.terminate(&mut entry, TerminateReason::Crashed).await;
                    self.write_crash(&entry);
                }
            }
        }
    }

    async fn apply(
        &mut self,
        topic: &str,
        outcome: HandleResult,
        message_ref: Option<Option<Ref>>,
    ) {
        let reply =
            |core: &mut SocketCore, entry_refs: &JoinRefs, status: &str, response: &Payload| {
                if let Some(r) = &message_ref {
                    core.reply(
                        entry_refs.channel.as_ref(),
                        r.as_ref(),
                        topic,
                        status,
                        response.as_ref(),
                    );
                } else {
                    tracing::warn!(
                        topic,
                        "reply from a callback that answers no message: ignored"
                    );
                }
            };
        match outcome {
            HandleResult::NoReply => {}
            HandleResult::Reply { status, response } => {
                if let Some(entry) = self.channels.get(topic) {
                    reply(&mut self.core, &entry.refs, &status, &response);
                }
            }
            HandleResult::Stop {
                reason,
                reply: stop_reply,
            } => {
                let Some(mut entry) = self.channels.remove(topic) else {
                    return;
                };
                if let Some((status, response)) = &stop_reply {
                    reply(&mut self.core, &entry.refs, status, response);
                }
                self.forget(&entry);
                if reason.is_clean() {
                    self.core.control(
                        entry.refs.stored.as_ref(),
                        &entry.topic,
                        event::CLOSE,
                        empty(),
                    );
                    self.terminate(&mut entry, TerminateReason::Stopped(reason))
                        .await;
                } else {
                    self.terminate(&mut entry, TerminateReason::Stopped(reason))
                        .await;
                    self.write_crash(&entry);
                }
            }
        }
    }

    fn write_crash(&mut self, entry: &Entry) {
        let payload = json(r#"{"reason":"channel_crash"}"#);
        self.core.control(
            entry.refs.stored.as_ref(),
            &entry.topic,
            event::ERROR,
            payload,
        );
    }

    fn untrack(&self, instance: InstanceId) {
        self.core
            .hub
            .tracker
            .untrack_instance_with(&self.core.hub.pubsub, instance);
    }

    /// Untracks the presences of a channel that left the table, then unsubscribes it.
    ///
    /// In that order so the leave diff also reaches this socket's own client: phoenix.js
    /// hands null-join_ref frames to every channel object of the topic, and a new channel
    /// object (rejoin, second `Channel`) may already have queued this instance's join
    /// diff; without the leave it would re-add the departed meta after its state (§6.3).
    fn forget(&self, entry: &Entry) {
        entry.telemetry.joined.decrement(1.0);
        self.untrack(entry.instance);
        self.core
            .hub
            .pubsub
            .unsubscribe(&entry.topic, entry.instance);
    }

    async fn terminate(&mut self, entry: &mut Entry, reason: TerminateReason) {
        let scope = Scope {
            core: &mut self.core,
            topic: &entry.topic,
            refs: &entry.refs,
            instance: entry.instance,
            joined: true,
            message_ref: None,
        };
        let fut = entry.channel.terminate(reason, scope);
        if AssertUnwindSafe(fut).catch_unwind().await.is_err() {
            tracing::error!(topic = %entry.topic, "channel terminate crashed");
        }
    }

    /// The connection ended: every channel terminates with reason closed, nothing more
    /// is written (§3.7), and the socket leaves its id topic.
    pub(crate) async fn close(&mut self) {
        self.core.closed = true;
        self.core.inbox.close();
        self.core.deferred.clear();
        let entries: Vec<Entry> = self.channels.drain().map(|(_, e)| e).collect();
        for mut entry in entries {
            self.forget(&entry);
            self.terminate(&mut entry, TerminateReason::Closed).await;
        }
        if let (Some(id), Some(instance)) = (&self.core.id, self.id_subscription.take()) {
            self.core.hub.pubsub.unsubscribe(id, instance);
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // A transport task that was aborted never ran `close`: still release shared state.
        for entry in self.channels.values() {
            self.forget(entry);
        }
        if let (Some(id), Some(instance)) = (&self.core.id, self.id_subscription.take()) {
            self.core.hub.pubsub.unsubscribe(id, instance);
        }
    }
}

#[cfg(test)]
mod tests;
