//! TCP connections are capped in all and per client address, and a connection past a cap
//! is refused at accept (HTTP 503 or 429 with Retry-After, then a close) before anything
//! is allocated for it; an upgraded WebSocket keeps its connection's slot until it ends.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use phx_server::{AcceptAll, Endpoint, SocketConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod support;
use support::wait_until;
use support::ws::{connect, heartbeat};

async fn start(total: usize, per_address: usize) -> (Endpoint, u16) {
    let endpoint = Endpoint::builder()
        .max_connections(total)
        .max_connections_per_address(per_address)
        .health(true)
        .socket("/socket", SocketConfig::new(AcceptAll))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = endpoint.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (endpoint, port)
}

/// A connection from `source` (a 127.x.y.z address) that sends nothing.
async fn open_from(source: [u8; 4], port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(source)), 0))
        .unwrap();
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// Sends a request and reads the answer's head, or `None` when the server closed
/// without one.
async fn answer(stream: &mut TcpStream) -> Option<String> {
    let _ = stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                head.extend_from_slice(&buf[..n]);
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => panic!("no answer within 20 s"),
        }
    }
    (!head.is_empty()).then(|| String::from_utf8_lossy(&head).to_lowercase())
}

#[tokio::test]
async fn past_the_total_cap_a_connection_gets_503_until_one_closes() {
    let (endpoint, port) = start(10, 1000).await;
    // Idle connections (a slowloris sends nothing) hold their slots.
    let mut held = Vec::new();
    for i in 0..10u8 {
        held.push(open_from([127, 0, 1, i + 1], port).await);
    }
    assert!(wait_until(|| endpoint.connection_count() == 10).await);
    let mut refused = open_from([127, 0, 2, 1], port).await;
    let head = answer(&mut refused).await.expect("an answer");
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("retry-after: 5"), "{head}");
    assert_eq!(
        endpoint.connection_count(),
        10,
        "the refused one holds nothing"
    );

    held.pop();
    assert!(wait_until(|| endpoint.connection_count() == 9).await);
    let mut admitted = open_from([127, 0, 2, 1], port).await;
    let head = answer(&mut admitted).await.expect("an answer");
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[tokio::test]
async fn past_the_address_cap_that_address_gets_429_and_others_connect() {
    let (endpoint, port) = start(1000, 5).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(open_from([127, 0, 3, 1], port).await);
    }
    assert!(wait_until(|| endpoint.connection_count() == 5).await);
    let mut refused = open_from([127, 0, 3, 1], port).await;
    let head = answer(&mut refused).await.expect("an answer");
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("retry-after: 5"), "{head}");
    // Another address is not affected, WebSocket included.
    let mut other = open_from([127, 0, 3, 2], port).await;
    let head = answer(&mut other).await.expect("an answer");
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[tokio::test]
async fn an_upgraded_websocket_keeps_its_slot_until_it_closes() {
    let (endpoint, port) = start(3, 1000).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
        heartbeat(&mut ws, "1").await;
        sockets.push(ws);
    }
    // The HTTP connections that carried the upgrades are done; the sockets are not.
    assert_eq!(endpoint.connection_count(), 3);
    let mut refused = open_from([127, 0, 0, 1], port).await;
    let head = answer(&mut refused).await.expect("an answer");
    assert!(head.starts_with("http/1.1 503"), "{head}");
    drop(sockets.pop());
    assert!(wait_until(|| endpoint.connection_count() == 2).await);
    let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
    heartbeat(&mut ws, "2").await;
}
