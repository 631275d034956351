//! The chat socket's connect hooks (docs/protocol.md §1.4): everyone may connect (names
//! are chosen per join), and the peer's address goes into the socket assigns, where the
//! room channel finds it to limit room creation per client. With accounts,
//! [`SessionConnect`] also signs in the holder of a valid session token.

use std::net::IpAddr;

use phx_server::{Connect, ConnectInfo, Connected, Params, Refusal};

use crate::accounts::session::{SessionUser, Sessions};

/// What a chat connection carries into every channel of its socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatClient {
    /// The peer's IP address, IPv4-mapped addresses as IPv4; `None` when the transport
    /// has no TCP peer (in-process tests).
    pub peer: Option<IpAddr>,
    /// The signed-in user (a valid session token), `None` for a guest.
    pub user: Option<SessionUser>,
    /// A guest's id (presence key `guest:<id>`, author `guest:<id>`): derived from the
    /// `guest_key` connect param, or random per connection without a valid one.
    pub guest_id: String,
    /// Whether `guest_id` comes from a `guest_key` (stable across connections).
    pub keyed: bool,
}

/// Shortest and longest `guest_key` (docs/chat.md, "Identity").
pub const GUEST_KEY_MIN: usize = 32;
/// See [`GUEST_KEY_MIN`].
pub const GUEST_KEY_MAX: usize = 128;

/// The guest id of a `guest_key`: the first 32 hex digits of its SHA-256, if the key is
/// 32–128 characters of `[A-Za-z0-9_-]`. The server never stores the key; the id is
/// stable for the key (across reconnects and restarts) and cannot be turned back into
/// it, so knowing a guest's id (it is in presence) does not let anyone act as them.
pub fn guest_id_of(key: &str) -> Option<String> {
    use sha2::{Digest, Sha256};
    let valid = (GUEST_KEY_MIN..=GUEST_KEY_MAX).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !valid {
        return None;
    }
    let digest = Sha256::digest(key.as_bytes());
    Some(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
}

impl ChatClient {
    /// A client at `peer`, a guest with a fresh random guest id.
    pub fn guest(peer: Option<IpAddr>) -> Self {
        use rand::Rng;
        let id: u128 = rand::thread_rng().gen();
        Self {
            peer,
            user: None,
            guest_id: format!("{id:032x}"),
            keyed: false,
        }
    }

    /// A guest whose id comes from `guest_key` when it is valid ([`guest_id_of`]), else
    /// random.
    pub fn guest_with_key(peer: Option<IpAddr>, guest_key: Option<&str>) -> Self {
        let mut client = Self::guest(peer);
        if let Some(id) = guest_key.and_then(guest_id_of) {
            client.guest_id = id;
            client.keyed = true;
        }
        client
    }

    /// The author key of what this client writes: `user:<id>` or `guest:<guest id>`.
    pub fn author(&self) -> String {
        match &self.user {
            Some(user) => format!("user:{}", user.id),
            None => format!("guest:{}", self.guest_id),
        }
    }
}

/// Accepts every connection and records the peer's address.
///
/// The address is the TCP peer's. Behind a reverse proxy that is the proxy, so every
/// client shares one room-creation budget; `X-Forwarded-For` is not trusted because any
/// client can send it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChatConnect;

impl Connect for ChatConnect {
    type Assigns = ChatClient;

    async fn connect(
        &self,
        params: &Params,
        info: &ConnectInfo,
    ) -> Result<Connected<ChatClient>, Refusal> {
        Ok(Connected::new(ChatClient::guest_with_key(
            info.peer_addr.map(|addr| addr.ip().to_canonical()),
            params.get_str("guest_key"),
        )))
    }
}

/// The chat socket's connect hook with accounts: a valid `token` param signs the user
/// in (socket id `user_socket:<id>`); no token is a guest; a token that is tampered
/// with, expired or logged out is refused (403), and the page drops it; while the account
/// store is down a token is refused with 503 and kept.
#[derive(Clone)]
pub struct SessionConnect {
    sessions: Sessions,
}

impl SessionConnect {
    /// Checks tokens with `sessions`.
    pub fn new(sessions: Sessions) -> Self {
        Self { sessions }
    }
}

impl Connect for SessionConnect {
    type Assigns = ChatClient;

    async fn connect(
        &self,
        params: &Params,
        info: &ConnectInfo,
    ) -> Result<Connected<Self::Assigns>, Refusal> {
        let mut client = ChatClient::guest_with_key(
            info.peer_addr.map(|a| a.ip().to_canonical()),
            params.get_str("guest_key"),
        );
        let Some(token) = params.get_str("token") else {
            return Ok(Connected::new(client));
        };
        let user = match self.sessions.check(Some(token)).await {
            Ok(Some(user)) => user,
            Ok(None) => return Err(Refusal::forbidden()),
            // A database outage is not a bad token: 503, so the page keeps the session and
            // phoenix.js retries (long poll reports every refusal as 403, as in Phoenix).
            Err(_) => return Err(Refusal::with_status(hyper::StatusCode::SERVICE_UNAVAILABLE)),
        };
        let id = format!("user_socket:{}", user.id);
        client.user = Some(user);
        Ok(Connected::new(client).with_id(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phx_server::Transport;

    fn info(peer: Option<&str>) -> ConnectInfo {
        ConnectInfo {
            peer_addr: peer.map(|p| p.parse().unwrap()),
            uri: "/socket/websocket?vsn=2.0.0".parse().unwrap(),
            headers: Default::default(),
            auth_token: None,
            transport: Transport::WebSocket,
        }
    }

    async fn connect(peer_addr: Option<&str>) -> ChatClient {
        let params = Params::default();
        ChatConnect
            .connect(&params, &info(peer_addr))
            .await
            .unwrap()
            .assigns
    }

    #[tokio::test]
    async fn the_peer_ip_is_in_the_assigns() {
        let client = connect(Some("192.0.2.7:50123")).await;
        assert_eq!(client.peer, "192.0.2.7".parse().ok());

        let client = connect(Some("[2001:db8::1]:4000")).await;
        assert_eq!(client.peer, "2001:db8::1".parse().ok());

        // An IPv4 client on a dual-stack listener is recorded as IPv4.
        let client = connect(Some("[::ffff:192.0.2.7]:4000")).await;
        assert_eq!(client.peer, "192.0.2.7".parse().ok());
    }

    #[test]
    fn guest_ids_are_the_first_32_hex_digits_of_the_keys_sha256() {
        let key = "a".repeat(32);
        // printf %s aaaa…(32) | sha256sum
        assert_eq!(
            guest_id_of(&key).as_deref(),
            Some("3ba3f5f43b92602683c19aee62a20342")
        );
        assert_eq!(guest_id_of(&key), guest_id_of(&key), "stable");
        assert_ne!(guest_id_of(&key), guest_id_of(&"b".repeat(32)));
        assert!(guest_id_of(&"a".repeat(128)).is_some());
        assert!(guest_id_of("A-z_09".repeat(6).as_str()).is_some());
        for bad in [
            "a".repeat(31),
            "a".repeat(129),
            format!("{}!", "a".repeat(40)),
            format!("{} ", "a".repeat(40)),
        ] {
            assert_eq!(guest_id_of(&bad), None, "{bad:?}");
        }
        let random = ChatClient::guest_with_key(None, Some("short"));
        assert_eq!(random.guest_id.len(), 32);
        assert_ne!(
            random.guest_id,
            ChatClient::guest_with_key(None, Some("short")).guest_id
        );
        assert!(!random.keyed);
        let keyed = ChatClient::guest_with_key(None, Some(&key));
        assert_eq!(keyed.author(), "guest:3ba3f5f43b92602683c19aee62a20342");
        assert!(keyed.keyed);
    }

    #[tokio::test]
    async fn no_peer_address_means_no_peer() {
        let client = connect(None).await;
        assert_eq!(client.peer, None);
        assert_eq!(client.user, None);
    }
}
