//! Request bodies the server reads itself (a long-poll POST, a server API call) must
//! arrive whole within the endpoint's body timeout: a client that announces a body and
//! then stalls gets 408 and loses the connection, instead of holding it (and its slot in
//! the connection caps) for as long as it likes.

use std::time::{Duration, Instant};

use phx_server::{
    AcceptAll, Channel, ChannelContext, Endpoint, HandleResult, JoinResult, Payload, ServerApi,
    SocketConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_millis(400);

struct Room;

impl Channel for Room {
    type Assigns = ();
    type Info = ();

    async fn join(
        &mut self,
        _t: &str,
        _p: Payload,
        _c: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        Ok(Payload::empty_object())
    }

    async fn handle_in(
        &mut self,
        _e: &str,
        _p: Payload,
        _c: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::noreply()
    }
}

async fn start() -> u16 {
    let endpoint = Endpoint::builder()
        .server_api(ServerApi::new("key"))
        .body_timeout(TIMEOUT)
        .socket(
            "/socket",
            SocketConfig::new(AcceptAll).channel("room:*", || Room),
        )
        .build();
    let listener = phx_server::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { endpoint.serve(listener).await });
    port
}

/// Sends `head` and the first bytes of a body it announced as longer; returns the status
/// line the server answers with, how long that took, and whether it then closed.
async fn stall(port: u16, head: &str) -> (String, Duration, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"topic\":").await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    // Everything the server sends until it closes (bounded: a server that never closes
    // fails here, not by hanging the suite).
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or("").to_owned();
    (status, started.elapsed(), read.is_ok())
}

#[tokio::test]
async fn a_stalled_server_api_body_is_408_and_the_connection_closes() {
    let port = start().await;
    let head = "POST /api/broadcast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer key\r\n\
                Content-Type: application/json\r\nContent-Length: 200\r\n\r\n";
    let (status, took, closed) = stall(port, head).await;
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    assert!(closed, "the connection stayed open after the 408");
    assert!(took >= TIMEOUT, "answered before the timeout: {took:?}");
}

#[tokio::test]
async fn a_stalled_longpoll_post_is_408_and_the_connection_closes() {
    let port = start().await;
    // A session first: its token is what a POST needs.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(
            b"GET /socket/longpoll?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let token = serde_json::from_str::<serde_json::Value>(body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let head = format!(
        "POST /socket/longpoll?vsn=2.0.0&token={token} HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    );
    let (status, took, closed) = stall(port, &head).await;
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    assert!(closed, "the connection stayed open after the 408");
    assert!(took >= TIMEOUT, "answered before the timeout: {took:?}");
}
