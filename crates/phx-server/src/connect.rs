//! The connect hook (§1.4): the app decides whether a transport may open a socket.

use std::net::SocketAddr;

use std::future::Future;

use hyper::{HeaderMap, StatusCode, Uri};

use crate::params::Params;

/// Which transport a socket runs over ([`ConnectInfo::transport`],
/// [`ChannelContext::transport`](crate::ChannelContext::transport)).
///
/// ```
/// use phx_server::Transport;
/// assert_eq!(Transport::LongPoll.as_atom(), ":longpoll");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `<mount>/websocket`.
    WebSocket,
    /// `<mount>/longpoll`.
    LongPoll,
    /// An in-process socket made by [`crate::testing`] (Phoenix's `:channel_test`).
    Test,
}

impl Transport {
    /// Phoenix's name for it, as an Elixir atom is printed (`":websocket"`, `":longpoll"`).
    pub fn as_atom(self) -> &'static str {
        match self {
            Self::WebSocket => ":websocket",
            Self::LongPoll => ":longpoll",
            Self::Test => ":channel_test",
        }
    }
}

/// What the connect hook may look at besides params: Phoenix's `connect_info` (§1.2).
///
/// ```
/// use phx_server::{Connect, ConnectInfo, Connected, Params, Refusal, Transport};
/// use std::net::IpAddr;
///
/// /// Who is on the other end, for the channels' logs and limits.
/// struct Client {
///     ip: Option<IpAddr>,
///     user_agent: String,
///     polling: bool,
/// }
///
/// struct ClientSocket;
///
/// impl Connect for ClientSocket {
///     type Assigns = Client;
///
///     async fn connect(&self, _: &Params, info: &ConnectInfo) -> Result<Connected<Client>, Refusal> {
///         let user_agent = info.headers.get("user-agent").and_then(|v| v.to_str().ok());
///         Ok(Connected::new(Client {
///             ip: info.peer_addr.map(|addr| addr.ip()),
///             user_agent: user_agent.unwrap_or_default().to_owned(),
///             polling: info.transport == Transport::LongPoll,
///         }))
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct ConnectInfo {
    /// The peer's address.
    pub peer_addr: Option<SocketAddr>,
    /// The request URI (path and query).
    pub uri: Uri,
    /// All request headers (`x-*`, `user-agent`, `sec-websocket-*`, cookies…).
    pub headers: HeaderMap,
    /// The token phoenix.js passed as `authToken` (§1.6), decoded.
    pub auth_token: Option<String>,
    /// The transport asking.
    pub transport: Transport,
}

/// An accepted connection: its assigns and optional socket id (docs/protocol.md §1.7).
///
/// ```
/// use phx_server::Connected;
/// struct User { id: u64 }
/// let connected = Connected::new(User { id: 42 }).with_id("user_socket:42");
/// assert_eq!(connected.id.as_deref(), Some("user_socket:42"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Connected<A> {
    /// What every channel of the socket reads with
    /// [`ChannelContext::assigns`](crate::ChannelContext::assigns) (Phoenix's
    /// `socket.assigns`, typed).
    pub assigns: A,
    /// Socket id such as `user_socket:42`: [`Endpoint::disconnect`](crate::Endpoint::disconnect) on it closes every
    /// socket with that id (Phoenix's `id/1`).
    pub id: Option<String>,
}

impl<A> Connected<A> {
    /// Accepts with these assigns and no socket id.
    pub fn new(assigns: A) -> Self {
        Self { assigns, id: None }
    }

    /// Gives the socket an id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// A refused connection. WebSocket answers the upgrade with `status` (403 by default);
/// long poll answers `{"status":403}` whatever the status (§1.4).
///
/// ```
/// use phx_server::hyper::StatusCode;
/// use phx_server::Refusal;
///
/// assert_eq!(Refusal::forbidden().status, 403);
/// // Phoenix's `error_handler` mapping a reason to a status:
/// let busy = Refusal::with_status(StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(busy.status, 429);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status for the WebSocket upgrade.
    pub status: StatusCode,
}

impl Refusal {
    /// Plain refusal: HTTP 403.
    pub fn forbidden() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
        }
    }
    /// Refusal mapped to another status (Phoenix's `error_handler`), e.g. 429.
    pub fn with_status(status: StatusCode) -> Self {
        Self { status }
    }
}

/// The app's connect hook (Phoenix's `connect/3` + `id/1` of a `UserSocket`).
///
/// `Assigns` is what a connection carries into every channel; channels of this socket
/// declare the same type (`type Assigns`), and the compiler checks they agree.
///
/// ```
/// use phx_server::{Connect, ConnectInfo, Connected, Params, Refusal};
///
/// struct UserSocket;
///
/// impl Connect for UserSocket {
///     type Assigns = String; // the user's name
///
///     async fn connect(&self, params: &Params, _info: &ConnectInfo) -> Result<Connected<String>, Refusal> {
///         match params.get_str("user") {
///             Some(name) if !name.is_empty() => {
///                 Ok(Connected::new(name.to_owned()).with_id(format!("user_socket:{name}")))
///             }
///             _ => Err(Refusal::forbidden()),
///         }
///     }
/// }
/// ```
pub trait Connect: Send + Sync + 'static {
    /// The socket's assigns (use `()` for none).
    type Assigns: Send + Sync + 'static;

    /// Accepts (with assigns and an optional id) or refuses a connection.
    fn connect(
        &self,
        params: &Params,
        info: &ConnectInfo,
    ) -> impl Future<Output = Result<Connected<Self::Assigns>, Refusal>> + Send;
}

/// Accepts every connection with no assigns (`()`) and no id: a socket that needs no
/// authentication, or a start before writing a [`Connect`] hook.
///
/// ```
/// # use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
/// # #[derive(Default)]
/// # struct Lobby;
/// # impl Channel for Lobby {
/// #     type Assigns = (); // what AcceptAll assigns
/// #     type Info = ();
/// #     async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> JoinResult {
/// #         Ok(Payload::empty_object())
/// #     }
/// #     async fn handle_in(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> HandleResult {
/// #         HandleResult::noreply()
/// #     }
/// # }
/// use phx_server::{AcceptAll, SocketConfig};
/// // Channels of this socket declare `type Assigns = ();`.
/// let socket = SocketConfig::new(AcceptAll).channel("lobby", Lobby::default);
/// # let _ = socket;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Connect for AcceptAll {
    type Assigns = ();

    async fn connect(&self, _: &Params, _: &ConnectInfo) -> Result<Connected<()>, Refusal> {
        Ok(Connected::default())
    }
}
