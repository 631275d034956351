//! Channels: the trait an app implements per topic pattern, and what a callback can do.
//!
//! One channel instance exists per joined topic per socket. Its callbacks run one at a
//! time, in the socket's own task, in the order the socket received the messages: the
//! ordering guarantees of §3.8 follow from that. A callback that panics crashes only its
//! own channel (`phx_error`, §3.6), never the socket or its other channels.

use std::any::Any;
use std::fmt;

use async_trait::async_trait;
use phx_protocol::{Payload, Ref};

use crate::context::ChannelContext;

/// A message a channel sends itself or receives from other tasks (Phoenix's
/// `handle_info`), e.g. `ctx.send_info(AfterJoin)` in `join` to push once the join reply
/// has been written.
pub type Info = Box<dyn Any + Send>;

/// What a failed join replies: `{"response": payload, "status": "error"}`.
pub type JoinError = Payload;

/// A channel, the per-topic state of one socket (Phoenix's `Phoenix.Channel`).
///
/// ```
/// use phx_server::{Channel, ChannelContext, HandleResult, Payload};
/// #[derive(Default)]
/// struct Echo;
/// #[async_trait::async_trait]
/// impl Channel for Echo {
///     async fn join(&mut self, _topic: &str, _payload: Payload, _ctx: &mut ChannelContext<'_>)
///         -> Result<Payload, Payload> {
///         Ok(Payload::empty_object())
///     }
///     async fn handle_in(&mut self, event: &str, payload: Payload, _ctx: &mut ChannelContext<'_>)
///         -> HandleResult {
///         match event {
///             "echo" => HandleResult::ok(payload),
///             _ => HandleResult::NoReply,
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait Channel: Send + 'static {
    /// Authorizes a join. `Ok(reply)` answers `{"response": reply, "status": "ok"}` and
    /// starts the channel; `Err(reply)` answers status `error` and drops it. Pushes are
    /// refused during join; use [`ChannelContext::send_info`] to act once joined.
    async fn join(
        &mut self,
        topic: &str,
        payload: Payload,
        ctx: &mut ChannelContext<'_>,
    ) -> Result<Payload, JoinError>;

    /// A client event on this channel.
    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        ctx: &mut ChannelContext<'_>,
    ) -> HandleResult;

    /// Broadcast events this channel wants to see before they are pushed (Phoenix's
    /// `intercept`). Asked once, at join.
    fn intercepts(&self) -> &'static [&'static str] {
        &[]
    }

    /// An intercepted broadcast. The default pushes it unchanged.
    async fn handle_out(
        &mut self,
        event: &str,
        payload: &Payload,
        ctx: &mut ChannelContext<'_>,
    ) -> HandleResult {
        if let Err(error) = ctx.push(event, payload.clone()) {
            tracing::warn!(%error, event, "intercepted broadcast not pushed");
        }
        HandleResult::NoReply
    }

    /// A message from [`ChannelContext::send_info`] or a [`crate::ChannelRef`].
    async fn handle_info(&mut self, info: Info, ctx: &mut ChannelContext<'_>) -> HandleResult {
        let _ = (info, ctx);
        HandleResult::NoReply
    }

    /// The channel is ending. Pushes made here are still written (after `phx_close` on
    /// a normal stop or leave, before `phx_error` on a crash); on socket close they go
    /// nowhere. Not called when a duplicate join replaces the channel (§3.5).
    async fn terminate(&mut self, reason: &TerminateReason, ctx: &mut ChannelContext<'_>) {
        let _ = (reason, ctx);
    }
}

/// The outcome of a callback (Phoenix's `{:reply, …}`, `{:noreply, …}`, `{:stop, …}`).
#[derive(Debug)]
pub enum HandleResult {
    /// Nothing is sent back (the client push times out unless replied to later through
    /// a [`crate::ReplyRef`]).
    NoReply,
    /// `{"response": response, "status": status}`; only meaningful from `handle_in`.
    Reply {
        /// `ok`, `error` or any status the client `receive`s on.
        status: String,
        /// The response (JSON or binary).
        response: Payload,
    },
    /// Stop the channel, optionally replying first (§3.6).
    Stop {
        /// Why: decides `phx_close` or `phx_error`.
        reason: StopReason,
        /// A reply written before the close/error frame.
        reply: Option<(String, Payload)>,
    },
}

impl HandleResult {
    /// Reply `ok` with a response.
    pub fn ok(response: Payload) -> Self {
        Self::Reply {
            status: "ok".into(),
            response,
        }
    }
    /// Reply `ok` with `{}`.
    pub fn ok_empty() -> Self {
        Self::ok(Payload::empty_object())
    }
    /// Reply `error` with a response.
    pub fn error(response: Payload) -> Self {
        Self::Reply {
            status: "error".into(),
            response,
        }
    }
    /// Reply with any status.
    pub fn reply(status: impl Into<String>, response: Payload) -> Self {
        Self::Reply {
            status: status.into(),
            response,
        }
    }
    /// Stop normally: `phx_close`, the client does not rejoin.
    pub fn stop() -> Self {
        Self::Stop {
            reason: StopReason::Normal,
            reply: None,
        }
    }
}

/// Why a channel stops (Phoenix's stop reasons).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `:normal` → `phx_close`.
    Normal,
    /// `:shutdown` / `{:shutdown, reason}` → `phx_close`.
    Shutdown(String),
    /// Any other reason → `phx_error` `{"reason":"channel_crash"}`; the client rejoins.
    Error(String),
}

impl StopReason {
    /// Whether the client is told `phx_close` (else `phx_error`).
    pub fn is_clean(&self) -> bool {
        !matches!(self, Self::Error(_))
    }
}

/// Why `terminate` is called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TerminateReason {
    /// The client sent `phx_leave` (`{:shutdown, :left}`).
    Left,
    /// A callback returned [`HandleResult::Stop`].
    Stopped(StopReason),
    /// A callback panicked; the channel's state may be inconsistent.
    Crashed,
    /// The socket closed or was disconnected (`{:shutdown, :closed}`).
    Closed,
}

/// Channel identity within the process: distinguishes a channel from the one that
/// replaced it on the same topic (duplicate join, rejoin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub(crate) u64);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
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
