//! Handles that reach a channel from other tasks: [`ChannelRef`] (messages for its
//! `handle_info`) and [`ReplyRef`] (a late reply to one client message).

use std::fmt;
use std::marker::PhantomData;

use phx_protocol::{Outbound, Payload, Ref, Serializer};

use crate::outbox::Outbox;
use crate::pubsub::InstanceId;
use crate::socket::{PushError, SocketInbox, SocketMsg};

/// Sends messages to a channel's [`handle_info`](crate::Channel::handle_info) from
/// anywhere (Phoenix: `send(channel_pid, msg)`). Messages for a channel that has since
/// ended are dropped.
///
/// ```
/// use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
/// use serde_json::json;
///
/// enum Tick { Second(u64) }
///
/// struct Clock;
///
/// impl Channel for Clock {
///     type Assigns = ();
///     type Info = Tick;
///
///     async fn join(&mut self, _t: &str, _p: Payload, ctx: &mut ChannelContext<'_, Self>) -> JoinResult {
///         let me = ctx.channel_ref();
///         tokio::spawn(async move {
///             for n in 1.. {
///                 tokio::time::sleep(std::time::Duration::from_secs(1)).await;
///                 if !me.send(Tick::Second(n)) {
///                     break; // the channel is gone
///                 }
///             }
///         });
///         Ok(json!({}).into())
///     }
///
///     async fn handle_info(&mut self, Tick::Second(n): Tick, ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
///         let _ = ctx.push("tick", json!({"n": n}));
///         HandleResult::noreply()
///     }
///
///     async fn handle_in(&mut self, _e: &str, _p: Payload, _ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
///         HandleResult::noreply()
///     }
/// }
/// ```
pub struct ChannelRef<I> {
    inbox: SocketInbox,
    instance: InstanceId,
    _info: PhantomData<fn(I)>,
}

impl<I> Clone for ChannelRef<I> {
    fn clone(&self) -> Self {
        Self {
            inbox: self.inbox.clone(),
            instance: self.instance,
            _info: PhantomData,
        }
    }
}

impl<I> fmt::Debug for ChannelRef<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelRef")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static> ChannelRef<I> {
    pub(crate) fn new(inbox: SocketInbox, instance: InstanceId) -> Self {
        Self {
            inbox,
            instance,
            _info: PhantomData,
        }
    }

    /// Delivers `info` to the channel's `handle_info`; `false` if its socket is gone (or
    /// too far behind to take more).
    pub fn send(&self, info: I) -> bool {
        self.inbox.send(info_message(self.instance, info)).is_ok()
    }
}

/// Replies to one client message later, from any task (Phoenix's `socket_ref/1` and
/// `reply/2`); get one with [`ChannelContext::reply_ref`](crate::ChannelContext::reply_ref)
/// in `handle_in`, and return [`HandleResult::noreply`](crate::HandleResult::noreply).
///
/// ```
/// use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
/// use serde_json::json;
///
/// #[derive(Default)]
/// struct Search;
///
/// impl Channel for Search {
///     type Assigns = ();
///     type Info = ();
///
///     async fn join(&mut self, _t: &str, _p: Payload, _c: &mut ChannelContext<'_, Self>) -> JoinResult {
///         Ok(Payload::empty_object())
///     }
///
///     async fn handle_in(&mut self, _e: &str, query: Payload, ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
///         let Some(reply) = ctx.reply_ref() else {
///             return HandleResult::noreply(); // only absent outside handle_in
///         };
///         // The socket goes on with its other messages while the search runs.
///         tokio::spawn(async move {
///             let hits = json!({"query": query.parse::<serde_json::Value>(), "hits": []});
///             let _ = reply.reply("ok", hits);
///         });
///         HandleResult::noreply()
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct ReplyRef {
    outbox: Outbox,
    serializer: Serializer,
    join_ref: Option<Ref>,
    r#ref: Option<Ref>,
    topic: String,
}

impl ReplyRef {
    pub(crate) fn new(
        outbox: Outbox,
        serializer: Serializer,
        join_ref: Option<Ref>,
        r#ref: Option<Ref>,
        topic: String,
    ) -> Self {
        Self {
            outbox,
            serializer,
            join_ref,
            r#ref,
            topic,
        }
    }

    /// Writes `{"status": status, "response": response}` for the original `ref`.
    pub fn reply(&self, status: &str, response: impl Into<Payload>) -> Result<(), PushError> {
        let response = response.into();
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

/// A message for a channel's `handle_info`, as the socket inbox carries it.
fn info_message<I: Send + 'static>(instance: InstanceId, info: I) -> SocketMsg {
    SocketMsg::Info(instance, Box::new(info))
}
