//! Building an endpoint: its sockets, state, HTTP routes and limits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::http::{ErasedHttp, HttpAdapter, HttpHandler};
use super::{Endpoint, Shared};
use crate::config::{SocketConfig, SocketOptions};
use crate::presence::{BurstPolicy, PresenceFetch, Tracker};
use crate::pubsub::PubSub;
use crate::socket::Hub;
use crate::state::State;
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
    max_request_line: Option<usize>,
    max_header_bytes: Option<usize>,
    longpoll_max_sessions: usize,
    longpoll_max_sessions_per_address: usize,
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
    /// `path/longpoll` (docs/protocol.md §1.1), Phoenix's `socket "/socket", UserSocket`.
    pub fn socket<A: Send + Sync + 'static>(mut self, path: &str, config: SocketConfig<A>) -> Self {
        let path = path.trim_end_matches('/').to_owned();
        self.mounts.push((path, Arc::new(config.into_options())));
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
        let pubsub = PubSub::default();
        let hub = Hub {
            tracker: Arc::new(Tracker::new(self.fetch, burst_policy)),
            pubsub,
            state: self.state,
        };
        let endpoint = Endpoint {
            shared: Arc::new(Shared {
                max_request_line,
                max_header_bytes,
                mounts: self.mounts,
                http: self.http,
                services: Arc::new(Services {
                    hub,
                    host: self.host,
                    shutdown: CancellationToken::new(),
                    tasks: TaskTracker::new(),
                    longpoll: Sessions::new(
                        &secret,
                        self.longpoll_max_sessions,
                        self.longpoll_max_sessions_per_address,
                    ),
                }),
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
                    let hub = &shared.services.hub;
                    hub.tracker.flush_due(&hub.pubsub);
                }
            });
        }
        endpoint
    }
}
