//! Channels: the trait an app implements per topic pattern (Phoenix's `Phoenix.Channel`).
//!
//! One channel instance exists per joined topic per socket. Its callbacks run one at a
//! time, in the socket's own task, in the order the socket received the messages: the
//! ordering guarantees of docs/protocol.md §3.8 follow from that. A callback that panics
//! crashes only its own channel (`phx_error`, §3.6), never the socket or its other
//! channels.

mod adapter;
mod context;
mod refs;

use std::future::Future;

use phx_protocol::Payload;

pub(crate) use adapter::factory;
pub use context::ChannelContext;
pub use refs::{ChannelRef, ReplyRef};

use crate::outcome::{HandleResult, JoinResult, TerminateReason};

/// A channel: the per-topic state of one socket (Phoenix's `Phoenix.Channel`).
///
/// Callbacks are written as `async fn`. Two associated types tie the channel to its
/// socket: `Assigns`, what the socket's [`Connect`](crate::Connect) hook assigned (the
/// compiler checks that a socket only routes to channels of its assigns type), and
/// `Info`, the messages [`handle_info`](Channel::handle_info) receives. Use `()` for
/// either when there is none.
///
/// ```
/// use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
/// use serde_json::json;
///
/// #[derive(Default)]
/// struct RoomChannel;
///
/// impl Channel for RoomChannel {
///     type Assigns = ();
///     type Info = ();
///
///     async fn join(&mut self, topic: &str, _payload: Payload, _ctx: &mut ChannelContext<'_, Self>) -> JoinResult {
///         match topic {
///             "room:lobby" => Ok(json!({}).into()),
///             _ => Err(json!({"reason": "unauthorized"}).into()),
///         }
///     }
///
///     async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
///         match event {
///             "new_msg" => {
///                 let _ = ctx.broadcast("new_msg", payload);
///                 HandleResult::noreply()
///             }
///             "ping" => HandleResult::ok(json!({"pong": true})),
///             _ => HandleResult::error(json!({"reason": "unknown event"})),
///         }
///     }
/// }
/// ```
///
/// Rust shapes two things differently from Phoenix: the channel is a value with `&mut
/// self` instead of an immutable `socket` threaded through every return (what Phoenix
/// keeps in `socket.assigns` per channel, keep in the struct's fields), and callbacks are
/// `async fn` returning a result instead of a tuple with the new socket. The
/// [channels guide](crate::guide::channels) walks through every callback, the order
/// they run in, and what the client sees when a channel stops or crashes.
pub trait Channel: Send + Sized + 'static {
    /// What the socket's connect hook assigned ([`Connect::Assigns`](crate::Connect::Assigns)).
    type Assigns: Send + Sync + 'static;

    /// Messages this channel receives in [`handle_info`](Channel::handle_info), sent with
    /// [`ChannelContext::send_info`] or a [`ChannelRef`].
    type Info: Send + 'static;

    /// Broadcast events this channel wants to see in
    /// [`handle_out`](Channel::handle_out) before they are pushed (Phoenix's
    /// `intercept ["event"]`).
    const INTERCEPTS: &'static [&'static str] = &[];

    /// The intercepted events of this instance, read once when its join succeeds. The
    /// default is [`INTERCEPTS`](Channel::INTERCEPTS); override it when the list is only
    /// known at run time (one channel type configured per topic pattern from a file, as
    /// `phx-gateway` does). The list must be `'static`: build it once at start-up (for
    /// instance with `Box::leak`) and share it between instances.
    ///
    /// ```
    /// use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
    ///
    /// /// One channel type for every room kind; each kind intercepts its own events.
    /// struct Room {
    ///     intercepts: &'static [&'static str],
    /// }
    ///
    /// impl Channel for Room {
    ///     type Assigns = ();
    ///     type Info = ();
    ///
    ///     fn intercepts(&self) -> &'static [&'static str] {
    ///         self.intercepts
    ///     }
    /// #   async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> JoinResult {
    /// #       Ok(Payload::empty_object())
    /// #   }
    /// #   async fn handle_in(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> HandleResult {
    /// #       HandleResult::noreply()
    /// #   }
    ///     // join, handle_in and handle_out as usual ...
    /// }
    ///
    /// // Read from a configuration file at start-up, leaked once for the process's life.
    /// let configured: Vec<String> = vec!["new_msg".into()];
    /// let events: Vec<&'static str> = configured.into_iter().map(|e| &*Box::leak(e.into_boxed_str())).collect();
    /// let intercepts: &'static [&'static str] = Box::leak(events.into_boxed_slice());
    /// let room = Room { intercepts };
    /// assert_eq!(room.intercepts(), ["new_msg"]);
    /// ```
    fn intercepts(&self) -> &'static [&'static str] {
        Self::INTERCEPTS
    }

    /// Authorizes a join. `Ok(response)` answers `{"status": "ok", "response":
    /// response}` and starts the channel; `Err(response)` answers status `error`.
    /// Pushes are refused during join; [`send_info`](ChannelContext::send_info) yourself
    /// a message to act once joined (the join reply goes first).
    fn join(
        &mut self,
        topic: &str,
        payload: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> impl Future<Output = JoinResult> + Send;

    /// A client event on this channel.
    fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> impl Future<Output = HandleResult> + Send;

    /// An intercepted broadcast (one of [`INTERCEPTS`](Channel::INTERCEPTS)). The
    /// default pushes it unchanged. Example:
    /// [intercepting broadcasts](crate::guide::broadcasting#intercepting-broadcasts).
    fn handle_out(
        &mut self,
        event: &str,
        payload: &Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> impl Future<Output = HandleResult> + Send {
        if let Err(error) = ctx.push(event, payload.clone()) {
            tracing::warn!(%error, event, "intercepted broadcast not pushed");
        }
        std::future::ready(HandleResult::NoReply)
    }

    /// A message from [`ChannelContext::send_info`] or a [`ChannelRef`] (Phoenix's
    /// `handle_info`). The default ignores it. Examples: [`ChannelRef`] (a timer),
    /// [`Presence`](crate::Presence) (tracking after the join reply).
    fn handle_info(
        &mut self,
        info: Self::Info,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> impl Future<Output = HandleResult> + Send {
        let _ = (info, ctx);
        std::future::ready(HandleResult::NoReply)
    }

    /// The channel is ending. Pushes made here are still written (after `phx_close` on
    /// a normal stop or leave, before `phx_error` on a crash); on socket close they go
    /// nowhere. Not called when a duplicate join replaces the channel (§3.5), nor when
    /// `join` refused. Example: [`TerminateReason`].
    fn terminate(
        &mut self,
        reason: TerminateReason,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        std::future::ready(())
    }
}
