//! What a channel callback returns, and why a channel ends.
//!
//! These are Phoenix's callback results: `{:reply, {:ok, payload}, socket}` is
//! [`HandleResult::ok`], `{:noreply, socket}` is [`HandleResult::noreply`],
//! `{:stop, :shutdown, {:ok, payload}, socket}` is
//! `HandleResult::ok(payload).and_stop(StopReason::Shutdown)`.

use phx_protocol::Payload;

/// What `join` answers: `Ok(response)` replies `{"status": "ok", "response": response}` and
/// starts the channel; `Err(response)` replies status `error` and drops it (Phoenix's
/// `{:ok, reply, socket}` and `{:error, reply}`).
///
/// ```
/// use phx_server::{JoinResult, Payload};
/// use serde_json::json;
///
/// fn authorize(topic: &str, user_rooms: &[&str]) -> JoinResult {
///     match topic.strip_prefix("room:") {
///         Some(room) if user_rooms.contains(&room) => Ok(json!({"room": room}).into()),
///         _ => Err(json!({"reason": "unauthorized"}).into()),
///     }
/// }
///
/// assert!(authorize("room:lobby", &["lobby"]).is_ok());
/// let refused = authorize("room:admins", &["lobby"]).unwrap_err();
/// assert_eq!(refused.as_json(), Some(r#"{"reason":"unauthorized"}"#));
/// # let _: Payload = Payload::empty_object();
/// ```
pub type JoinResult = Result<Payload, Payload>;

/// The outcome of `handle_in`, `handle_out` or `handle_info`.
///
/// ```
/// use phx_server::{HandleResult, StopReason};
/// use serde_json::json;
///
/// let reply = HandleResult::ok(json!({"id": 7}));          // {:reply, {:ok, %{id: 7}}, socket}
/// let error = HandleResult::error(json!({"reason": "no"})); // {:reply, {:error, …}, socket}
/// let quiet = HandleResult::noreply();                       // {:noreply, socket}
/// let bye = HandleResult::ok_empty().and_stop(StopReason::Shutdown); // {:stop, :shutdown, :ok, socket}
/// # let _ = (reply, error, quiet, bye);
/// ```
#[derive(Debug)]
#[must_use = "a callback's result decides what the client is told"]
pub enum HandleResult {
    /// Nothing is sent back (the client's push times out unless answered later through a
    /// [`ReplyRef`](crate::ReplyRef)).
    NoReply,
    /// `{"status": status, "response": response}`; only `handle_in` answers a message.
    Reply {
        /// `ok`, `error`, or any status the client `receive`s on.
        status: String,
        /// The response (JSON or binary).
        response: Payload,
    },
    /// Stop the channel, optionally replying first (docs/protocol.md §3.6).
    Stop {
        /// Decides `phx_close` or `phx_error`.
        reason: StopReason,
        /// A reply written before the close or error frame.
        reply: Option<(String, Payload)>,
    },
}

impl HandleResult {
    /// Nothing to send back.
    pub fn noreply() -> Self {
        Self::NoReply
    }

    /// Reply `ok` with a response: a `serde_json::Value`, a [`Payload`], binary bytes…
    pub fn ok(response: impl Into<Payload>) -> Self {
        Self::reply("ok", response)
    }

    /// Reply `ok` with `{}`.
    pub fn ok_empty() -> Self {
        Self::ok(Payload::empty_object())
    }

    /// Reply `error` with a response.
    pub fn error(response: impl Into<Payload>) -> Self {
        Self::reply("error", response)
    }

    /// Reply with any status.
    pub fn reply(status: impl Into<String>, response: impl Into<Payload>) -> Self {
        Self::Reply {
            status: status.into(),
            response: response.into(),
        }
    }

    /// Stop the channel without a reply.
    pub fn stop(reason: StopReason) -> Self {
        Self::Stop {
            reason,
            reply: None,
        }
    }

    /// Stop the channel after this reply (a `NoReply` just stops).
    pub fn and_stop(self, reason: StopReason) -> Self {
        let reply = match self {
            Self::Reply { status, response } => Some((status, response)),
            Self::NoReply => None,
            Self::Stop { reply, .. } => reply,
        };
        Self::Stop { reason, reply }
    }
}

/// Why a channel stops (Phoenix's stop reasons): clean reasons close the channel
/// (`phx_close`, the client does not rejoin), [`StopReason::Error`] errors it
/// (`phx_error`, the client rejoins). See docs/protocol.md §3.6 and
/// [the guide](crate::guide::channels#stopping-a-channel-phx_close-and-phx_error).
///
/// ```
/// use phx_server::{HandleResult, StopReason};
///
/// // {:stop, {:shutdown, :kicked}, socket}
/// let kicked = HandleResult::stop(StopReason::ShutdownWith("kicked".into()));
/// // {:stop, :invalid_state, socket}: the client sees phx_error and rejoins.
/// let broken = HandleResult::stop(StopReason::Error("invalid_state".into()));
/// assert!(StopReason::ShutdownWith("kicked".into()).is_clean());
/// # let _ = (kicked, broken);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `:normal` → `phx_close`; the client does not rejoin.
    Normal,
    /// `:shutdown` → `phx_close`.
    Shutdown,
    /// `{:shutdown, reason}` → `phx_close`.
    ShutdownWith(String),
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
///
/// ```
/// use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload, TerminateReason};
///
/// #[derive(Default)]
/// struct Room;
///
/// impl Channel for Room {
///     type Assigns = ();
///     type Info = ();
/// #   async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> JoinResult {
/// #       Ok(Payload::empty_object())
/// #   }
/// #   async fn handle_in(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> HandleResult {
/// #       HandleResult::noreply()
/// #   }
///     // join and handle_in as usual ...
///
///     async fn terminate(&mut self, reason: TerminateReason, ctx: &mut ChannelContext<'_, Self>) {
///         match reason {
///             // The socket is still there: this push reaches the client (after phx_close).
///             TerminateReason::Left | TerminateReason::Stopped(_) => {
///                 let _ = ctx.push("goodbye", serde_json::json!({}));
///             }
///             TerminateReason::Crashed => tracing::warn!(topic = ctx.topic(), "room crashed"),
///             TerminateReason::Closed => {} // the connection is gone
///         }
///     }
/// }
/// ```
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn and_stop_keeps_the_reply_it_follows() {
        match HandleResult::ok(json!({"a": 1})).and_stop(StopReason::Shutdown) {
            HandleResult::Stop {
                reason: StopReason::Shutdown,
                reply: Some((status, response)),
            } => {
                assert_eq!(status, "ok");
                assert_eq!(response.as_json(), Some(r#"{"a":1}"#));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            HandleResult::noreply().and_stop(StopReason::Normal),
            HandleResult::Stop { reply: None, .. }
        ));
    }

    #[test]
    fn only_error_stops_are_unclean() {
        assert!(StopReason::Normal.is_clean());
        assert!(StopReason::Shutdown.is_clean());
        assert!(StopReason::ShutdownWith("x".into()).is_clean());
        assert!(!StopReason::Error("x".into()).is_clean());
    }
}
