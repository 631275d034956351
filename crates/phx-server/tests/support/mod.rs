//! Shared by the integration tests: a live endpoint on a free loopback port.

use phx_server::{Endpoint, SocketConfig};

pub mod ws;

/// Serves one socket at `/socket` on 127.0.0.1:<free port>.
#[allow(dead_code)] // not every test file starts its endpoint this way
pub async fn start<A: Send + Sync + 'static>(
    config: impl Fn() -> SocketConfig<A>,
) -> (Endpoint, u16) {
    let endpoint = Endpoint::builder().socket("/socket", config()).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = endpoint.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (endpoint, port)
}

/// What the kernel holds for the loopback TCP connections of the server on `port` (from
/// `/proc/self/net/tcp`: the test process holds both ends).
#[allow(dead_code)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelQueues {
    /// Established connections on the server's side.
    pub connections: usize,
    /// Bytes the server wrote that the client has not acknowledged yet (the server's
    /// send queues).
    pub server_send: u64,
    /// Bytes that arrived for the server that it has not read yet.
    pub server_unread: u64,
    /// Bytes that arrived for the clients that they have not read yet.
    pub client_unread: u64,
}

/// See [`KernelQueues`].
#[allow(dead_code)]
pub fn kernel_queues(port: u16) -> KernelQueues {
    let table = std::fs::read_to_string("/proc/self/net/tcp").expect("/proc/self/net/tcp");
    let mut queues = KernelQueues::default();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state), Some(tx_rx)) =
            (fields.get(1), fields.get(2), fields.get(3), fields.get(4))
        else {
            continue;
        };
        if *state != "01" {
            continue; // established only
        }
        let port_of = |addr: &str| {
            addr.rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
        };
        let Some((tx, rx)) = tx_rx.split_once(':') else {
            continue;
        };
        let tx = u64::from_str_radix(tx, 16).unwrap_or(0);
        let rx = u64::from_str_radix(rx, 16).unwrap_or(0);
        if port_of(local) == Some(port) {
            queues.connections += 1;
            queues.server_send += tx;
            queues.server_unread += rx;
        } else if port_of(remote) == Some(port) {
            queues.client_unread += rx;
        }
    }
    queues
}

/// Waits (up to 30 s) until `done` holds, checking every 20 ms; false on timeout.
#[allow(dead_code)]
pub async fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    done()
}
