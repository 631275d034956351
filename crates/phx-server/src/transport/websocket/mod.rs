//! The WebSocket transport (`<mount>/websocket`) on hyper + fastwebsockets.
//!
//! fastwebsockets performs the upgrade. Per connection, one socket task reads frames
//! with our own [`frame::FrameReader`] (cancel safe, and holding no buffer while the
//! socket is idle) and runs the [`Socket`](crate::socket::Socket); one writer task
//! drains the bounded write queue. Server frames are unmasked, so a complete frame is
//! encoded once into `Bytes` and shared by every subscriber of a broadcast (see
//! [`crate::outbox`]).

mod frame;
pub(crate) mod shed;

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use bytes::{Bytes, BytesMut};
use fastwebsockets::OpCode;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use frame::{ClientFrame, FrameReader, ReadError};

use crate::address_limit::HeldConnection;
use crate::config::SocketOptions;
use crate::connect::Transport;
use crate::http::{status_response, Body};
use crate::outbox::websocket::{Stop, CLOSE_ABORT};
use crate::outbox::CLOSE_SLOW_READER;
use crate::outbox::{close_payload, ws_frame, Outbox, WsOut, WsQueue};
use crate::params::Params;
use crate::socket::{Driver, Flow};
use crate::telemetry::CloseReason;
use crate::transport::{authorize, Authorized, Services};

const BEARER_PREFIX: &str = "base64url.bearer.phx.";

/// Close codes (§3.7).
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_INVALID_UTF8: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_INTERNAL: u16 = 1011;
const CLOSE_RESTART: u16 = 1012;

/// How long a closing connection waits for the client's close frame.
const LINGER: Duration = Duration::from_secs(2);

/// Answers `GET <mount>/websocket`: checks, connect, upgrade (§1).
pub(crate) async fn handle(
    services: &Arc<Services>,
    config: &Arc<SocketOptions>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    if req.method() != Method::GET {
        return status_response(StatusCode::BAD_REQUEST, "");
    }
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return status_response(
            StatusCode::BAD_REQUEST,
            "'connection' header must contain 'upgrade'",
        );
    }
    let params = match Params::from_query(req.uri().query().unwrap_or("")) {
        Ok(params) => params,
        Err(error) => return super::params_refused(&error),
    };
    let Ok(subprotocols) = negotiate_subprotocols(config, &req) else {
        return status_response(StatusCode::FORBIDDEN, "");
    };
    let (head, body) = req.into_parts();
    let accepted = authorize(
        services,
        config,
        &head,
        peer,
        Transport::WebSocket,
        subprotocols.auth_token,
        &params,
    )
    .await;
    req = Request::from_parts(head, body);
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err(refusal) => return status_response(refusal.status, ""),
    };
    let (response, upgrade) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "bad websocket handshake");
            return status_response(StatusCode::BAD_REQUEST, "");
        }
    };
    let services2 = services.clone();
    let config = config.clone();
    // The connection's slot under the endpoint's connection caps: held until the socket
    // ends.
    let held = req.extensions_mut().remove::<HeldConnection>();
    services.tasks().spawn(async move {
        let _held = held;
        match upgrade.await {
            Ok(ws) => run(ws.into_inner(), services2, config, accepted).await,
            Err(error) => tracing::debug!(%error, "upgrade failed"),
        }
    });
    let (mut parts, _) = response.into_parts();
    if let Some(selected) = subprotocols.selected {
        if let Ok(value) = HeaderValue::from_str(&selected) {
            parts.headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
    Response::from_parts(parts, Body::default())
}

struct Subprotocols {
    auth_token: Option<String>,
    selected: Option<String>,
}

/// §1.6: pulls the bearer token out of `Sec-WebSocket-Protocol` and picks the
/// subprotocol to answer (`phoenix` when the auth token is enabled). `Err` → 403.
fn negotiate_subprotocols(
    config: &SocketOptions,
    req: &Request<Incoming>,
) -> Result<Subprotocols, ()> {
    let header = req
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let mut offered: Vec<&str> = header
        .map(|h| {
            h.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut auth_token = None;
    if config.auth_token_enabled() {
        let bearers: Vec<&str> = offered
            .iter()
            .filter_map(|p| p.strip_prefix(BEARER_PREFIX))
            .collect();
        if let [encoded] = bearers.as_slice() {
            auth_token = Some(decode_token(encoded).ok_or(())?);
            offered.retain(|p| !p.starts_with(BEARER_PREFIX));
        }
    }
    let mut allowed: Option<Vec<&str>> = config
        .subprotocol_list()
        .map(|l| l.iter().map(String::as_str).collect());
    if config.auth_token_enabled() {
        let mut list = vec!["phoenix"];
        list.extend(allowed.unwrap_or_default());
        allowed = Some(list);
    }
    let selected = match allowed {
        None => None,
        Some(_) if offered.is_empty() => None,
        Some(list) => Some(
            list.into_iter()
                .find(|p| offered.contains(p))
                .ok_or(())?
                .to_owned(),
        ),
    };
    Ok(Subprotocols {
        auth_token,
        selected,
    })
}

/// The token is standard base64 without padding despite the `base64url` prefix; accept
/// both alphabets, padded or not (§11.5).
fn decode_token(encoded: &str) -> Option<String> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
    let bytes = standard
        .decode(encoded)
        .or_else(|_| url_safe.decode(encoded))
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Recovers the TCP stream under hyper's upgrade so reads and writes need no lock.
async fn run(
    io: TokioIo<hyper::upgrade::Upgraded>,
    services: Arc<Services>,
    config: Arc<SocketOptions>,
    accepted: Authorized,
) {
    match io.into_inner().downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            // `read_buf` is a view into hyper's 8 KiB connection buffer: copy out what
            // the client sent past the upgrade request (if anything) and let it go, or
            // it stays allocated for the life of the socket.
            let hyper::upgrade::Parts { io, read_buf, .. } = parts;
            let leftover = Bytes::copy_from_slice(&read_buf);
            drop(read_buf);
            let (read, write) = io.into_inner().into_split();
            drive(read, write, leftover, services, config, accepted).await;
        }
        Err(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            drive(read, write, Bytes::new(), services, config, accepted).await;
        }
    }
}

/// What one received frame amounts to.
enum Received {
    Message(OpCode, Bytes),
    /// Answer with a pong carrying the same payload.
    Ping(Bytes),
    Nothing,
    /// The client's close frame, to echo (RFC 6455 §5.5.1).
    ClientClose(Bytes),
    Fail(u16),
}

/// Reassembles fragmented messages with a cap on their total size and validates UTF-8
/// across fragments.
fn classify(
    frame: ClientFrame,
    partial: &mut Option<(OpCode, BytesMut)>,
    limit: usize,
) -> Received {
    match frame.opcode {
        OpCode::Text | OpCode::Binary => {
            if partial.is_some() {
                return Received::Fail(CLOSE_PROTOCOL_ERROR);
            }
            if frame.fin {
                return Received::Message(frame.opcode, frame.payload);
            }
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&frame.payload);
            *partial = Some((frame.opcode, buf));
            Received::Nothing
        }
        OpCode::Continuation => {
            let Some((_, buf)) = partial.as_mut() else {
                return Received::Fail(CLOSE_PROTOCOL_ERROR);
            };
            if buf.len() + frame.payload.len() > limit {
                return Received::Fail(CLOSE_TOO_BIG);
            }
            buf.extend_from_slice(&frame.payload);
            if !frame.fin {
                return Received::Nothing;
            }
            let Some((opcode, buf)) = partial.take() else {
                return Received::Nothing;
            };
            if opcode == OpCode::Text && std::str::from_utf8(&buf).is_err() {
                return Received::Fail(CLOSE_INVALID_UTF8);
            }
            Received::Message(opcode, buf.freeze())
        }
        OpCode::Close => Received::ClientClose(frame.payload),
        OpCode::Ping => Received::Ping(frame.payload),
        OpCode::Pong => Received::Nothing,
    }
}

async fn drive<R, W>(
    read: R,
    write: W,
    leftover: Bytes,
    services: Arc<Services>,
    config: Arc<SocketOptions>,
    accepted: Authorized,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let queue = Arc::new(WsQueue::with_memory(
        config.queue_capacity(),
        config.outbound_byte_limit(),
        config.frame_limit(),
        services.outbound.clone(),
    ));
    let outbox = Outbox::WebSocket(queue.clone());

    let socket_id = accepted.connected.id.clone().unwrap_or_default();
    let (socket, inbox) = accepted.into_socket(&services, &config, outbox);
    let mut driver = Driver::new(socket, inbox, config.inbound_limit());
    let telemetry = services.hub.telemetry.clone();
    telemetry.socket_opened(Transport::WebSocket);
    let registration = services.sockets.register(Outbox::WebSocket(queue.clone()));
    let writer = services.tasks().spawn(write_loop(write, queue.clone()));

    let limit = config.frame_limit();
    let mut reader = FrameReader::new(read, limit, leftover);
    let timeout = config.idle_timeout();
    let idle = tokio::time::sleep(timeout);
    tokio::pin!(idle);
    let mut partial = None;
    // Pinned once: a `cancelled()` future made per iteration would register and
    // deregister a waiter on the shared token every time.
    let shutdown = services.shutdown_token().clone().cancelled_owned();
    tokio::pin!(shutdown);

    // `Some(code)`: we close with that code; `None`: the peer closed or vanished, or the
    // queue was killed (its writer sends the close frame).
    let close: Option<u16> = loop {
        // Read only while both the client's waiting messages and its outbound queue
        // have room, and start no callback while the outbound queue is full
        // (backpressure); heartbeats are read and answered even while a channel
        // callback is busy.
        let room = queue.has_room();
        let may_read = room && driver.accepts();
        tokio::select! {
            biased;
            // Killed: the writer sends the close frame. Closing: a close is already
            // queued (disconnect, drain, a channel closing its socket), its code is
            // the one sent.
            stop = queue.stopped() => break match stop {
                Stop::Killed => None,
                Stop::Closing => Some(queue.close_code()),
            },
            () = &mut shutdown => break Some(CLOSE_RESTART),
            result = reader.next_frame(), if may_read => {
                idle.as_mut().reset(Instant::now() + timeout);
                let received = match result {
                    Ok(frame) => classify(frame, &mut partial, limit),
                    Err(ReadError::Close(code)) => Received::Fail(code),
                    Err(ReadError::Gone) => break None,
                };
                match received {
                    Received::Nothing => {}
                    Received::Ping(payload) => {
                        // A pong counts against the outbound bound like any frame; a
                        // client that pings and never reads is closed as a slow reader.
                        let _ = queue.push(queue.frame(OpCode::Pong, &payload));
                    }
                    Received::ClientClose(payload) => {
                        queue.echo_close(payload);
                        break None;
                    }
                    Received::Fail(code) => break Some(code),
                    Received::Message(opcode, data) => {
                        let decoded = match opcode {
                            OpCode::Binary => driver.serializer().decode_binary(&data),
                            _ => driver.serializer().decode_text(&data),
                        };
                        match decoded {
                            Ok(message) => {
                                if let Flow::Close(code) =
                                    driver.receive(message, std::time::Instant::now())
                                {
                                    break Some(code);
                                }
                            }
                            Err(error) => {
                                // §2.6: Phoenix crashes the transport → close 1011.
                                tracing::info!(%error, "malformed frame: closing the socket");
                                break Some(CLOSE_INTERNAL);
                            }
                        }
                    }
                }
            }
            flow = driver.step(room) => {
                if let Flow::Close(code) = flow {
                    break Some(code);
                }
            }
            () = queue.space(), if !room => {}
            () = &mut idle => break Some(CLOSE_PROTOCOL_ERROR),
        }
    };

    if let Some(code) = close {
        queue.close(code);
    }
    // A killed queue carries the reason: 1013 a slow reader, 1011 a peer gone mid-write.
    let reason = match (close, queue.kill_code()) {
        (Some(code), _) => Some(code),
        (None, 1013) => Some(1013),
        (None, _) => None,
    };
    let reason = CloseReason::from_code(reason);
    tracing::debug!(socket_id, ?reason, "DISCONNECTED");
    telemetry.socket_closed(Transport::WebSocket, reason);
    drop(registration);
    driver.close().await;
    queue.finish();
    if close.is_some() {
        // Read until the client's close frame (or EOF) so the connection is not reset
        // under the close frame we sent.
        let linger = async move {
            loop {
                match reader.next_frame().await {
                    Ok(frame) if frame.opcode == OpCode::Close => break,
                    Ok(_) => {}
                    Err(ReadError::Gone) => break,
                    // Framing is lost: read the rest as bytes until the client closes.
                    Err(ReadError::Close(_)) => {
                        reader.discard().await;
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, linger).await;
    }
    let mut writer = writer;
    if tokio::time::timeout(LINGER, &mut writer).await.is_err() {
        // A client that does not read never lets the writer finish: drop the connection.
        writer.abort();
    }
}

/// Most frames that go out in one write.
const COALESCE: usize = 256;

/// Drains the write queue: everything queued goes out in one write. A lone frame (the
/// usual case on the fan-out path) is written straight from its shared `Bytes`; a burst,
/// or a frame written around a payload of its own (a presence list of hundreds of KB
/// that every joiner shares, behind each joiner's own head), is one vectored write of
/// the frames' own buffers, nothing copied on its way to the kernel; on a stream
/// without vectored writes it is copied into one buffer first.
async fn write_loop<W: AsyncWrite + Unpin>(mut write: W, queue: Arc<WsQueue>) {
    let mut batch: Vec<WsOut> = Vec::new();
    let mut frames: Vec<Bytes> = Vec::new();
    let vectored = write.is_write_vectored();
    loop {
        // A kill wakes `ready` too, so an atomic load here is all the writer needs.
        // What is still queued is dropped: the close frame goes out now.
        if queue.is_killed() {
            // An abort drops the connection without a close frame.
            if queue.kill_code() != CLOSE_ABORT {
                let frame = ws_frame(OpCode::Close, &close_payload(queue.kill_code(), ""));
                let _ = tokio::time::timeout(LINGER, write.write_all(&frame)).await;
            }
            let _ = tokio::time::timeout(LINGER, write.shutdown()).await;
            return;
        }
        let finished = queue.take(&mut batch, COALESCE);
        if batch.is_empty() {
            if finished {
                let _ = tokio::time::timeout(LINGER, write.shutdown()).await;
                return;
            }
            queue.ready().await;
            // The queue is the truth, the notification only a hint: look again. (A push
            // or a kill between `take` and the wait leaves a permit: no wake-up is lost.)
            continue;
        }
        let mut closing = false;
        // What these frames count against the socket's budget until they are written.
        let mut counted = 0;
        for item in batch.drain(..) {
            match item {
                WsOut::Frame(frame) => {
                    counted += frame.len();
                    frames.push(frame);
                }
                WsOut::Around(pieces) => {
                    counted += pieces.iter().map(Bytes::len).sum::<usize>();
                    frames.extend(*pieces);
                }
                WsOut::Close(payload) => {
                    frames.push(ws_frame(OpCode::Close, &payload));
                    closing = true;
                    break;
                }
            }
        }
        batch.clear();
        if batch.capacity() > COALESCE {
            batch = Vec::new();
        }
        if frames.len() > 1 && !vectored {
            let joined = Bytes::from(frames.concat());
            frames.clear();
            frames.push(joined);
        }
        // The write goes first: a write the socket takes at once (the usual case) never
        // waits on anything else. While it is blocked, only a kill ends it (pushes to a
        // client that does not read do not wake the writer), or the writer finds itself
        // stuck over the budget for the grace period: a client that stopped reading is
        // closed even when nothing more is pushed to it.
        let written = tokio::select! {
            biased;
            result = write_frames(&mut write, &frames, &queue) => result,
            () = queue.killed() => return,
            () = stuck(&queue) => {
                queue.kill(CLOSE_SLOW_READER);
                return;
            }
        };
        frames.clear();
        queue.written(counted);
        if frames.capacity() > COALESCE + 1 {
            frames = Vec::new();
        }
        if written.is_err() {
            // The peer is gone: make the socket task notice and end.
            queue.kill(CLOSE_INTERNAL);
            return;
        }
        if closing {
            let _ = tokio::time::timeout(LINGER, write.shutdown()).await;
            return;
        }
    }
}

/// Ready once the writer has held more than the socket's budget for the grace period
/// without writing a byte (see [`WsQueue::stuck_over_budget`]); looks once a second.
async fn stuck(queue: &WsQueue) {
    loop {
        tokio::time::sleep(STUCK_CHECK).await;
        if queue.stuck_over_budget(std::time::Instant::now()) {
            return;
        }
    }
}

/// How often a blocked writer looks whether it is stuck.
const STUCK_CHECK: Duration = Duration::from_secs(1);

/// Writes every byte of `frames`, in order: one frame with plain writes, several with
/// vectored writes, continued where a partial write stopped; every write that hands
/// bytes to the kernel counts as the writer's progress. Then flushes (a TLS stream
/// holds what it encrypted until then).
async fn write_frames<W: AsyncWrite + Unpin>(
    write: &mut W,
    frames: &[Bytes],
    queue: &WsQueue,
) -> std::io::Result<()> {
    if let [frame] = frames {
        let mut rest: &[u8] = frame;
        while !rest.is_empty() {
            let n = write.write(rest).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            queue.progressed();
            rest = &rest[n..];
        }
        return write.flush().await;
    }
    let mut slices: Vec<IoSlice<'_>> = frames
        .iter()
        .filter(|frame| !frame.is_empty())
        .map(|frame| IoSlice::new(frame))
        .collect();
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        let n = write.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        queue.progressed();
        IoSlice::advance_slices(&mut rest, n);
    }
    write.flush().await
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// Takes at most `chunk` bytes per write, vectored or not, and keeps them.
    struct Trickle {
        chunk: usize,
        vectored: bool,
        out: Vec<u8>,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.chunk);
            self.out.extend_from_slice(&buf[..n]);
            self.calls += 1;
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut left = self.chunk;
            for buf in bufs {
                let n = buf.len().min(left);
                self.out.extend_from_slice(&buf[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            self.calls += 1;
            Poll::Ready(Ok(self.chunk - left))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frames() -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"hello"),
            Bytes::new(),
            Bytes::from_static(b"world!!"),
            Bytes::from(vec![7u8; 1000]),
        ]
    }

    #[tokio::test]
    async fn a_burst_is_written_whole_and_in_order_across_partial_vectored_writes() {
        let mut write = Trickle {
            chunk: 7,
            vectored: true,
            out: Vec::new(),
            calls: 0,
        };
        let queue = WsQueue::new(100, 1 << 20, 0);
        write_frames(&mut write, &frames(), &queue).await.unwrap();
        assert_eq!(write.out, frames().concat());
        // 1 012 bytes at 7 per write: every write took a full chunk, frames' edges
        // included.
        assert_eq!(write.calls, 1012usize.div_ceil(7));
    }

    #[tokio::test]
    async fn the_writer_sends_a_burst_and_the_close_in_order_on_any_stream() {
        for vectored in [true, false] {
            let queue = Arc::new(WsQueue::new(100, 1 << 20, 0));
            for frame in frames() {
                queue.push(frame).unwrap();
            }
            queue.close(1000);
            let mut write = Trickle {
                chunk: 100,
                vectored,
                out: Vec::new(),
                calls: 0,
            };
            write_loop(&mut write, queue).await;
            let mut expected = frames().concat();
            expected.extend_from_slice(&ws_frame(OpCode::Close, &close_payload(1000, "")));
            assert_eq!(write.out, expected, "vectored: {vectored}");
        }
    }
}
