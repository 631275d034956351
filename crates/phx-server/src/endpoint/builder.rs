//! Building an endpoint: its sockets, state, HTTP routes and limits.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::api::ServerApi;
use super::connections::{default_max_connections, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS};
use super::drain::Drain;
use super::health::ReadyCheckFn;
use super::http::{ErasedHttp, HttpAdapter, HttpHandler};
use super::{Endpoint, Shared};
use crate::address_limit::AddressLimit;
use crate::config::{SocketConfig, SocketOptions};
use crate::outbox::{OutboundMemory, DEFAULT_OUTBOUND_BYTES_TOTAL};
use crate::presence::replica::{Cluster, ReplicaPolicy};
use crate::presence::NodeInbound;
use crate::presence::{BurstPolicy, PresenceFetch, Tracker};
use crate::pubsub::adapter::Adapter;
use crate::pubsub::PubSub;
use crate::socket::Hub;
use crate::state::State;
use crate::telemetry::Telemetry;
use crate::tls::Tls;
use crate::transport::longpoll::limit::{
    DEFAULT_LONGPOLL_MAX_SESSIONS, DEFAULT_LONGPOLL_MAX_SESSIONS_PER_ADDRESS,
};
use crate::transport::longpoll::Sessions;
use crate::transport::Services;

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

/// Builds an [`Endpoint`]: its sockets, state, HTTP routes and limits (Phoenix's
/// endpoint module and its config).
///
/// ```
/// use phx_server::{AcceptAll, CheckOrigin, Endpoint, SocketConfig};
/// # use phx_server::{status_response, Body, HttpHandler};
/// # use phx_server::hyper::{body::Incoming, Request, Response, StatusCode};
/// # struct Pages;
/// # impl HttpHandler for Pages {
/// #     async fn call(&self, _: Request<Incoming>, _: &Endpoint) -> Response<Body> {
/// #         status_response(StatusCode::OK, "")
/// #     }
/// # }
/// struct Repo; // the app's database pool, say
///
/// let endpoint = Endpoint::builder()
///     .host("chat.example.com") // what CheckOrigin::Host compares with
///     .secret_key_base(std::env::var("SECRET_KEY_BASE").unwrap_or_default())
///     .state(Repo)
///     .socket("/socket", SocketConfig::new(AcceptAll))
///     .socket("/admin/socket", SocketConfig::new(AcceptAll).check_origin(CheckOrigin::Conn))
///     .http(Pages)
///     .build();
/// # let _ = endpoint;
/// ```
pub struct EndpointBuilder {
    mounts: Vec<(String, Arc<SocketOptions>)>,
    state: State,
    host: Option<String>,
    http: Option<Arc<dyn ErasedHttp>>,
    fetch: Option<Arc<dyn PresenceFetch>>,
    secret_key_base: Option<Vec<u8>>,
    presence_burst_window: Option<Duration>,
    presence_burst_limit: Option<usize>,
    cluster: Option<Arc<dyn Adapter>>,
    metrics: bool,
    health: bool,
    ready_checks: Vec<(String, ReadyCheckFn)>,
    api: Option<ServerApi>,
    drain: Drain,
    node_name: Option<String>,
    cluster_heartbeat: Duration,
    cluster_down_after: Duration,
    max_request_line: Option<usize>,
    max_header_bytes: Option<usize>,
    body_timeout: Option<Duration>,
    longpoll_max_sessions: usize,
    longpoll_max_sessions_per_address: usize,
    max_connections: Option<usize>,
    max_connections_per_address: usize,
    outbound_bytes_total: usize,
    tls: Option<Tls>,
}

impl Default for EndpointBuilder {
    fn default() -> Self {
        Self {
            mounts: Vec::new(),
            state: State::default(),
            host: None,
            http: None,
            fetch: None,
            secret_key_base: None,
            presence_burst_window: None,
            presence_burst_limit: None,
            cluster: None,
            metrics: false,
            health: false,
            ready_checks: Vec::new(),
            api: None,
            drain: Drain::default(),
            node_name: None,
            cluster_heartbeat: CLUSTER_HEARTBEAT,
            cluster_down_after: CLUSTER_DOWN_AFTER,
            max_request_line: None,
            max_header_bytes: None,
            body_timeout: None,
            longpoll_max_sessions: DEFAULT_LONGPOLL_MAX_SESSIONS,
            longpoll_max_sessions_per_address: DEFAULT_LONGPOLL_MAX_SESSIONS_PER_ADDRESS,
            max_connections: None,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            outbound_bytes_total: DEFAULT_OUTBOUND_BYTES_TOTAL,
            tls: None,
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
    /// `path/longpoll` (docs/protocol.md §1.1), Phoenix's `socket "/socket", UserSocket`.
    pub fn socket<A: Send + Sync + 'static>(mut self, path: &str, config: SocketConfig<A>) -> Self {
        let path = path.trim_end_matches('/').to_owned();
        let mut options = config.into_options();
        options.mount = path.clone();
        self.mounts.push((path, Arc::new(options)));
        self
    }

    /// Shares `value` with every channel ([`ChannelContext::state`](crate::ChannelContext::state))
    /// and HTTP handler ([`Endpoint::state`]): a database pool, a config, a client of
    /// another service. One value per type; a second value of a type replaces the first.
    ///
    /// ```
    /// struct Greeting(&'static str);
    /// let endpoint = phx_server::Endpoint::builder().state(Greeting("hello")).build();
    /// assert_eq!(endpoint.state::<Greeting>().map(|g| g.0), Some("hello"));
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// The host [`CheckOrigin::Host`](crate::CheckOrigin::Host) compares origins with (Phoenix's `url: [host: …]`;
    /// default `localhost`, as in Phoenix). The request's own `Host` header is never
    /// used: a DNS-rebinding page sends the attacker's host there.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Requests no socket route matches go here (default: 404).
    pub fn http(mut self, handler: impl HttpHandler) -> Self {
        self.http = Some(Arc::new(HttpAdapter(handler)));
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
    /// window's end, window after window (each twice as long as the one before, up to
    /// 16 times this one), until a window passes with nothing held back. Meanwhile a
    /// joining channel's `presence_state` is the list at the last merged diff, rendered
    /// once for every joiner of the window; the next merged diff completes it.
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

    /// How long a request body the server reads itself (a long-poll POST, a server API
    /// call) may take to arrive whole; past it the request is answered 408 and the
    /// connection closes (default [`DEFAULT_BODY_TIMEOUT`](crate::DEFAULT_BODY_TIMEOUT)).
    /// An app's own handlers read theirs with [`read_body`](crate::read_body) and
    /// [`Endpoint::body_timeout`].
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = Some(timeout);
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

    /// TCP connections the endpoint holds at once: HTTP connections, WebSockets, TLS
    /// handshakes in progress. A connection past it is refused as soon as it is accepted,
    /// before anything is allocated for it: HTTP 503 with `Retry-After: 5` and an empty
    /// body, then a close (a TLS connection is closed without an answer); phoenix.js
    /// reconnects with its backoff.
    ///
    /// Default: 90 % of the process's open-file limit (the soft `RLIMIT_NOFILE`, read when
    /// the endpoint is built; [`DEFAULT_MAX_CONNECTIONS_FALLBACK`](crate::DEFAULT_MAX_CONNECTIONS_FALLBACK)
    /// where it cannot be read), so the cap never refuses a connection the process could
    /// have served, keeps a tenth of the descriptors for the app's own files and links, and
    /// answers a flood with 503 rather than letting `accept` fail. Raise the open-file
    /// limit (`ulimit -n`, systemd's `LimitNOFILE`) to serve more.
    ///
    /// ```
    /// let endpoint = phx_server::Endpoint::builder()
    ///     .max_connections(50_000)
    ///     .max_connections_per_address(2_000)
    ///     .build();
    /// assert_eq!(endpoint.max_connections(), 50_000);
    /// ```
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = Some(connections);
        self
    }

    /// TCP connections one client address may hold at once (default
    /// [`DEFAULT_MAX_CONNECTIONS_PER_ADDRESS`](crate::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS);
    /// an IPv6 client counts per /64 prefix, an IPv4-mapped address as IPv4). Past it a
    /// new connection gets HTTP 429 with `Retry-After: 5` and is closed, before anything
    /// is allocated for it. The address is the TCP peer's: behind a reverse proxy every
    /// client has the proxy's, so set this to [`EndpointBuilder::max_connections`] there
    /// and cap per client in the proxy.
    pub fn max_connections_per_address(mut self, connections: usize) -> Self {
        self.max_connections_per_address = connections;
        self
    }

    /// Serves TLS itself (`https://` and `wss://`, no proxy needed): every connection
    /// must complete a TLS handshake with `tls` (within its handshake timeout) before
    /// any HTTP is read. See [`Tls`] for the files, the reload on SIGHUP and ALPN.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), phx_server::TlsError> {
    /// let endpoint = phx_server::Endpoint::builder()
    ///     .tls(phx_server::Tls::from_pem_files("cert.pem", "key.pem")?)
    ///     .build();
    /// # let _ = endpoint;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Bytes of outbound frames all the endpoint's WebSockets may hold at once (default
    /// [`DEFAULT_OUTBOUND_BYTES_TOTAL`](crate::DEFAULT_OUTBOUND_BYTES_TOTAL)): frames
    /// queued or being written, each counted once however many sockets share it (a
    /// broadcast to ten thousand subscribers is one frame).
    ///
    /// Each socket is bounded on its own by
    /// [`SocketConfig::outbound_bytes`](crate::SocketConfig::outbound_bytes); this bounds
    /// their sum, which many clients that stop reading at once would otherwise make
    /// `sockets × budget`. Past it, the sockets holding the most while their writers
    /// wrote nothing for a second are closed with 1013 (largest first, until what they
    /// held covers the excess); a socket whose client reads is never closed for it.
    pub fn outbound_bytes_total(mut self, bytes: usize) -> Self {
        self.outbound_bytes_total = bytes;
        self
    }

    /// Counts what the server does in Prometheus form and serves it at `GET /metrics`
    /// (the series are listed in docs/operating.md, "Metrics"). Installs the process-wide
    /// `metrics` recorder; an app that installs its own recorder before building the
    /// endpoint gets the same series there instead, without this.
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = enabled;
        self
    }

    /// Serves `GET /healthz` (200 while the process runs) and `GET /readyz` (200 when it
    /// should get traffic: listening, not draining, cluster link up when clustered, and
    /// every [`EndpointBuilder::ready_check`]; else 503 with `{"status":"unavailable",
    /// "down": {what: why}}`).
    pub fn health(mut self, enabled: bool) -> Self {
        self.health = enabled;
        self
    }

    /// Adds a readiness condition named `name` (a database, another service): `check`
    /// answers `Ok(())` when it is usable, `Err(why)` when not; it gets 2 s. Implies
    /// [`EndpointBuilder::health`].
    ///
    /// ```
    /// let endpoint = phx_server::Endpoint::builder()
    ///     .ready_check("store", || async { Ok(()) })
    ///     .build();
    /// # let _ = endpoint;
    /// ```
    pub fn ready_check<F, Fut>(mut self, name: &str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.health = true;
        self.ready_checks
            .push((name.to_owned(), super::health::ready_check(check)));
        self
    }

    /// Serves the server API (`/api/broadcast`, `/api/disconnect`, `/api/presence`, see
    /// [`ServerApi`]). Without it (the default) those paths are the app's like any other.
    pub fn server_api(mut self, api: ServerApi) -> Self {
        self.api = Some(api);
        self
    }

    /// How a shutdown closes sockets (default: 10 000 every 2 s within 30 s).
    pub fn drain(mut self, drain: Drain) -> Self {
        self.drain = drain;
        self
    }

    /// Makes this endpoint one node of a cluster (Phoenix's PubSub adapter plus a
    /// distributed presence tracker): broadcasts, presence and `disconnect` span every
    /// node that uses the same adapter settings. Without it the endpoint is a single
    /// node and needs nothing else.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use phx_server::cluster::RedisAdapter;
    /// let endpoint = phx_server::Endpoint::builder()
    ///     .cluster(RedisAdapter::new("redis://127.0.0.1:6379", "chat")?)
    ///     .node_name("chat-1")
    ///     .build();
    /// # let _ = endpoint;
    /// # Ok(())
    /// # }
    /// ```
    pub fn cluster(mut self, adapter: impl Adapter) -> Self {
        self.cluster = Some(Arc::new(adapter));
        self
    }

    /// This node's name in logs and in other nodes' logs (default: the host name and
    /// process id).
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = Some(name.into());
        self
    }

    /// How often this node tells the others it is alive (default [`CLUSTER_HEARTBEAT`]).
    pub fn cluster_heartbeat(mut self, every: Duration) -> Self {
        self.cluster_heartbeat = every.max(Duration::from_millis(10));
        self
    }

    /// How long a silent node is given before its presences leave (default
    /// [`CLUSTER_DOWN_AFTER`]).
    pub fn cluster_down_after(mut self, after: Duration) -> Self {
        self.cluster_down_after = after;
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
        let prometheus = self.metrics.then(install_prometheus).flatten();
        let max_connections = self.max_connections.unwrap_or_else(default_max_connections);
        let outbound = OutboundMemory::new(self.outbound_bytes_total);
        // After the recorder is installed: the handles bind to it.
        let telemetry = Arc::new(Telemetry::new());
        let pubsub = PubSub::with_telemetry(telemetry.clone());
        let tracker = Arc::new(Tracker::new(self.fetch, burst_policy));
        let clustered = match (&runtime, self.cluster) {
            (Some(_), Some(adapter)) => {
                let name = self.node_name.unwrap_or_else(default_node_name);
                tracker.join_cluster(Cluster::new(
                    adapter.clone(),
                    pubsub.node(),
                    name.clone(),
                    ReplicaPolicy {
                        heartbeat: self.cluster_heartbeat,
                        down_after: self.cluster_down_after,
                    },
                ));
                pubsub.set_adapter(adapter.clone());
                adapter.start(Arc::new(NodeInbound {
                    pubsub: pubsub.clone(),
                    tracker: tracker.clone(),
                }));
                tracing::info!(node = %name, "cluster: this endpoint is one node of a cluster");
                true
            }
            (None, Some(_)) => {
                tracing::error!(
                    "cluster: an endpoint built outside a tokio runtime stays a single node"
                );
                false
            }
            _ => false,
        };
        let hub = Hub {
            telemetry,
            tracker,
            pubsub,
            state: self.state,
        };
        let endpoint = Endpoint {
            shared: Arc::new(Shared {
                max_request_line,
                max_header_bytes,
                mounts: self.mounts,
                http: self.http,
                prometheus,
                health: self.health,
                ready_checks: self.ready_checks,
                api: self.api,
                drain: self.drain,
                listening: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                stop_accepting: CancellationToken::new(),
                connections: AddressLimit::new(max_connections, self.max_connections_per_address),
                max_connections,
                refusals: Default::default(),
                tls: self.tls,
                services: Arc::new(Services {
                    hub,
                    host: self.host,
                    shutdown: CancellationToken::new(),
                    tasks: TaskTracker::new(),
                    sockets: Default::default(),
                    outbound: outbound.clone(),
                    body_timeout: self.body_timeout.unwrap_or(crate::DEFAULT_BODY_TIMEOUT),
                    longpoll: Sessions::new(
                        &secret,
                        self.longpoll_max_sessions,
                        self.longpoll_max_sessions_per_address,
                    ),
                }),
            }),
        };
        if let (Some(runtime), true) = (&runtime, clustered) {
            // Heartbeats and down detection; a weak reference ends it with the endpoint.
            let shared = Arc::downgrade(&endpoint.shared);
            let every = self.cluster_heartbeat;
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(shared) = shared.upgrade() else {
                        break;
                    };
                    let hub = &shared.services.hub;
                    hub.tracker
                        .cluster_tick(&hub.pubsub, std::time::Instant::now());
                }
            });
        }
        if let Some(runtime) = &runtime {
            // Holds only a weak reference: the task ends with the endpoint.
            runtime.spawn(crate::transport::websocket::shed::keep_within_total(
                Arc::downgrade(&endpoint.shared.services),
                outbound,
            ));
        }
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
                    let hub = &shared.services.hub;
                    hub.tracker.flush_due(&hub.pubsub);
                }
            });
        }
        endpoint
    }
}

/// Default heartbeat period of a cluster node (see [`EndpointBuilder::cluster_heartbeat`]):
/// 1.5 s, Phoenix.Tracker's `broadcast_period`.
pub const CLUSTER_HEARTBEAT: Duration = Duration::from_millis(1500);

/// Default silence after which a node is declared down and its presences leave (see
/// [`EndpointBuilder::cluster_down_after`]): 5 s. Phoenix.Tracker waits 30 s
/// (`down_period`); a node of a phx-rs cluster behind one Redis is on one network, and
/// users of a node that died should not look online for half a minute.
pub const CLUSTER_DOWN_AFTER: Duration = Duration::from_secs(5);

fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "node".to_owned());
    format!("{host}:{}", std::process::id())
}

/// Installs the Prometheus recorder; `None` (logged) if another recorder is installed.
///
/// Every series named `*_duration_seconds` (`phx_handle_in_duration_seconds`, and an
/// app's own, such as the chat app's store latency) is a histogram with these buckets,
/// so it can be summed over nodes; other histograms are summaries.
fn install_prometheus() -> Option<PrometheusHandle> {
    match PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".to_owned()),
            &[
                0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
            ],
        )
        .and_then(PrometheusBuilder::install_recorder)
    {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::error!(%error, "metrics: Prometheus recorder not installed; /metrics is off");
            None
        }
    }
}
