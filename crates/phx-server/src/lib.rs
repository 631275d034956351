//! A Phoenix Channels server on hyper 1 and fastwebsockets.
//!
//! phx-server speaks the Phoenix Channels wire protocol exactly, so the unmodified
//! `phoenix` npm client (phoenix.js 1.8) and existing Phoenix frontends connect to it as
//! to a Phoenix 1.8 server: WebSocket and long poll, the V1 and V2 serializers, binary
//! frames, replies, broadcasts, intercepts and presence. The API keeps Phoenix's names:
//! an [`Endpoint`] mounts sockets ([`SocketConfig`]); a socket's [`Connect`] hook is
//! `connect/3` and `id/1`; a [`Channel`] has `join`, `handle_in`, `handle_out`,
//! `handle_info` and `terminate`, and does its work through a [`ChannelContext`].
//!
//! ```no_run
//! use phx_server::{
//!     AcceptAll, Channel, ChannelContext, Endpoint, HandleResult, JoinResult, Payload, SocketConfig,
//! };
//! use serde_json::json;
//!
//! #[derive(Default)]
//! struct RoomChannel;
//!
//! impl Channel for RoomChannel {
//!     type Assigns = (); // what the connect hook assigned: nothing, with AcceptAll
//!     type Info = ();    // messages for handle_info: none
//!
//!     async fn join(
//!         &mut self,
//!         _topic: &str,
//!         _payload: Payload,
//!         _ctx: &mut ChannelContext<'_, Self>,
//!     ) -> JoinResult {
//!         Ok(json!({}).into())
//!     }
//!
//!     async fn handle_in(
//!         &mut self,
//!         event: &str,
//!         payload: Payload,
//!         ctx: &mut ChannelContext<'_, Self>,
//!     ) -> HandleResult {
//!         match event {
//!             "new_msg" => {
//!                 let _ = ctx.broadcast("new_msg", payload);
//!                 HandleResult::ok_empty()
//!             }
//!             _ => HandleResult::error(json!({"reason": "unknown event"})),
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let socket = SocketConfig::new(AcceptAll).channel("room:*", RoomChannel::default);
//!     let endpoint = Endpoint::builder().socket("/socket", socket).build();
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
//!     endpoint.serve(listener).await
//! }
//! ```
//!
//! and in the browser, nothing phx-specific:
//!
//! ```js
//! import { Socket } from "phoenix";
//! const socket = new Socket("/socket");
//! socket.connect();
//! const channel = socket.channel("room:lobby");
//! channel.on("new_msg", (msg) => console.log(msg));
//! channel.join().receive("ok", () => channel.push("new_msg", { body: "hi" }));
//! ```
//!
//! # The guide
//!
//! The [`guide`] walks through everything a Phoenix app's sockets and channels do, one
//! page per topic, every snippet compiled and run as a test:
//! [sockets and auth](guide::sockets), [channels and their lifecycle](guide::channels),
//! [broadcasting](guide::broadcasting), [presence](guide::presence),
//! [long poll](guide::long_poll), [limits](guide::limits), [logging](guide::logging),
//! [testing a channel](guide::testing), and [coming from Phoenix](guide::coming_from_phoenix)
//! (every Phoenix construct and its phx-server name).
//!
//! Two runnable examples are in the repository: `examples/hello` (a room with replies,
//! broadcasts, presence and a phoenix.js page; the README's example) and
//! `examples/token-auth` (a Phoenix `UserSocket` with [`phoenix_token`] auth). The wire
//! specification, `docs/protocol.md`, is in the repository too; section numbers (§) in
//! these docs refer to it.
//!
//! # Logging
//!
//! phx-server logs through `tracing` and **prints nothing unless the program installs a
//! subscriber**; see [`guide::logging`].
//!
//! # Module map
//!
//! For contributors: imports point one way, from the floor a module is on to the floors
//! below it, and no two files import each other (`scripts/check-layers.py` checks both
//! in the test command):
//!
//! | floor | modules | holds |
//! |---|---|---|
//! | 0 | `params`, `origin`, `rate_limit`, `address_limit`, `outcome`, `state`, `http`, `telemetry`, `tls`, `etf`, `phoenix_token`, `shutdown` | values with no IO: connect params, origin rules, limits (per socket, per client address), callback results, app state, metric handles, TLS settings, Erlang's external term format (bounded) and `Phoenix.Token` on it; the stop signal |
//! | 1 | `connect`, `origin_refusal` | the [`Connect`] hook and what it sees; a refused origin explained in the log |
//! | 2 | `outbox` | where a socket's frames go: the WebSocket write queue, the long-poll buffer |
//! | 3 | `pubsub` | [`PubSub`]: topics, subscribers, encode-once fan-out; the cluster [`Adapter`](cluster::Adapter) boundary, the envelope between nodes, the Redis adapter and its Phoenix mode ([`PhoenixPubSub`](cluster::PhoenixPubSub): Phoenix.PubSub.Redis messages, payloads by Jason's rules) |
//! | 4 | `presence` | the tracker, diffs, [`Presence`]; replication across nodes |
//! | 5 | `socket` | one connection's channel table and the state machine of §3, its driver |
//! | 6 | `channel` | the [`Channel`] trait and [`ChannelContext`] users see |
//! | 7 | `config` | [`SocketConfig`]: routes and options of a socket |
//! | 8 | `transport` | WebSocket and long poll: bytes and HTTP in, messages to a socket |
//! | 9 | `endpoint` | [`Endpoint`]: the server, mounts, accept loop, health, server API, drain |
//! | 10 | [`testing`] | in-process sockets for tests |
//! | — | [`guide`] | documentation only: no code, imports nothing |

// Floors, lowest first (see the module map above): each module names only modules on
// its own floor or below. `scripts/check-layers.py` checks it in the test command.
mod address_limit;
mod connect;
mod etf;
mod http;
mod origin;
mod origin_refusal;
mod outcome;
mod params;
pub mod phoenix_token;
mod rate_limit;
mod shutdown;
mod state;
mod telemetry;
mod tls;

mod outbox;

mod pubsub;

mod presence;

mod socket;

mod channel;

mod config;

mod transport;

mod body;
mod endpoint;
mod listen;

pub mod testing;

/// Running several nodes as one: the adapter boundary and the Redis adapter, which can
/// also share broadcasts with the nodes of a Phoenix app ([`PhoenixPubSub`](cluster::PhoenixPubSub)).
///
/// See [`EndpointBuilder::cluster`] and the [`Adapter`](cluster::Adapter) docs for writing another adapter.
pub mod cluster {
    pub use crate::pubsub::adapter::{Adapter, Dispatch, Inbound};
    pub use crate::pubsub::phoenix::{
        PhoenixPubSub, PhoenixPubSubError, DEFAULT_PHOENIX_MAX_MESSAGE_BYTES,
    };
    pub use crate::pubsub::redis::{RedisAdapter, RedisUrlError};
}

pub mod guide;

/// The crate README's example, compiled as a doctest so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use body::{read_body, BodyError, DEFAULT_BODY_TIMEOUT};
pub use channel::{Channel, ChannelContext, ChannelRef, ReplyRef};
pub use config::{SocketConfig, DEFAULT_OUTBOUND_BYTES};
pub use connect::{AcceptAll, Connect, ConnectInfo, Connected, Refusal, Transport};
pub use endpoint::{
    Drain, Endpoint, EndpointBuilder, HttpHandler, ServerApi, CLUSTER_DOWN_AFTER,
    CLUSTER_HEARTBEAT, DEFAULT_API_BODY_LIMIT, DEFAULT_MAX_CONNECTIONS_FALLBACK,
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_REQUEST_LINE,
    PRESENCE_BURST_LIMIT, PRESENCE_BURST_WINDOW,
};
pub use http::{status_response, Body, PeerAddr, Scheme};
/// The hyper this crate is built on, so that [`HttpHandler`]s name the same `Request`,
/// `Response` and header types without a dependency line of their own.
pub use hyper;
pub use listen::{listen, listen_with_backlog, DEFAULT_LISTEN_BACKLOG};
pub use origin::{CheckOrigin, InvalidOriginPattern, Origin};
pub use outbox::{OutboxError, DEFAULT_OUTBOUND_BYTES_TOTAL};
pub use outcome::{HandleResult, JoinResult, StopReason, TerminateReason};
pub use params::{Params, ParamsError};
pub use phx_protocol::{Payload, Ref};
pub use presence::{Presence, PresenceError, PresenceFetch};
pub use pubsub::{BroadcastError, InstanceId, PubSub};
pub use rate_limit::RateLimit;
pub use shutdown::shutdown_signal;
pub use socket::PushError;
pub use tls::{Tls, TlsError, DEFAULT_TLS_HANDSHAKE_TIMEOUT};
pub use transport::longpoll::limit::{
    DEFAULT_LONGPOLL_MAX_SESSIONS, DEFAULT_LONGPOLL_MAX_SESSIONS_PER_ADDRESS,
};

/// Replaces the default panic hook with one that logs a single `tracing` error line
/// (message and location, no backtrace). Channel panics are expected events in a
/// Phoenix-style server (§3.6): the channel answers `phx_error` and the socket lives on,
/// so binaries usually want them in the log, not as multi-line stderr dumps.
///
/// Call it once, after installing a `tracing` subscriber (see [`guide::logging`]):
///
/// ```
/// tracing_subscriber::fmt().init();
/// phx_server::log_panics();
/// ```
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
