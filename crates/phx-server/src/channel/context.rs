//! What a channel callback can do: push, broadcast, reply later, message itself, read the
//! socket's assigns and the app's state.

use std::fmt;
use std::marker::PhantomData;

use phx_protocol::{Payload, Ref, Serializer};

use super::refs::{ChannelRef, ReplyRef};
use super::Channel;
use crate::connect::Transport;
use crate::presence::Presence;
use crate::pubsub::{BroadcastError, InstanceId, PubSub};
use crate::socket::{PushError, Scope};

/// The channel's view of its socket during a callback: Phoenix's `%Socket{}` plus the
/// functions of `Phoenix.Channel` (`push`, `broadcast`, `broadcast_from`, `reply`).
///
/// ```
/// use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
/// use serde_json::json;
///
/// struct User { name: String }
///
/// struct Room;
///
/// impl Channel for Room {
///     type Assigns = User;
///     type Info = ();
///
///     async fn join(&mut self, _t: &str, _p: Payload, ctx: &mut ChannelContext<'_, Self>) -> JoinResult {
///         Ok(json!({"hello": ctx.assigns().name}).into())
///     }
///
///     async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
///         match event {
///             // To everyone on the topic but this channel (Phoenix's broadcast_from!).
///             "typing" => {
///                 let _ = ctx.broadcast_from("typing", json!({"user": ctx.assigns().name}));
///                 HandleResult::noreply()
///             }
///             // Only to this client.
///             "whoami" => {
///                 let _ = ctx.push("you_are", json!({"name": ctx.assigns().name}));
///                 HandleResult::ok_empty()
///             }
///             // To another topic.
///             "notify" => {
///                 let _ = ctx.pubsub().broadcast("room:admins", "notice", payload);
///                 HandleResult::ok_empty()
///             }
///             _ => HandleResult::noreply(),
///         }
///     }
/// }
/// ```
pub struct ChannelContext<'a, C: Channel> {
    scope: Scope<'a>,
    _channel: PhantomData<fn() -> C>,
}

impl<C: Channel> fmt::Debug for ChannelContext<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelContext")
            .field("topic", &self.scope.topic)
            .field("instance", &self.scope.instance)
            .finish_non_exhaustive()
    }
}

impl<'a, C: Channel> ChannelContext<'a, C> {
    pub(crate) fn new(scope: Scope<'a>) -> Self {
        Self {
            scope,
            _channel: PhantomData,
        }
    }

    /// The channel's topic.
    pub fn topic(&self) -> &str {
        self.scope.topic
    }

    /// The channel's join_ref (`join_ref || ref` of its `phx_join`).
    pub fn join_ref(&self) -> Option<&Ref> {
        self.scope.refs.channel.as_ref()
    }

    /// This channel instance.
    pub fn instance(&self) -> InstanceId {
        self.scope.instance
    }

    /// What the socket's connect hook assigned (Phoenix's `socket.assigns`).
    pub fn assigns(&self) -> &C::Assigns {
        // Invariant: a socket only routes to channels whose `Assigns` is its connect
        // hook's `Assigns` (checked by `SocketConfig::channel`'s bounds), and the
        // transport stores exactly that value.
        self.scope
            .core
            .assigns
            .downcast_ref::<C::Assigns>()
            .expect("socket assigns are of the channel's Assigns type")
    }

    /// The app's state of type `T`, given to
    /// [`EndpointBuilder::state`](crate::EndpointBuilder::state); `None` if none was.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.scope.core.hub.state.get::<T>()
    }

    /// Socket id from connect, if any.
    pub fn socket_id(&self) -> Option<&str> {
        self.scope.core.id.as_deref()
    }

    /// The transport this socket runs over.
    pub fn transport(&self) -> Transport {
        self.scope.core.outbox.transport()
    }

    /// The serializer the client speaks.
    pub fn serializer(&self) -> Serializer {
        self.scope.core.serializer
    }

    /// The endpoint's PubSub, to broadcast to any topic or disconnect any socket id.
    pub fn pubsub(&self) -> &PubSub {
        &self.scope.core.hub.pubsub
    }

    /// Pushes `event` with `payload` to this channel's client only (Phoenix's `push/3`).
    pub fn push(&mut self, event: &str, payload: impl Into<Payload>) -> Result<(), PushError> {
        if !self.scope.joined {
            return Err(PushError::NotJoined);
        }
        let payload = payload.into();
        check_object(&payload)?;
        let Scope {
            core, topic, refs, ..
        } = &mut self.scope;
        core.push(refs.channel.as_ref(), topic, event, payload)
    }

    /// Broadcasts to every subscriber of this topic, this channel included (Phoenix's
    /// `broadcast/3`).
    pub fn broadcast(
        &mut self,
        event: &str,
        payload: impl Into<Payload>,
    ) -> Result<(), BroadcastError> {
        let topic = self.scope.topic;
        self.scope
            .core
            .hub
            .pubsub
            .broadcast_from(topic, event, payload.into(), None)
    }

    /// Broadcasts to every subscriber of this topic except this channel (Phoenix's
    /// `broadcast_from/3`).
    pub fn broadcast_from(
        &mut self,
        event: &str,
        payload: impl Into<Payload>,
    ) -> Result<(), BroadcastError> {
        let (topic, from) = (self.scope.topic, Some(self.scope.instance));
        self.scope
            .core
            .hub
            .pubsub
            .broadcast_from(topic, event, payload.into(), from)
    }

    /// Queues `info` for this channel's `handle_info`, after the current callback (and,
    /// from `join`, after the join reply): Phoenix's `send(self(), info)`.
    pub fn send_info(&mut self, info: C::Info) {
        let instance = self.scope.instance;
        self.scope
            .core
            .deferred
            .push_back((instance, Box::new(info)));
    }

    /// A handle other tasks can use to message this channel.
    pub fn channel_ref(&self) -> ChannelRef<C::Info> {
        ChannelRef::new(self.scope.core.inbox.clone(), self.scope.instance)
    }

    /// A handle to reply to the message being handled later, from another task
    /// (Phoenix's `socket_ref/1` + `reply/2`). `None` outside `handle_in`.
    pub fn reply_ref(&self) -> Option<ReplyRef> {
        let message_ref = self.scope.message_ref.clone()?;
        Some(ReplyRef::new(
            self.scope.core.outbox.clone(),
            self.scope.core.serializer,
            self.scope.refs.channel.clone(),
            message_ref,
            self.scope.topic.to_owned(),
        ))
    }

    /// Presence for this channel's topic (docs/protocol.md §6).
    pub fn presence(&self) -> Presence<'_> {
        let core = &*self.scope.core;
        Presence::new(
            &core.hub.pubsub,
            &core.hub.tracker,
            self.scope.topic,
            self.scope.instance,
        )
    }

    /// Closes this socket (every channel of it) with WebSocket close `code`, after what
    /// it already sent; nothing written afterwards reaches the client, this callback's
    /// reply included (as with `disconnect`, docs/protocol.md §1.7). phoenix.js
    /// reconnects unless the code is 1000. A long-poll session ends.
    ///
    /// ```
    /// # use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
    /// # #[derive(Default)] struct Room;
    /// # impl Channel for Room {
    /// #   type Assigns = (); type Info = ();
    /// #   async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> JoinResult { Ok(Payload::empty_object()) }
    /// async fn handle_in(&mut self, event: &str, _: Payload, ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
    ///     if event == "flood" {
    ///         ctx.close_socket(1008); // policy violation: phoenix.js reconnects with backoff
    ///     }
    ///     HandleResult::noreply()
    /// }
    /// # }
    /// ```
    pub fn close_socket(&mut self, code: u16) {
        self.scope.core.outbox.close(code);
        self.scope.core.stop.get_or_insert(code);
    }

    /// Drops this socket's connection at once, without a close frame: what the client
    /// sees when Phoenix kills the transport process (phoenix.js reconnects). Nothing
    /// queued for the client is written. See [`ChannelContext::close_socket`] for the
    /// orderly close.
    pub fn kill_socket(&mut self) {
        self.scope.core.outbox.abort();
        self.scope.core.stop.get_or_insert(KILLED);
    }
}

/// The close code a killed socket reports to its transport (never sent on the wire).
const KILLED: u16 = 1006;

fn check_object(payload: &Payload) -> Result<(), PushError> {
    match payload {
        Payload::Json(raw) if !raw.get().trim_start().starts_with('{') => {
            Err(PushError::NotAnObject)
        }
        _ => Ok(()),
    }
}
