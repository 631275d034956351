//! A Phoenix Channels server on hyper 1 and fastwebsockets.
//!
//! An [`Endpoint`] mounts sockets ([`SocketConfig`]) at paths; each socket has a connect
//! hook ([`Connect`]) and channel routes (`"room:*"` → a [`Channel`]). The unmodified
//! phoenix.js client connects to `<mount>/websocket` and sees exactly what a Phoenix 1.8
//! server would send. Section numbers (§) refer to `docs/protocol.md` in the repository.
//!
//! ```no_run
//! use phx_server::{AcceptAll, Channel, ChannelContext, Endpoint, HandleResult, Payload, SocketConfig};
//!
//! #[derive(Default)]
//! struct Room;
//!
//! #[async_trait::async_trait]
//! impl Channel for Room {
//!     async fn join(&mut self, _t: &str, _p: Payload, _c: &mut ChannelContext<'_>) -> Result<Payload, Payload> {
//!         Ok(Payload::empty_object())
//!     }
//!     async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut ChannelContext<'_>) -> HandleResult {
//!         let _ = ctx.broadcast(event, payload);
//!         HandleResult::ok_empty()
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let endpoint = Endpoint::builder()
//!     .socket("/socket", SocketConfig::new(AcceptAll).channel("room:*", Room::default))
//!     .build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
//! endpoint.serve(listener).await
//! # }
//! ```

mod accept;
mod channel;
mod connect;
mod context;
mod endpoint;
mod longpoll;
mod origin;
mod outbox;
mod params;
pub mod phoenix_token;
mod presence;
mod pubsub;
mod rate_limit;
mod router;
mod session_limit;
mod socket;
mod token;
mod transport;

pub use channel::{
    Channel, HandleResult, Info, InstanceId, JoinError, StopReason, TerminateReason,
};
pub use connect::{AcceptAll, Assigns, Connect, ConnectInfo, Connected, Refusal, Transport};
pub use context::{ChannelContext, ChannelRef, PushError, ReplyRef};
pub use endpoint::{
    status_response, Body, Endpoint, EndpointBuilder, HttpHandler, SocketConfig,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_REQUEST_LINE, DEFAULT_OUTBOUND_BYTES,
    PRESENCE_BURST_LIMIT, PRESENCE_BURST_WINDOW,
};
pub use origin::{CheckOrigin, InvalidOriginPattern, Origin};
pub use outbox::OutboxError;
pub use params::{Params, ParamsError};
pub use phx_protocol::{Payload, Ref};
pub use presence::{Presence, PresenceError, PresenceFetch};
pub use pubsub::BroadcastError;
pub use rate_limit::RateLimit;
pub use session_limit::{DEFAULT_LONGPOLL_MAX_SESSIONS, DEFAULT_LONGPOLL_MAX_SESSIONS_PER_ADDRESS};

/// Replaces the default panic hook with one that logs a single `tracing` error line
/// (message and location, no backtrace). Channel panics are expected events in a
/// Phoenix-style server (§3.6): the channel answers `phx_error` and the socket lives on,
/// so binaries usually want them in the log, not as multi-line stderr dumps.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, "panic: {message}");
    }));
}
