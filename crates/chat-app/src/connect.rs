//! The chat socket's connect hook (docs/protocol.md §1.4): everyone may connect (names
//! are chosen per join), and the peer's address goes into the socket assigns, where the
//! room channel finds it to limit room creation per client.

use std::net::IpAddr;

use async_trait::async_trait;
use phx_server::{Assigns, Connect, ConnectInfo, Connected, Params, Refusal};
use serde_json::Value;

/// Assigns key of the peer's IP address (a string such as `"127.0.0.1"`).
pub const PEER: &str = "peer";

/// Accepts every connection and records `assigns["peer"]`.
///
/// The address is the TCP peer's. Behind a reverse proxy that is the proxy, so every
/// client shares one room-creation budget; `X-Forwarded-For` is not trusted because any
/// client can send it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChatConnect;

#[async_trait]
impl Connect for ChatConnect {
    async fn connect(&self, _params: &Params, info: &ConnectInfo) -> Result<Connected, Refusal> {
        let mut assigns = Assigns::new();
        if let Some(addr) = info.peer_addr {
            assigns.insert(
                PEER.into(),
                Value::String(addr.ip().to_canonical().to_string()),
            );
        }
        Ok(Connected { assigns, id: None })
    }
}

/// The peer address [`ChatConnect`] recorded, if any.
pub fn peer(assigns: &Assigns) -> Option<IpAddr> {
    assigns.get(PEER)?.as_str()?.parse().ok()
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

    async fn connect(peer_addr: Option<&str>) -> Assigns {
        let params = Params::default();
        ChatConnect
            .connect(&params, &info(peer_addr))
            .await
            .unwrap()
            .assigns
    }

    #[tokio::test]
    async fn the_peer_ip_is_in_the_assigns() {
        let assigns = connect(Some("192.0.2.7:50123")).await;
        assert_eq!(assigns.get(PEER), Some(&Value::String("192.0.2.7".into())));
        assert_eq!(peer(&assigns), "192.0.2.7".parse().ok());

        let assigns = connect(Some("[2001:db8::1]:4000")).await;
        assert_eq!(peer(&assigns), "2001:db8::1".parse().ok());

        // An IPv4 client on a dual-stack listener is recorded as IPv4.
        let assigns = connect(Some("[::ffff:192.0.2.7]:4000")).await;
        assert_eq!(peer(&assigns), "192.0.2.7".parse().ok());
    }

    #[tokio::test]
    async fn no_peer_address_means_no_peer_assign() {
        let assigns = connect(None).await;
        assert!(assigns.is_empty());
        assert_eq!(peer(&assigns), None);
    }
}
