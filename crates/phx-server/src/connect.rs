//! The connect hook (§1.4): the app decides whether a transport may open a socket.

use std::net::SocketAddr;

use async_trait::async_trait;
use hyper::{HeaderMap, StatusCode, Uri};
use serde_json::{Map, Value};

use crate::params::Params;

/// Socket-level assigns, set at connect and read by every channel of the socket.
pub type Assigns = Map<String, Value>;

/// Which transport a socket runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `<mount>/websocket`.
    WebSocket,
    /// `<mount>/longpoll`.
    LongPoll,
}

impl Transport {
    /// Phoenix's name for it, as an Elixir atom is printed (`":websocket"`, `":longpoll"`).
    pub fn as_atom(self) -> &'static str {
        match self {
            Self::WebSocket => ":websocket",
            Self::LongPoll => ":longpoll",
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

/// An accepted connection: its assigns and optional socket id (§1.7).
#[derive(Clone, Debug, Default)]
pub struct Connected {
    /// Assigns every channel of the socket can read.
    pub assigns: Assigns,
    /// Socket id such as `users_socket:42`: broadcasting `disconnect` on it closes
    /// every socket with that id.
    pub id: Option<String>,
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

/// The app's connect hook (Phoenix's `connect/3` + `id/1`).
///
/// ```
/// use phx_server::{Connect, ConnectInfo, Connected, Params, Refusal};
/// struct Anyone;
/// #[async_trait::async_trait]
/// impl Connect for Anyone {
///     async fn connect(&self, params: &Params, _info: &ConnectInfo) -> Result<Connected, Refusal> {
///         if params.get_str("reject") == Some("true") {
///             return Err(Refusal::forbidden());
///         }
///         Ok(Connected::default())
///     }
/// }
/// ```
#[async_trait]
pub trait Connect: Send + Sync + 'static {
    /// Accept (with assigns and an optional id) or refuse.
    async fn connect(&self, params: &Params, info: &ConnectInfo) -> Result<Connected, Refusal>;
}

/// Accepts every connection with empty assigns and no id.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

#[async_trait]
impl Connect for AcceptAll {
    async fn connect(&self, _: &Params, _: &ConnectInfo) -> Result<Connected, Refusal> {
        Ok(Connected::default())
    }
}
