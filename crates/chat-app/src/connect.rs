//! The chat socket's connect hook (docs/protocol.md §1.4): everyone may connect (names
//! are chosen per join), and the peer's address goes into the socket assigns, where the
//! room channel finds it to limit room creation per client.

use std::net::IpAddr;

use phx_server::{Connect, ConnectInfo, Connected, Params, Refusal};

/// What a chat connection carries into every channel of its socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatClient {
    /// The peer's IP address, IPv4-mapped addresses as IPv4; `None` when the transport
    /// has no TCP peer (in-process tests).
    pub peer: Option<IpAddr>,
    /// The signed-in user (a valid session token), `None` for a guest.
    pub user: Option<crate::accounts::session::SessionUser>,
    /// A random id per connection: a guest's presence key.
    pub guest_id: String,
}

impl ChatClient {
    /// A client at `peer`, a guest with a fresh guest id.
    pub fn guest(peer: Option<IpAddr>) -> Self {
        use rand::Rng;
        let id: u64 = rand::thread_rng().gen();
        Self {
            peer,
            user: None,
            guest_id: format!("{id:016x}"),
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
        _params: &Params,
        info: &ConnectInfo,
    ) -> Result<Connected<ChatClient>, Refusal> {
        Ok(Connected::new(ChatClient::guest(
            info.peer_addr.map(|addr| addr.ip().to_canonical()),
        )))
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

    #[tokio::test]
    async fn no_peer_address_means_no_peer() {
        let client = connect(None).await;
        assert_eq!(client.peer, None);
        assert_eq!(client.user, None);
    }
}
