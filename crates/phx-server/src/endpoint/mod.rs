//! The endpoint: sockets mounted at paths, the PubSub and presence they share, the app's
//! state, and the HTTP server (Phoenix's `Endpoint`).

mod accept;
mod api;
mod builder;
mod connections;
mod drain;
mod health;
mod http;
mod server;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use phx_protocol::Payload;

pub use api::{ServerApi, DEFAULT_API_BODY_LIMIT};
pub use builder::{
    EndpointBuilder, CLUSTER_DOWN_AFTER, CLUSTER_HEARTBEAT, DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_REQUEST_LINE, PRESENCE_BURST_LIMIT, PRESENCE_BURST_WINDOW,
};
pub use connections::{DEFAULT_MAX_CONNECTIONS_FALLBACK, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS};
pub use drain::Drain;
pub use http::HttpHandler;

use crate::address_limit::AddressLimit;
use crate::config::SocketOptions;
use crate::pubsub::{BroadcastError, PubSub};
use crate::transport::Services;
use http::ErasedHttp;

pub(crate) struct Shared {
    max_request_line: usize,
    max_header_bytes: usize,
    mounts: Vec<(String, Arc<SocketOptions>)>,
    http: Option<Arc<dyn ErasedHttp>>,
    /// The Prometheus recorder's handle, when `metrics(true)` installed one.
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    services: Arc<Services>,
    /// `/healthz` and `/readyz` are served.
    health: bool,
    ready_checks: Vec<(String, health::ReadyCheckFn)>,
    api: Option<ServerApi>,
    drain: Drain,
    /// The accept loop runs.
    listening: AtomicBool,
    /// A shutdown began: not ready any more.
    draining: AtomicBool,
    /// Cancelled by [`Endpoint::shutdown`]: the accept loop stops and the drain begins.
    stop_accepting: CancellationToken,
    /// TCP connections held now, in all and per client address.
    connections: Arc<AddressLimit>,
    max_connections: usize,
    refusals: connections::Refusals,
    /// TLS served by the endpoint itself, when configured.
    tls: Option<crate::tls::Tls>,
}

/// A running set of sockets sharing one PubSub, one presence tracker and the app's state.
/// Cheap to clone.
///
/// ```no_run
/// use phx_server::{AcceptAll, Endpoint, SocketConfig};
/// # #[derive(Default)] struct Room;
/// # impl phx_server::Channel for Room {
/// #     type Assigns = (); type Info = ();
/// #     async fn join(&mut self, _: &str, _: phx_server::Payload, _: &mut phx_server::ChannelContext<'_, Self>) -> phx_server::JoinResult { Ok(phx_server::Payload::empty_object()) }
/// #     async fn handle_in(&mut self, _: &str, _: phx_server::Payload, _: &mut phx_server::ChannelContext<'_, Self>) -> phx_server::HandleResult { phx_server::HandleResult::noreply() }
/// # }
/// # async fn run() -> std::io::Result<()> {
/// let endpoint = Endpoint::builder()
///     .socket("/socket", SocketConfig::new(AcceptAll).channel("room:*", Room::default))
///     .build();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
/// endpoint.serve(listener).await
/// # }
/// ```
#[derive(Clone)]
pub struct Endpoint {
    shared: Arc<Shared>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mounts: Vec<&str> = self.shared.mounts.iter().map(|(p, _)| p.as_str()).collect();
        f.debug_struct("Endpoint")
            .field("mounts", &mounts)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Starts building an endpoint.
    pub fn builder() -> EndpointBuilder {
        EndpointBuilder::default()
    }

    /// The endpoint's PubSub: broadcast from anywhere, cloneable into tasks.
    pub fn pubsub(&self) -> &PubSub {
        &self.shared.services.hub.pubsub
    }

    /// Broadcasts `event` with `payload` to every subscriber of `topic` (Phoenix's
    /// `Endpoint.broadcast/3`). The payload must be a JSON object or binary.
    ///
    /// ```
    /// # let endpoint = phx_server::Endpoint::builder().build();
    /// let _ = endpoint.broadcast("room:lobby", "announcement", serde_json::json!({"text": "hi"}));
    /// ```
    pub fn broadcast(
        &self,
        topic: &str,
        event: &str,
        payload: impl Into<Payload>,
    ) -> Result<(), BroadcastError> {
        self.pubsub().broadcast(topic, event, payload)
    }

    /// Closes every socket whose connect gave it this id, with 1001
    /// (docs/protocol.md §1.7; Phoenix's `Endpoint.broadcast(id, "disconnect", %{})`).
    /// phoenix.js reconnects, and the connect hook decides again.
    ///
    /// ```
    /// # let endpoint = phx_server::Endpoint::builder().build();
    /// // The user logged out: close all their tabs' sockets (id from `Connected::with_id`).
    /// endpoint.disconnect("user_socket:42");
    /// ```
    pub fn disconnect(&self, socket_id: &str) {
        self.pubsub().disconnect(socket_id);
    }

    /// Channels subscribed to a topic on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.pubsub().subscriber_count(topic)
    }

    /// The presence list of `topic`, as `presence_state` carries it.
    ///
    /// ```
    /// # let endpoint = phx_server::Endpoint::builder().build();
    /// // Nobody tracked yet: an empty map.
    /// assert_eq!(endpoint.presence_list("room:lobby").as_json(), Some("{}"));
    /// ```
    pub fn presence_list(&self, topic: &str) -> Payload {
        self.shared.services.hub.tracker.list(topic)
    }

    /// The app's state of type `T` (see [`EndpointBuilder::state`]).
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.shared.services.hub.state.get::<T>()
    }

    /// Long-poll sessions alive now over all mounts, those whose connect hook is still
    /// running included: the number [`EndpointBuilder::longpoll_max_sessions`] caps.
    pub fn longpoll_session_count(&self) -> usize {
        self.shared.services.longpoll.count()
    }

    /// The socket mounted at `path`, and what its transports share.
    pub(crate) fn mount(&self, path: &str) -> Option<(&Arc<SocketOptions>, &Arc<Services>)> {
        let path = path.trim_end_matches('/');
        self.shared
            .mounts
            .iter()
            .find(|(mount, _)| mount == path)
            .map(|(_, options)| (options, &self.shared.services))
    }

    /// How long a request body may take to arrive whole
    /// ([`EndpointBuilder::body_timeout`]): what an app's own handlers pass to
    /// [`read_body`](crate::read_body).
    pub fn body_timeout(&self) -> std::time::Duration {
        self.shared.services.body_timeout
    }

    /// What every socket shares (tests drive sockets directly).
    #[cfg(test)]
    pub(crate) fn hub(&self) -> &crate::socket::Hub {
        &self.shared.services.hub
    }

    /// Starts a graceful shutdown, as Phoenix's drainer does: readiness turns false,
    /// the endpoint stops accepting, then [`Endpoint::serve`] closes the sockets in
    /// batches with 1012 (service restart; see [`Drain`]) and returns when they are
    /// gone. Clients reconnect elsewhere, gradually.
    ///
    /// ```no_run
    /// # async fn run(endpoint: phx_server::Endpoint) -> std::io::Result<()> {
    /// let stopper = endpoint.clone();
    /// tokio::spawn(async move {
    ///     phx_server::shutdown_signal().await; // SIGTERM or Ctrl-C
    ///     stopper.shutdown();
    /// });
    /// endpoint.serve(tokio::net::TcpListener::bind("0.0.0.0:4000").await?).await
    /// # }
    /// ```
    pub fn shutdown(&self) {
        self.shared.draining.store(true, Ordering::Release);
        self.shared.stop_accepting.cancel();
    }

    /// Whether a shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire)
    }

    /// Live sockets of this node, over all mounts and transports.
    pub fn socket_count(&self) -> usize {
        self.shared.services.sockets.len()
    }

    /// TCP connections open now (HTTP, WebSocket, TLS handshakes in progress): the
    /// number [`EndpointBuilder::max_connections`] caps.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.live()
    }

    /// Reads the TLS certificate and key files again (see [`Tls::reload`](crate::Tls::reload));
    /// `Ok` without TLS. SIGHUP does the same when [`Endpoint::serve`] runs.
    pub fn reload_tls(&self) -> Result<(), crate::TlsError> {
        match &self.shared.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// The cap on open TCP connections in force (see [`EndpointBuilder::max_connections`];
    /// the default depends on the open-file limit, so a binary logs it at start).
    pub fn max_connections(&self) -> usize {
        self.shared.max_connections
    }
}
