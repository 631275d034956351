//! The endpoint: sockets mounted at paths, shared pubsub and presence, the HTTP server.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use phx_protocol::Payload;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::AcceptBackoff;
use crate::channel::{Channel, InstanceId};
use crate::connect::Connect;
use crate::origin::CheckOrigin;
use crate::presence::{BurstPolicy, PresenceFetch, Tracker};
use crate::pubsub::{BroadcastError, PubSub};
use crate::rate_limit::RateLimit;
use crate::router::Router;
use crate::session_limit::{
    DEFAULT_LONGPOLL_MAX_SESSIONS, DEFAULT_LONGPOLL_MAX_SESSIONS_PER_ADDRESS,
};
use crate::transport;

/// Response body type used by the endpoint and HTTP handlers.
pub type Body = Full<Bytes>;

/// Routes the endpoint serves besides sockets (pages, assets, APIs).
#[async_trait]
pub trait HttpHandler: Send + Sync + 'static {
    /// Answers a request no socket route matched.
    async fn call(&self, req: Request<Incoming>, endpoint: &Endpoint) -> Response<Body>;
}

/// Default per-client outbound budget (see [`SocketConfig::outbound_bytes`]): 256 KiB.
///
/// Why this number: it must hold an ordinary burst (a join reply with 50 messages of
/// 4 000 characters is ~200 KiB) while `sockets × budget` stays well inside memory at the
/// open-file limit (20 000 sockets × 256 KiB = 5 GiB in the worst case, when every
/// client stops reading at once).
pub const DEFAULT_OUTBOUND_BYTES: usize = 256 * 1024;

/// Default cap on an HTTP request line (see [`EndpointBuilder::max_request_line`]):
/// 10 000 bytes, Bandit's `max_request_line_length`.
///
/// Why Bandit's and not Cowboy's 8 000: Bandit is the adapter Phoenix 1.8 generates
/// apps with, and the larger of the two refuses nothing either Phoenix server accepts.
/// phoenix.js puts the connect params in the query, so this also bounds them.
pub const DEFAULT_MAX_REQUEST_LINE: usize = 10_000;

/// Default cap on an HTTP request head, request line and headers together (see
/// [`EndpointBuilder::max_header_bytes`]): 64 KiB.
///
/// Why this number: it is what one connection may make the server buffer before a
/// request is even routed. Browsers stay far below it (nginx's default allows 32 KiB of
/// headers); hyper's own default would be about 400 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// One socket: its connect hook, channel routes and options (Phoenix's `socket "/ws",
/// UserSocket, websocket: [...]`).
pub struct SocketConfig {
    connect: Arc<dyn Connect>,
    router: Router,
    check_origin: CheckOrigin,
    timeout: Duration,
    max_channels: usize,
    auth_token: bool,
    subprotocols: Option<Vec<String>>,
    max_frame_size: usize,
    outbound_capacity: usize,
    outbound_bytes: usize,
    rate_limit: Option<RateLimit>,
    longpoll_window: Duration,
    longpoll_max_buffered: usize,
}

impl fmt::Debug for SocketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketConfig")
            .field("router", &self.router)
            .field("check_origin", &self.check_origin)
            .field("timeout", &self.timeout)
            .field("max_channels", &self.max_channels)
            .finish_non_exhaustive()
    }
}

impl SocketConfig {
    /// A socket with Phoenix's defaults: idle timeout 60 s, 100 channels, check_origin
    /// against the host, auth-token subprotocol accepted.
    pub fn new(connect: impl Connect) -> Self {
        Self {
            connect: Arc::new(connect),
            router: Router::default(),
            check_origin: CheckOrigin::Host,
            timeout: Duration::from_secs(60),
            max_channels: 100,
            auth_token: true,
            subprotocols: None,
            max_frame_size: 8 * 1024 * 1024,
            outbound_capacity: 1024,
            outbound_bytes: DEFAULT_OUTBOUND_BYTES,
            rate_limit: None,
            longpoll_window: Duration::from_secs(10),
            longpoll_max_buffered: 1000,
        }
    }

    /// Routes topics matching `pattern` (`"room:lobby"` exactly or `"room:*"` by prefix)
    /// to a new channel made by `factory` per join.
    pub fn channel<C, F>(mut self, pattern: &str, factory: F) -> Self
    where
        C: Channel,
        F: Fn() -> C + Send + Sync + 'static,
    {
        self.router.add(
            pattern,
            Arc::new(move || Box::new(factory()) as Box<dyn Channel>),
        );
        self
    }

    /// Origin policy (§1.5).
    pub fn check_origin(mut self, check: CheckOrigin) -> Self {
        self.check_origin = check;
        self
    }

    /// Close a WebSocket that sent nothing for this long (§3.1; default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Channels one socket may join (default 100, §3.2).
    pub fn max_channels(mut self, max: usize) -> Self {
        self.max_channels = max;
        self
    }

    /// Accept phoenix.js' `authToken` (§1.6; default on).
    pub fn auth_token(mut self, enabled: bool) -> Self {
        self.auth_token = enabled;
        self
    }

    /// WebSocket subprotocols the server speaks; a client offering only others is refused.
    pub fn subprotocols(mut self, list: Vec<String>) -> Self {
        self.subprotocols = Some(list);
        self
    }

    /// Largest WebSocket message accepted, fragments included (default 8 MiB); bigger
    /// ones close the connection with 1009.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Frames queued for one slow WebSocket client before it is disconnected with 1013
    /// (default 1024).
    pub fn outbound_capacity(mut self, frames: usize) -> Self {
        self.outbound_capacity = frames.max(1);
        self
    }

    /// Bytes one client may have queued for it (WebSocket write queue or long-poll
    /// buffer) before it counts as a slow reader (default [`DEFAULT_OUTBOUND_BYTES`]):
    /// a WebSocket is closed with 1013, a long-poll session is ended (its next GET gets
    /// a new session and phoenix.js rejoins).
    /// A single frame larger than this is still delivered to a client whose queue is
    /// empty, so every message the server accepted can reach a client that reads.
    pub fn outbound_bytes(mut self, bytes: usize) -> Self {
        self.outbound_bytes = bytes.max(1);
        self
    }

    /// Limits the rate of client messages per socket (default: no limit, as Phoenix).
    /// See [`RateLimit`].
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Long-poll window (§7.3; default 10 s).
    pub fn longpoll_window(mut self, window: Duration) -> Self {
        self.longpoll_window = window;
        self
    }

    /// Messages a long-poll session buffers between polls before it is ended
    /// (default 1000). Its buffer is also bounded in bytes by
    /// [`SocketConfig::outbound_bytes`].
    pub fn longpoll_max_buffered(mut self, messages: usize) -> Self {
        self.longpoll_max_buffered = messages.max(1);
        self
    }

    pub(crate) fn connect_hook(&self) -> &dyn Connect {
        self.connect.as_ref()
    }
    pub(crate) fn router(&self) -> &Router {
        &self.router
    }
    pub(crate) fn origin_policy(&self) -> &CheckOrigin {
        &self.check_origin
    }
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.timeout
    }
    pub(crate) fn channel_limit(&self) -> usize {
        self.max_channels
    }
    pub(crate) fn auth_token_enabled(&self) -> bool {
        self.auth_token
    }
    pub(crate) fn subprotocol_list(&self) -> Option<&[String]> {
        self.subprotocols.as_deref()
    }
    pub(crate) fn frame_limit(&self) -> usize {
        self.max_frame_size
    }
    pub(crate) fn queue_capacity(&self) -> usize {
        self.outbound_capacity
    }
    pub(crate) fn outbound_byte_limit(&self) -> usize {
        self.outbound_bytes
    }
    pub(crate) fn inbound_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }
    pub(crate) fn window(&self) -> Duration {
        self.longpoll_window
    }
    pub(crate) fn max_buffered(&self) -> usize {
        self.longpoll_max_buffered
    }
}

/// Builds an [`Endpoint`].
pub struct EndpointBuilder {
    mounts: Vec<(String, Arc<SocketConfig>)>,
    host: Option<String>,
    http: Option<Arc<dyn HttpHandler>>,
    fetch: Option<Arc<dyn PresenceFetch>>,
    secret_key_base: Option<Vec<u8>>,
    presence_burst_window: Option<Duration>,
    presence_burst_limit: Option<usize>,
    max_request_line: Option<usize>,
    max_header_bytes: Option<usize>,
    longpoll_max_sessions: usize,
    longpoll_max_sessions_per_address: usize,
}

impl Default for EndpointBuilder {
    fn default() -> Self {
        Self {
            mounts: Vec::new(),
            host: None,
            http: None,
            fetch: None,
            secret_key_base: None,
            presence_burst_window: None,
            presence_burst_limit: None,
            max_request_line: None,
            max_header_bytes: None,
            longpoll_max_sessions: DEFAULT_LONGPOLL_MAX_SESSIONS,
            longpoll_max_sessions_per_address: DEFAULT_LONGPOLL_MAX_SESSIONS_PER_ADDRESS,
        }
    }
}

/// Default presence burst window (see [`EndpointBuilder::presence_burst_window`]): 25 ms.
pub const PRESENCE_BURST_WINDOW: Duration = Duration::from_millis(25);

/// Default presence diffs of one topic sent on their own per burst window (see
/// [`EndpointBuilder::presence_burst_limit`]): 20.
///
/// Why this number: people change presence a few times a minute at most, so even a
/// 1 000-member room averages well under one change per 25 ms window, and 20 in one
/// window (800 per second) never happens in ordinary use: every change goes out on its
/// own, as Phoenix sends it. A reconnect storm of thousands of joins in a second is
/// past it within milliseconds; from then on each member gets one merged diff per
/// window (40 per second) instead of one diff per join.
pub const PRESENCE_BURST_LIMIT: usize = 20;

impl fmt::Debug for EndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointBuilder")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl EndpointBuilder {
    /// Mounts a socket at `path` (e.g. `/socket`): it serves `path/websocket` and
    /// `path/longpoll` (§1.1).
    pub fn socket(mut self, path: &str, config: SocketConfig) -> Self {
        let path = path.trim_end_matches('/').to_owned();
        self.mounts.push((path, Arc::new(config)));
        self
    }

    /// The host [`CheckOrigin::Host`] compares origins with (Phoenix's `url: [host: …]`;
    /// default `localhost`, as in Phoenix). The request's own `Host` header is never
    /// used: a DNS-rebinding page sends the attacker's host there.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Requests no socket route matches go here (default: 404).
    pub fn http(mut self, handler: impl HttpHandler) -> Self {
        self.http = Some(Arc::new(handler));
        self
    }

    /// Decorates presence lists and diffs (Phoenix's `fetch/2`).
    pub fn presence_fetch(mut self, fetch: impl PresenceFetch) -> Self {
        self.fetch = Some(Arc::new(fetch));
        self
    }

    /// The window of presence burst detection (default [`PRESENCE_BURST_WINDOW`]).
    ///
    /// Every presence change goes out as its own `presence_diff`, as Phoenix sends it,
    /// until one topic sees more than [`EndpointBuilder::presence_burst_limit`] changes
    /// within this window. Then further changes are merged into one diff sent at the
    /// window's end, window after window, until a window passes with nothing held back.
    /// Order is kept: a change never overtakes a held-back one. Zero never merges.
    pub fn presence_burst_window(mut self, window: Duration) -> Self {
        self.presence_burst_window = Some(window);
        self
    }

    /// Presence diffs of one topic sent on their own per burst window before the rest
    /// are merged (default [`PRESENCE_BURST_LIMIT`]; at least 1). See
    /// [`EndpointBuilder::presence_burst_window`].
    pub fn presence_burst_limit(mut self, diffs: usize) -> Self {
        self.presence_burst_limit = Some(diffs.max(1));
        self
    }

    /// Longest request line (method, target with its query, version) the endpoint
    /// serves; a longer one is answered 414 URI Too Long before any routing (default
    /// [`DEFAULT_MAX_REQUEST_LINE`]). Raising it above [`EndpointBuilder::max_header_bytes`]
    /// raises that too.
    pub fn max_request_line(mut self, bytes: usize) -> Self {
        self.max_request_line = Some(bytes);
        self
    }

    /// Largest request head (request line and headers) the endpoint reads; hyper answers
    /// a larger one 431 Request Header Fields Too Large and closes the connection
    /// (default [`DEFAULT_MAX_HEADER_BYTES`]).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = Some(bytes);
        self
    }

    /// Secret that signs long-poll session tokens (Phoenix's `secret_key_base`). Without
    /// one a random secret is generated (sessions then do not survive a restart, which
    /// they cannot anyway).
    pub fn secret_key_base(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret_key_base = Some(secret.into());
        self
    }

    /// Long-poll sessions the endpoint keeps alive at once, over all mounts (default
    /// [`DEFAULT_LONGPOLL_MAX_SESSIONS`]). A GET that would open one more is answered
    /// HTTP 503 before its origin check and connect hook run; phoenix.js then reconnects
    /// with its backoff. Zero refuses every long-poll session.
    pub fn longpoll_max_sessions(mut self, sessions: usize) -> Self {
        self.longpoll_max_sessions = sessions;
        self
    }

    /// Long-poll sessions one client address may hold at once (default
    /// [`DEFAULT_LONGPOLL_MAX_SESSIONS_PER_ADDRESS`]; an IPv6 client counts per /64
    /// prefix). Past it a new session is answered HTTP 429. The address is the TCP
    /// peer's: behind a reverse proxy every client shares the proxy's address, so raise
    /// this to [`EndpointBuilder::longpoll_max_sessions`] there and cap per client in the
    /// proxy.
    pub fn longpoll_max_sessions_per_address(mut self, sessions: usize) -> Self {
        self.longpoll_max_sessions_per_address = sessions;
        self
    }

    /// Finishes the endpoint. Called inside a tokio runtime, it also starts the task that
    /// flushes merged presence diffs; outside one, presence diffs are never merged.
    pub fn build(self) -> Endpoint {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let window = match &runtime {
            Some(_) => self.presence_burst_window.unwrap_or(PRESENCE_BURST_WINDOW),
            None => Duration::ZERO,
        };
        let burst_policy = BurstPolicy {
            limit: self.presence_burst_limit.unwrap_or(PRESENCE_BURST_LIMIT),
            window,
        };
        let secret = self.secret_key_base.unwrap_or_else(|| {
            let random: [u8; 32] = rand::random();
            random.to_vec()
        });
        let max_request_line = self.max_request_line.unwrap_or(DEFAULT_MAX_REQUEST_LINE);
        // A request line over the head limit would get hyper's 431 and never reach
        // the 414 check, so the head limit is at least the request line (and its CRLF).
        let max_header_bytes = self
            .max_header_bytes
            .unwrap_or(DEFAULT_MAX_HEADER_BYTES)
            .max(max_request_line.saturating_add(2));
        let endpoint = Endpoint {
            shared: Arc::new(Shared {
                max_request_line,
                max_header_bytes,
                pubsub: PubSub::default(),
                tracker: Tracker::new(self.fetch, burst_policy),
                mounts: self.mounts,
                host: self.host,
                http: self.http,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                instances: AtomicU64::new(1),
                longpoll: crate::longpoll::Sessions::new(
                    &secret,
                    self.longpoll_max_sessions,
                    self.longpoll_max_sessions_per_address,
                ),
            }),
        };
        if let (Some(runtime), false) = (runtime, window.is_zero()) {
            // Holds only a weak reference: the task ends with the endpoint.
            let shared = Arc::downgrade(&endpoint.shared);
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(window);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(shared) = shared.upgrade() else {
                        break;
                    };
                    shared.tracker.flush_due(&shared.pubsub);
                }
            });
        }
        endpoint
    }
}

pub(crate) struct Shared {
    max_request_line: usize,
    max_header_bytes: usize,
    pubsub: PubSub,
    tracker: Tracker,
    mounts: Vec<(String, Arc<SocketConfig>)>,
    host: Option<String>,
    http: Option<Arc<dyn HttpHandler>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    instances: AtomicU64,
    longpoll: crate::longpoll::Sessions,
}

/// A running set of sockets sharing one PubSub and one presence tracker. Cheap to clone.
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

    /// Broadcasts `event` with `payload` to every subscriber of `topic` (Phoenix's
    /// `Endpoint.broadcast/3`). On a socket id topic, event `disconnect` closes those
    /// sockets (§1.7).
    pub fn broadcast(
        &self,
        topic: &str,
        event: &str,
        payload: Payload,
    ) -> Result<(), BroadcastError> {
        self.shared.pubsub.broadcast(topic, event, payload, None)
    }

    /// Closes every socket whose connect assigned this id (§1.7).
    pub fn disconnect(&self, socket_id: &str) {
        let _ = self.broadcast(
            socket_id,
            phx_protocol::event::DISCONNECT,
            Payload::empty_object(),
        );
    }

    /// Channels subscribed to a topic on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.shared.pubsub.subscriber_count(topic)
    }

    /// Long-poll sessions alive now over all mounts, those whose connect hook is still
    /// running included: the number [`EndpointBuilder::longpoll_max_sessions`] caps.
    pub fn longpoll_session_count(&self) -> usize {
        self.shared.longpoll.count()
    }

    /// Serves HTTP on `listener` until [`Endpoint::shutdown`]; then drains sockets
    /// (close 1012) and returns once they are gone (at most 30 s).
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        let mut backoff = AcceptBackoff::default();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning, and log the
                        // episode, not every retry.
                        let retry = backoff.failed(Instant::now());
                        if retry.episode_started {
                            tracing::warn!(%error, "accept failing; backing off until it works again");
                        }
                        tokio::select! {
                            () = tokio::time::sleep(retry.after) => {}
                            () = self.shared.shutdown.cancelled() => break,
                        }
                        continue;
                    }
                },
                () = self.shared.shutdown.cancelled() => break,
            };
            if let Some(recovered) = backoff.succeeded(Instant::now()) {
                tracing::info!(
                    failures = recovered.failures,
                    lasted_ms = recovered.lasted.as_millis() as u64,
                    "accepting again"
                );
            }
            let _ = stream.set_nodelay(true);
            let endpoint = self.clone();
            self.shared
                .tasks
                .spawn(async move { endpoint.serve_connection(stream, peer).await });
        }
        self.shared.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.shared.tasks.wait()).await;
        Ok(())
    }

    /// Stops accepting and closes every socket with 1012 (service restart), as
    /// Phoenix's drainer does; clients reconnect elsewhere.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    async fn serve_connection(self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let endpoint = self.clone();
        let service = service_fn(move |req| {
            let endpoint = endpoint.clone();
            async move { Ok::<_, Infallible>(endpoint.handle(req, peer).await) }
        });
        let conn = http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .max_header_size(self.shared.max_header_bytes)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "http connection error");
                }
            }
            () = self.shared.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        // Before any routing or query decoding, as Cowboy and Bandit refuse it while
        // parsing the request line.
        if request_line_len(&req) > self.shared.max_request_line {
            return status_response(StatusCode::URI_TOO_LONG, "request line too long");
        }
        let path = req.uri().path().to_owned();
        for (mount, config) in &self.shared.mounts {
            let Some(rest) = path.strip_prefix(mount.as_str()) else {
                continue;
            };
            match rest {
                "/websocket" => return transport::websocket::handle(self, config, req, peer).await,
                "/longpoll" => return crate::longpoll::handle(self, config, req, peer).await,
                _ => {}
            }
        }
        match &self.shared.http {
            Some(handler) => handler.call(req, self).await,
            None => status_response(StatusCode::NOT_FOUND, ""),
        }
    }

    pub(crate) fn pubsub(&self) -> &PubSub {
        &self.shared.pubsub
    }
    pub(crate) fn tracker(&self) -> &Tracker {
        &self.shared.tracker
    }
    pub(crate) fn untrack_instance(&self, instance: InstanceId) {
        self.shared
            .tracker
            .untrack_instance_with(&self.shared.pubsub, instance);
    }
    pub(crate) fn next_instance(&self) -> InstanceId {
        InstanceId(self.shared.instances.fetch_add(1, Ordering::Relaxed))
    }
    pub(crate) fn host(&self) -> Option<&str> {
        self.shared.host.as_deref()
    }
    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.shared.shutdown
    }
    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.shared.tasks
    }
    pub(crate) fn longpoll_sessions(&self) -> &crate::longpoll::Sessions {
        &self.shared.longpoll
    }
}

/// The length of the request line hyper parsed: `METHOD SP request-target SP HTTP/1.1`.
fn request_line_len<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.scheme_str().map_or(0, |s| s.len() + "://".len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    req.method().as_str().len() + " ".len() + target + " HTTP/1.1".len()
}

/// A response with a status and a text body.
pub fn status_response(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp
}
