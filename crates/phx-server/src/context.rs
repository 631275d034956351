//! What a channel callback can do: push, broadcast, reply later, message itself.

use std::any::Any;

use phx_protocol::{EncodeError, Outbound, Payload, Ref, Serializer};

use crate::channel::{InstanceId, JoinRefs};
use crate::connect::{Assigns, Transport};
use crate::endpoint::Endpoint;
use crate::outbox::{Outbox, OutboxError};
use crate::presence::Presence;
use crate::pubsub::BroadcastError;
use crate::socket::{SocketCore, SocketInbox, SocketMsg};

/// Why a push or reply was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Pushes are refused while the channel is joining (Phoenix raises); send yourself
    /// an info from `join` and push from `handle_info`.
    #[error("cannot push before the channel has joined")]
    NotJoined,
    /// The serializer refused (a header field over 255 bytes, binary on V1, §2.4).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The transport refused or is gone.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Payloads must be JSON objects or binary (§5).
    #[error("push payloads must be JSON objects or binary")]
    NotAnObject,
}

/// The channel's view of its socket during a callback (Phoenix's `%Socket{}` plus the
/// functions of `Phoenix.Channel`).
pub struct ChannelContext<'a> {
    pub(crate) core: &'a mut SocketCore,
    pub(crate) topic: &'a str,
    pub(crate) refs: &'a JoinRefs,
    pub(crate) instance: InstanceId,
    pub(crate) joined: bool,
    /// The `ref` of the message being handled (for [`ChannelContext::reply_ref`]).
    pub(crate) message_ref: Option<Option<Ref>>,
}

impl std::fmt::Debug for ChannelContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelContext")
            .field("topic", &self.topic)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl ChannelContext<'_> {
    /// The channel's topic.
    pub fn topic(&self) -> &str {
        self.topic
    }
    /// The channel's join_ref (`join_ref || ref` of its `phx_join`).
    pub fn join_ref(&self) -> Option<&Ref> {
        self.refs.channel.as_ref()
    }
    /// This channel instance.
    pub fn instance(&self) -> InstanceId {
        self.instance
    }
    /// Socket assigns from connect.
    pub fn assigns(&self) -> &Assigns {
        &self.core.assigns
    }
    /// Socket id from connect, if any.
    pub fn socket_id(&self) -> Option<&str> {
        self.core.id.as_deref()
    }
    /// The transport this socket runs over.
    pub fn transport(&self) -> Transport {
        self.core.outbox.transport()
    }
    /// The serializer the client speaks.
    pub fn serializer(&self) -> Serializer {
        self.core.serializer
    }
    /// The endpoint, for broadcasts to other topics.
    pub fn endpoint(&self) -> &Endpoint {
        &self.core.endpoint
    }

    /// Pushes `[join_ref, null, topic, event, payload]` to this channel's client.
    pub fn push(&mut self, event: &str, payload: Payload) -> Result<(), PushError> {
        if !self.joined {
            return Err(PushError::NotJoined);
        }
        check_object(&payload)?;
        self.core.write(&Outbound::Message {
            join_ref: self.refs.channel.as_ref(),
            r#ref: None,
            topic: self.topic,
            event,
            payload: payload.as_ref(),
        })
    }

    /// Broadcasts to every subscriber of this topic, this channel included.
    pub fn broadcast(&mut self, event: &str, payload: Payload) -> Result<(), BroadcastError> {
        self.core
            .endpoint
            .pubsub()
            .broadcast(self.topic, event, payload, None)
    }

    /// Broadcasts to every subscriber of this topic except this channel.
    pub fn broadcast_from(&mut self, event: &str, payload: Payload) -> Result<(), BroadcastError> {
        let from = Some(self.instance);
        self.core
            .endpoint
            .pubsub()
            .broadcast(self.topic, event, payload, from)
    }

    /// Queues `info` for this channel's `handle_info`, after the current callback (and,
    /// from `join`, after the join reply).
    pub fn send_info(&mut self, info: impl Any + Send) {
        self.core
            .deferred
            .push_back((self.instance, Box::new(info)));
    }

    /// A handle other tasks can use to message this channel.
    pub fn channel_ref(&self) -> ChannelRef {
        ChannelRef {
            inbox: self.core.inbox.clone(),
            instance: self.instance,
        }
    }

    /// A handle to reply to the message being handled later, from another task
    /// (Phoenix's `socket_ref` + `reply/2`). `None` outside `handle_in`.
    pub fn reply_ref(&self) -> Option<ReplyRef> {
        let message_ref = self.message_ref.clone()?;
        Some(ReplyRef {
            outbox: self.core.outbox.clone(),
            serializer: self.core.serializer,
            join_ref: self.refs.channel.clone(),
            r#ref: message_ref,
            topic: self.topic.to_owned(),
        })
    }

    /// Presence for this channel's topic (§6).
    pub fn presence(&mut self) -> Presence<'_> {
        Presence::new(&self.core.endpoint, self.topic, self.instance)
    }
}

fn check_object(payload: &Payload) -> Result<(), PushError> {
    match payload {
        Payload::Json(raw) if !raw.get().trim_start().starts_with('{') => {
            Err(PushError::NotAnObject)
        }
        _ => Ok(()),
    }
}

/// Sends infos to a channel from anywhere (Phoenix: `send(channel_pid, msg)`). Infos for
/// a channel that has since ended are dropped.
#[derive(Clone, Debug)]
pub struct ChannelRef {
    inbox: SocketInbox,
    instance: InstanceId,
}

impl ChannelRef {
    /// Delivers `info` to the channel's `handle_info`; `false` if the socket is gone.
    pub fn send(&self, info: impl Any + Send) -> bool {
        self.inbox
            .send(SocketMsg::Info(self.instance, Box::new(info)))
            .is_ok()
    }
}

/// Replies to one client message later, from any task.
#[derive(Clone, Debug)]
pub struct ReplyRef {
    outbox: Outbox,
    serializer: Serializer,
    join_ref: Option<Ref>,
    r#ref: Option<Ref>,
    topic: String,
}

impl ReplyRef {
    /// Writes `{"response": response, "status": status}` for the original `ref`.
    pub fn reply(&self, status: &str, response: Payload) -> Result<(), PushError> {
        let mut buf = Vec::new();
        let kind = self.serializer.encode(
            &Outbound::Reply {
                join_ref: self.join_ref.as_ref(),
                r#ref: self.r#ref.as_ref(),
                topic: &self.topic,
                status,
                response: response.as_ref(),
            },
            &mut buf,
        )?;
        let frame = self.outbox.frame(kind, &buf)?;
        Ok(self.outbox.send(frame)?)
    }
}
