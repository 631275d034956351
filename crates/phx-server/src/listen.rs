//! The listening socket, with a backlog sized for a server that faces the internet.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// How many connections the kernel keeps waiting for [`Endpoint::serve`] to accept:
/// 1024, the default of Phoenix's HTTP servers (Bandit's `backlog`, ranch's for
/// Cowboy). The kernel caps it at `net.core.somaxconn` (4096 on current Linux).
///
/// `tokio::net::TcpListener::bind` listens with a backlog of 128. A burst of a few
/// hundred connections at once (every client reconnecting after a deploy, or an attack)
/// then overflows the queue: Linux drops the handshakes it has no room for and the
/// clients retry them 1, 3, 7 … seconds later, so connections the server would serve in
/// milliseconds wait seconds, and a TLS handshake timeout starts only when they are
/// finally accepted.
///
/// [`Endpoint::serve`]: crate::Endpoint::serve
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;

/// Binds `addr` (with `SO_REUSEADDR`, so a restarted server can listen again at once
/// while the old one's connections linger in `TIME_WAIT`) and listens with a backlog of
/// [`DEFAULT_LISTEN_BACKLOG`]: the listener to hand to [`Endpoint::serve`].
///
/// ```no_run
/// # async fn run(endpoint: phx_server::Endpoint) -> std::io::Result<()> {
/// let listener = phx_server::listen("0.0.0.0:4000".parse().unwrap())?;
/// endpoint.serve(listener).await
/// # }
/// ```
///
/// Must be called within a tokio runtime (the listener registers with its reactor).
///
/// [`Endpoint::serve`]: crate::Endpoint::serve
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    listen_with_backlog(addr, DEFAULT_LISTEN_BACKLOG)
}

/// [`listen`] with another backlog (the kernel caps it at `net.core.somaxconn`).
pub fn listen_with_backlog(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst larger than tokio's default backlog of 128 is queued whole by the kernel
    /// while nothing accepts: every connect completes, and all are accepted afterwards.
    /// (With a backlog of 128 the kernel drops the SYNs it has no room for, and those
    /// connects stay pending for as long as nothing accepts.)
    #[tokio::test]
    async fn a_burst_beyond_128_waits_in_the_queue_instead_of_being_dropped() {
        use std::time::Duration;
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..400)
            .map(|_| {
                tokio::spawn(tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::net::TcpStream::connect(addr),
                ))
            })
            .collect();
        let mut streams = Vec::new();
        for client in clients {
            match client.await.unwrap() {
                Ok(stream) => streams.push(stream.unwrap()),
                Err(_) => panic!("a connect got no room in the queue (backlog too small)"),
            }
        }
        let mut accepted = 0;
        while accepted < streams.len() {
            match tokio::time::timeout(Duration::from_secs(5), listener.accept()).await {
                Ok(Ok(_)) => accepted += 1,
                Ok(Err(e)) => panic!("accept failed: {e}"),
                Err(_) => break,
            }
        }
        assert_eq!(accepted, streams.len(), "connections lost from the queue");
    }

    #[tokio::test]
    async fn listens_on_ipv6_too_where_the_host_has_it() {
        match listen("[::1]:0".parse().unwrap()) {
            Ok(listener) => assert!(listener.local_addr().unwrap().is_ipv6()),
            // A host without IPv6 refuses the bind; nothing to check there.
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::AddrNotAvailable, "{e}"),
        }
    }
}
