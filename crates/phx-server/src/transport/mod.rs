//! Transports: they turn a connection into decoded messages for a [`crate::socket`] and
//! its outbox into bytes. Both share the connect-time checks below.

pub(crate) mod longpoll;
pub(crate) mod websocket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use hyper::header::{HOST, ORIGIN};
use hyper::http::request::Parts;
use hyper::http::Extensions;
use hyper::{HeaderMap, Response, StatusCode};
use phx_protocol::Serializer;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Accepted, SocketOptions};
use crate::connect::{ConnectInfo, Refusal, Transport};
use crate::http::{status_response, Body, Scheme};
use crate::origin::RequestTarget;
use crate::origin_refusal::log_refusal;
use crate::outbox::{OutboundMemory, Outbox, WsQueue};
use crate::params::{Params, ParamsError};
use crate::socket::{Hub, Socket, SocketInbox};

/// What the transports need from the endpoint that runs them.
#[derive(Debug)]
pub(crate) struct Services {
    /// PubSub, presence and app state, for every socket.
    pub(crate) hub: Hub,
    /// The host `CheckOrigin::Host` compares with (`localhost` when none).
    pub(crate) host: Option<String>,
    /// Cancelled when the endpoint shuts down: sockets close with 1012.
    pub(crate) shutdown: CancellationToken,
    /// Every connection task, waited for at shutdown.
    pub(crate) tasks: TaskTracker,
    /// The long-poll sessions of every mount.
    pub(crate) longpoll: longpoll::Sessions,
    /// Every live socket, for the drain.
    pub(crate) sockets: Sockets,
    /// The outbound frames of every WebSocket, each counted once.
    pub(crate) outbound: Arc<OutboundMemory>,
    /// How long a request body the server reads itself may take to arrive.
    pub(crate) body_timeout: std::time::Duration,
}

/// Every live socket's outbox, so a drain can close them a batch at a time.
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    live: DashMap<u64, Outbox>,
    next: AtomicU64,
}

/// A socket's place in [`Sockets`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Registration<'a> {
    sockets: &'a Sockets,
    id: u64,
}

impl Sockets {
    pub(crate) fn register(&self, outbox: Outbox) -> Registration<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.live.insert(id, outbox);
        Registration { sockets: self, id }
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// The write queue of every live WebSocket.
    pub(crate) fn websocket_queues(&self) -> Vec<Arc<WsQueue>> {
        self.live
            .iter()
            .filter_map(|entry| match entry.value() {
                Outbox::WebSocket(queue) => Some(queue.clone()),
                _ => None,
            })
            .collect()
    }

    /// Takes up to `n` sockets out of the registry (to be closed).
    pub(crate) fn take(&self, n: usize) -> Vec<Outbox> {
        let ids: Vec<u64> = self.live.iter().take(n).map(|e| *e.key()).collect();
        ids.into_iter()
            .filter_map(|id| self.live.remove(&id).map(|(_, outbox)| outbox))
            .collect()
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.sockets.live.remove(&self.id);
    }
}

impl Services {
    pub(crate) fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }
    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
    pub(crate) fn longpoll_sessions(&self) -> &longpoll::Sessions {
        &self.longpoll
    }
}

/// A connection that passed origin check, vsn negotiation and the app's connect.
pub(crate) struct Authorized {
    pub(crate) serializer: Serializer,
    pub(crate) connected: Accepted,
}

impl Authorized {
    /// The socket for this connection, writing to `outbox`.
    pub(crate) fn into_socket(
        self,
        services: &Services,
        config: &SocketOptions,
        outbox: Outbox,
    ) -> (Socket, SocketInbox) {
        Socket::new(
            services.hub.clone(),
            config.settings().clone(),
            self.serializer,
            outbox,
            self.connected.assigns,
            self.connected.id,
        )
    }
}

/// The answer to a socket request whose query is not acceptable connect params (§1.2):
/// 400, as Phoenix answers a query Plug refuses, before origin check and connect.
pub(crate) fn params_refused(error: &ParamsError) -> Response<Body> {
    tracing::debug!(%error, "connect params refused");
    let body = match error {
        ParamsError::TooDeep { .. } => "connect params nested too deeply",
    };
    status_response(StatusCode::BAD_REQUEST, body)
}

/// §1.5 for any request to a socket route (WebSocket, long-poll GET/POST/OPTIONS).
pub(crate) fn origin_allowed(
    services: &Services,
    config: &SocketOptions,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> bool {
    // Raw bytes: a value that is not valid text is a present origin, never an absent one.
    let origin = headers.get(ORIGIN);
    let scheme = extensions.get::<Scheme>().copied().unwrap_or(Scheme::Http);
    let target = RequestTarget {
        scheme: scheme.as_str(),
        host_header: headers.get(HOST).and_then(|v| v.to_str().ok()),
        endpoint_host: services.host(),
    };
    let policy = config.origin_policy();
    let allowed = policy.allows(origin.map(|v| v.as_bytes()), target);
    if let (false, Some(origin)) = (allowed, origin) {
        // Once per origin at warn, with how to allow it; a refusal never lacks an origin.
        log_refusal(
            config.refused_origins(),
            &config.mount,
            policy,
            target,
            origin.as_bytes(),
        );
    }
    allowed
}

/// §1.3–§1.5 in Phoenix's order: origin, then `vsn`, then the app's connect hook.
pub(crate) async fn authorize(
    services: &Services,
    config: &SocketOptions,
    head: &Parts,
    peer: SocketAddr,
    transport: Transport,
    auth_token: Option<String>,
    params: &Params,
) -> Result<Authorized, Refusal> {
    if !origin_allowed(services, config, &head.headers, &head.extensions) {
        return Err(Refusal::forbidden());
    }
    let vsn = match params.get("vsn") {
        None => None,
        Some(serde_json::Value::String(v)) => Some(v.as_str()),
        Some(_) => return Err(Refusal::forbidden()),
    };
    let serializer = Serializer::from_vsn(vsn).map_err(|_| Refusal::forbidden())?;
    let info = ConnectInfo {
        peer_addr: Some(peer),
        uri: head.uri.clone(),
        headers: head.headers.clone(),
        auth_token,
        transport,
    };
    let started = std::time::Instant::now();
    let connected = match config.connect_hook().connect(params, &info).await {
        Ok(connected) => connected,
        Err(refusal) => {
            tracing::info!(
                transport = transport.as_atom(),
                status = refusal.status.as_u16(),
                params = %params.filtered(),
                "REFUSED CONNECTION TO {} in {:?}",
                config.mount,
                started.elapsed()
            );
            return Err(refusal);
        }
    };
    tracing::info!(
        transport = transport.as_atom(),
        serializer = ?serializer,
        socket_id = connected.id.as_deref().unwrap_or(""),
        params = %params.filtered(),
        "CONNECTED TO {} in {:?}",
        config.mount,
        started.elapsed()
    );
    Ok(Authorized {
        serializer,
        connected,
    })
}
