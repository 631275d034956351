//! A socket's configuration: its connect hook, channel routes and options.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::channel::Channel;
use crate::connect::{Connect, ConnectInfo, Refusal};
use crate::origin::CheckOrigin;
use crate::origin_refusal::RefusalLog;
use crate::params::Params;
use crate::rate_limit::RateLimit;
use crate::socket::{CallbackFuture, Router, SocketSettings};

/// Default per-client outbound budget (see [`SocketConfig::outbound_bytes`]): 256 KiB.
///
/// Why this number: it must hold an ordinary burst (a join reply with 50 messages of
/// 4 000 characters is ~200 KiB) while `sockets × budget` stays well inside memory at the
/// open-file limit (20 000 sockets × 256 KiB = 5 GiB in the worst case, when every
/// client stops reading at once).
pub const DEFAULT_OUTBOUND_BYTES: usize = 256 * 1024;

/// An accepted connection with its assigns type erased.
pub(crate) struct Accepted {
    pub(crate) assigns: Arc<dyn Any + Send + Sync>,
    pub(crate) id: Option<String>,
}

/// The connect hook as the transports call it, whatever its assigns type.
pub(crate) trait ErasedConnect: Send + Sync {
    fn connect<'a>(
        &'a self,
        params: &'a Params,
        info: &'a ConnectInfo,
    ) -> CallbackFuture<'a, Result<Accepted, Refusal>>;
}

struct ConnectAdapter<C>(C);

impl<C: Connect> ErasedConnect for ConnectAdapter<C> {
    fn connect<'a>(
        &'a self,
        params: &'a Params,
        info: &'a ConnectInfo,
    ) -> CallbackFuture<'a, Result<Accepted, Refusal>> {
        Box::pin(async move {
            let connected = self.0.connect(params, info).await?;
            Ok(Accepted {
                assigns: Arc::new(connected.assigns),
                id: connected.id,
            })
        })
    }
}

/// One socket: its connect hook, channel routes and options (Phoenix's `socket
/// "/socket", UserSocket, websocket: [...], longpoll: [...]` and the `channel` lines of
/// `UserSocket`).
///
/// `A` is the socket's assigns type, its [`Connect`] hook's `Assigns`: only channels with
/// the same `Assigns` can be routed to.
///
/// ```
/// use phx_server::{AcceptAll, Channel, ChannelContext, CheckOrigin, HandleResult, JoinResult, Payload, SocketConfig};
/// use std::time::Duration;
///
/// #[derive(Default)]
/// struct Room;
/// impl Channel for Room {
///     type Assigns = ();
///     type Info = ();
///     async fn join(&mut self, _t: &str, _p: Payload, _c: &mut ChannelContext<'_, Self>) -> JoinResult {
///         Ok(Payload::empty_object())
///     }
///     async fn handle_in(&mut self, _e: &str, _p: Payload, _c: &mut ChannelContext<'_, Self>) -> HandleResult {
///         HandleResult::noreply()
///     }
/// }
///
/// let socket = SocketConfig::new(AcceptAll)
///     .channel("room:*", Room::default)
///     .check_origin(CheckOrigin::allowed(["//example.com"]).unwrap())
///     .timeout(Duration::from_secs(60))
///     .longpoll(false);
/// # let _ = socket;
/// ```
pub struct SocketConfig<A = ()> {
    options: SocketOptions,
    _assigns: PhantomData<fn() -> A>,
}

impl<A> fmt::Debug for SocketConfig<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.options.fmt(f)
    }
}

/// A socket's options with its types erased: what the transports read.
pub(crate) struct SocketOptions {
    /// Where the endpoint mounted it (`/socket`), for logs.
    pub(crate) mount: String,
    connect: Box<dyn ErasedConnect>,
    settings: Arc<SocketSettings>,
    check_origin: CheckOrigin,
    /// Origins `check_origin` refused and the log explained (bounded).
    refused_origins: RefusalLog,
    timeout: Duration,
    auth_token: bool,
    subprotocols: Option<Vec<String>>,
    max_frame_size: usize,
    outbound_capacity: usize,
    outbound_bytes: usize,
    rate_limit: Option<RateLimit>,
    longpoll_window: Duration,
    longpoll_max_buffered: usize,
    websocket: bool,
    longpoll: bool,
}

impl fmt::Debug for SocketOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketConfig")
            .field("router", &self.settings.router)
            .field("check_origin", &self.check_origin)
            .field("timeout", &self.timeout)
            .field("max_channels", &self.settings.max_channels)
            .field("websocket", &self.websocket)
            .field("longpoll", &self.longpoll)
            .finish_non_exhaustive()
    }
}

impl<A: Send + Sync + 'static> SocketConfig<A> {
    /// A socket with Phoenix's defaults: idle timeout 60 s, 100 channels, check_origin
    /// against the endpoint's host, auth-token subprotocol accepted, WebSocket and long
    /// poll both on.
    pub fn new<C: Connect<Assigns = A>>(connect: C) -> Self {
        Self::from_options(SocketOptions {
            mount: String::new(),
            connect: Box::new(ConnectAdapter(connect)),
            settings: Arc::new(SocketSettings {
                router: Router::default(),
                max_channels: 100,
            }),
            check_origin: CheckOrigin::Host,
            refused_origins: RefusalLog::default(),
            timeout: Duration::from_secs(60),
            auth_token: true,
            subprotocols: None,
            max_frame_size: 8 * 1024 * 1024,
            outbound_capacity: 1024,
            outbound_bytes: DEFAULT_OUTBOUND_BYTES,
            rate_limit: None,
            longpoll_window: Duration::from_secs(10),
            longpoll_max_buffered: 1000,
            websocket: true,
            longpoll: true,
        })
    }

    fn from_options(options: SocketOptions) -> Self {
        Self {
            options,
            _assigns: PhantomData,
        }
    }

    /// Routes topics matching `pattern` (`"room:lobby"` exactly or `"room:*"` by prefix;
    /// the first matching route wins) to a new channel made by `factory` per join
    /// (Phoenix's `channel "room:*", RoomChannel`).
    ///
    /// `factory` is any function making a channel: `Room::default`, or a closure that
    /// hands each new channel what it shares with the others.
    ///
    /// ```
    /// # use phx_server::{AcceptAll, Channel, ChannelContext, HandleResult, JoinResult, Payload, SocketConfig};
    /// use std::sync::{atomic::AtomicU64, Arc};
    ///
    /// struct Room {
    ///     messages: Arc<AtomicU64>, // counted over every room
    /// }
    /// # impl Channel for Room {
    /// #     type Assigns = (); type Info = ();
    /// #     async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> JoinResult { Ok(Payload::empty_object()) }
    /// #     async fn handle_in(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> HandleResult { HandleResult::noreply() }
    /// # }
    /// # #[derive(Default)] struct Lobby;
    /// # impl Channel for Lobby {
    /// #     type Assigns = (); type Info = ();
    /// #     async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> JoinResult { Ok(Payload::empty_object()) }
    /// #     async fn handle_in(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> HandleResult { HandleResult::noreply() }
    /// # }
    ///
    /// let messages = Arc::new(AtomicU64::new(0));
    /// let socket = SocketConfig::new(AcceptAll)
    ///     .channel("room:lobby", Lobby::default) // first match wins: before "room:*"
    ///     .channel("room:*", move || Room { messages: messages.clone() });
    /// # let _ = socket;
    /// ```
    pub fn channel<C, F>(mut self, pattern: &str, factory: F) -> Self
    where
        C: Channel<Assigns = A>,
        F: Fn() -> C + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.options.settings)
            .router
            .add(pattern, crate::channel::factory(factory));
        self
    }

    /// Serve `<mount>/websocket` (default on; Phoenix's `websocket: true`).
    pub fn websocket(mut self, enabled: bool) -> Self {
        self.options.websocket = enabled;
        self
    }

    /// Serve `<mount>/longpoll` (default on; Phoenix's `longpoll: true`).
    pub fn longpoll(mut self, enabled: bool) -> Self {
        self.options.longpoll = enabled;
        self
    }

    /// Origin policy (§1.5).
    pub fn check_origin(mut self, check: CheckOrigin) -> Self {
        self.options.check_origin = check;
        self
    }

    /// Close a WebSocket that sent nothing for this long (§3.1; default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Channels one socket may join (default 100, §3.2).
    pub fn max_channels(mut self, max: usize) -> Self {
        Arc::make_mut(&mut self.options.settings).max_channels = max;
        self
    }

    /// Accept phoenix.js' `authToken` (§1.6; default on).
    pub fn auth_token(mut self, enabled: bool) -> Self {
        self.options.auth_token = enabled;
        self
    }

    /// WebSocket subprotocols the server speaks; a client offering only others is refused.
    pub fn subprotocols(mut self, list: Vec<String>) -> Self {
        self.options.subprotocols = Some(list);
        self
    }

    /// Largest WebSocket message accepted, fragments included (default 8 MiB); bigger
    /// ones close the connection with 1009.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.options.max_frame_size = bytes;
        self
    }

    /// Frames queued for one slow WebSocket client before it is disconnected with 1013
    /// (default 1024).
    pub fn outbound_capacity(mut self, frames: usize) -> Self {
        self.options.outbound_capacity = frames.max(1);
        self
    }

    /// Bytes one client may have queued for it (WebSocket write queue or long-poll
    /// buffer) before it counts as a slow reader (default [`DEFAULT_OUTBOUND_BYTES`]):
    /// a WebSocket is closed with 1013, a long-poll session is ended (its next GET gets
    /// a new session and phoenix.js rejoins).
    /// A single frame larger than this is still delivered to a client whose queue is
    /// empty, so every message the server accepted can reach a client that reads.
    pub fn outbound_bytes(mut self, bytes: usize) -> Self {
        self.options.outbound_bytes = bytes.max(1);
        self
    }

    /// Limits the rate of client messages per socket (default: no limit, as Phoenix).
    /// See [`RateLimit`].
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.options.rate_limit = Some(limit);
        self
    }

    /// Long-poll window (§7.3; default 10 s).
    pub fn longpoll_window(mut self, window: Duration) -> Self {
        self.options.longpoll_window = window;
        self
    }

    /// Messages a long-poll session buffers between polls before it is ended
    /// (default 1000). Its buffer is also bounded in bytes by
    /// [`SocketConfig::outbound_bytes`].
    pub fn longpoll_max_buffered(mut self, messages: usize) -> Self {
        self.options.longpoll_max_buffered = messages.max(1);
        self
    }

    /// The erased options, for the endpoint.
    pub(crate) fn into_options(self) -> SocketOptions {
        self.options
    }
}

impl SocketOptions {
    pub(crate) fn connect_hook(&self) -> &dyn ErasedConnect {
        self.connect.as_ref()
    }
    pub(crate) fn settings(&self) -> &Arc<SocketSettings> {
        &self.settings
    }
    pub(crate) fn websocket_enabled(&self) -> bool {
        self.websocket
    }
    pub(crate) fn longpoll_enabled(&self) -> bool {
        self.longpoll
    }
    pub(crate) fn origin_policy(&self) -> &CheckOrigin {
        &self.check_origin
    }
    pub(crate) fn refused_origins(&self) -> &RefusalLog {
        &self.refused_origins
    }
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.timeout
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
