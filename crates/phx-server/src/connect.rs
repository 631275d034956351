//! The connect hook (§1.4): the app decides whether a transport may open a socket.

use std::net::SocketAddr;

use std::future::Future;

use hyper::{HeaderMap, StatusCode, Uri};

use crate::params::Params;

/// Which transport a socket runs over.
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
    /// Socket id such as `user_socket:42`: `Endpoint::disconnect` on it closes every
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

/// Accepts every connection with no assigns (`()`) and no id.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Connect for AcceptAll {
    type Assigns = ();

    async fn connect(&self, _: &Params, _: &ConnectInfo) -> Result<Connected<()>, Refusal> {
        Ok(Connected::default())
    }
}
