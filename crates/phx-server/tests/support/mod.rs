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
