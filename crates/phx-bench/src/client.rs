//! A Phoenix-protocol client for load: V2 JSON frames over fastwebsockets, one task per
//! connection (reads and writes from the same task, never raced in a `select!`).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

struct Executor;

impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for Executor {
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// One client connection.
pub struct Conn {
    ws: WebSocket<TokioIo<Upgraded>>,
    next_ref: u64,
}

/// Connections per loopback source address: well under the ~28 000 ephemeral ports, and
/// within the servers' default per-address connection cap
/// (`phx_server::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS`, 1 000).
const PER_ADDRESS: usize = 1_000;
static FIRST_ADDRESS: AtomicUsize = AtomicUsize::new(1);

/// Starts a new wave of connections on source addresses no earlier wave used: ports of
/// closed client sockets sit in TIME_WAIT for a minute, so reusing an address would run
/// out of ephemeral ports (or slow every connect down searching for one).
pub fn new_wave(connections: usize) {
    FIRST_ADDRESS.fetch_add(connections.div_ceil(PER_ADDRESS), Ordering::Relaxed);
}

/// Starts this process's connections at source address number `first` (load generators
/// split over several processes give each its own range, so their ephemeral ports never
/// collide).
pub fn set_first_address(first: usize) {
    FIRST_ADDRESS.store(first, Ordering::Relaxed);
}

/// Source addresses 127.0.x.y (x.y from the current wave on) so N is not capped by one
/// address's ephemeral ports.
pub fn source_for(i: usize) -> IpAddr {
    let n = (FIRST_ADDRESS.load(Ordering::Relaxed) + i / PER_ADDRESS) % 65_000 + 1;
    IpAddr::from([127, 0, (n / 250) as u8, (n % 250 + 1) as u8])
}

/// Nanoseconds since the UNIX epoch (the clock latency samples compare against).
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Conn {
    /// Connects from `source` to `server` and upgrades `path_and_query`.
    pub async fn connect(
        server: SocketAddr,
        source: IpAddr,
        path_and_query: &str,
    ) -> anyhow::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::new(source, 0))
            .with_context(|| format!("binding {source}"))?;
        let stream = socket.connect(server).await.context("connect")?;
        stream.set_nodelay(true)?;
        let req = Request::builder()
            .uri(format!("http://{server}{path_and_query}"))
            .header("Host", server.to_string())
            .header("Upgrade", "websocket")
            .header("Connection", "upgrade")
            .header(
                "Sec-WebSocket-Key",
                fastwebsockets::handshake::generate_key(),
            )
            .header("Sec-WebSocket-Version", "13")
            .body(Empty::<Bytes>::new())?;
        let (ws, _) = fastwebsockets::handshake::client(&Executor, req, stream)
            .await
            .context("handshake")?;
        Ok(Self { ws, next_ref: 1 })
    }

    fn take_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// Sends `[join_ref, ref, topic, event, payload]`; returns the ref.
    pub async fn send(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: &serde_json::Value,
    ) -> anyhow::Result<String> {
        let r = self.take_ref();
        // A join's join_ref is its own ref (as phoenix.js sends it).
        let join_ref = if event == "phx_join" {
            Some(r.as_str())
        } else {
            join_ref
        };
        let frame = serde_json::json!([join_ref, r, topic, event, payload]);
        self.ws
            .write_frame(Frame::text(Payload::Owned(frame.to_string().into_bytes())))
            .await?;
        Ok(r)
    }

    /// Next text frame (pings/pongs skipped); `None` when the connection ended. The
    /// payload is split off the read buffer, not copied.
    pub async fn next_text(&mut self) -> anyhow::Result<Option<BytesMut>> {
        loop {
            let Ok(frame) = self.ws.read_frame().await else {
                return Ok(None);
            };
            match frame.opcode {
                OpCode::Text | OpCode::Binary => {
                    return Ok(Some(match frame.payload {
                        Payload::Bytes(b) => b,
                        other => BytesMut::from(&other[..]),
                    }))
                }
                OpCode::Close => return Ok(None),
                _ => {}
            }
        }
    }

    /// Joins and waits for the reply (frames before it are passed to `other`).
    pub async fn join(
        &mut self,
        topic: &str,
        payload: serde_json::Value,
        mut other: impl FnMut(&[u8]),
    ) -> anyhow::Result<String> {
        let r = self.send(None, topic, "phx_join", &payload).await?;
        let needle = format!(",\"{r}\",");
        loop {
            let Some(text) = self.next_text().await? else {
                bail!("closed while joining {topic}")
            };
            let is_reply = text.windows(needle.len()).any(|w| w == needle.as_bytes())
                && text.windows(11).any(|w| w == b"\"phx_reply\"");
            if is_reply {
                if !text.windows(6).any(|w| w == b"\"ok\"}]") {
                    bail!("join {topic} refused: {}", String::from_utf8_lossy(&text));
                }
                return Ok(r);
            }
            other(&text);
        }
    }
}

/// The read half of a split [`Conn`].
pub type ReadHalf = fastwebsockets::WebSocketRead<tokio::io::ReadHalf<TokioIo<Upgraded>>>;
/// The write half of a split [`Conn`] (frames are masked, as a client's must be).
pub type WriteHalf = fastwebsockets::WebSocketWrite<tokio::io::WriteHalf<TokioIo<Upgraded>>>;

impl Conn {
    /// Splits the connection so one task can send on a schedule while another reads:
    /// a read cancelled by a timer could lose a partly read frame, a split cannot.
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        self.ws.split(tokio::io::split)
    }
}

/// Extracts the number in `"t":"<digits>"` from a frame without parsing all of it.
pub fn send_time(text: &[u8]) -> Option<u64> {
    let at = text.windows(5).position(|w| w == b"\"t\":\"")?;
    let digits = &text[at + 5..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn send_time_is_found_in_a_frame() {
        let frame = br#"[null,null,"custom:fanout","bench",{"seq":3,"t":"1732400000123"}]"#;
        assert_eq!(super::send_time(frame), Some(1_732_400_000_123));
        assert_eq!(super::send_time(b"[]"), None);
    }
}
