//! Where a socket's outgoing frames go, independent of the transport.
//!
//! A frame is encoded once by the serializer, wrapped once for the transport (a complete
//! WebSocket frame, header included, or the bare text a long-poll GET returns) into
//! [`Bytes`], and that same `Bytes` is handed to every subscriber that shares the
//! encoding (docs/protocol.md §5): the fan-out path clones a reference count, never the
//! data.
//!
//! Each transport's queue lives in its own module: [`websocket::WsQueue`] (drained by a
//! writer task) and [`longpoll::LongPollBuffer`] (drained by GETs, and by the in-process
//! sockets of [`crate::testing`]).

pub(crate) mod longpoll;
pub(crate) mod memory;
pub(crate) mod websocket;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload as WsPayload};
use phx_protocol::{FrameKind, Serializer};

pub(crate) use longpoll::LongPollBuffer;
pub(crate) use memory::OutboundMemory;
pub use memory::DEFAULT_OUTBOUND_BYTES_TOTAL;
pub(crate) use websocket::{WsOut, WsQueue, CLOSE_SLOW_READER};

use crate::connect::Transport;

/// The sending side of one socket, cloned into every pubsub subscription of it.
#[derive(Clone, Debug)]
pub(crate) enum Outbox {
    WebSocket(Arc<WsQueue>),
    LongPoll(Arc<LongPollBuffer>),
    /// An in-process test socket: serializer output as is, text or binary.
    Test(Arc<LongPollBuffer>),
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// The socket is gone.
    #[error("socket closed")]
    Closed,
    /// Binary frames cannot be delivered over long poll (docs/protocol.md §2.5, §11.1).
    #[error("binary payloads cannot be sent over long poll")]
    BinaryOverLongPoll,
}

/// The (serializer, transport) pairs a broadcast is encoded for at most once each.
pub(crate) const ENCODINGS: usize = 6;

impl Outbox {
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Self::WebSocket(_) => Transport::WebSocket,
            Self::LongPoll(_) => Transport::LongPoll,
            Self::Test(_) => Transport::Test,
        }
    }

    /// Index of this outbox's encoding for `serializer`, `< ENCODINGS`.
    pub(crate) fn encoding_index(&self, serializer: Serializer) -> usize {
        let s = match serializer {
            Serializer::V1 => 0,
            Serializer::V2 => 1,
        };
        let t = match self {
            Self::WebSocket(_) => 0,
            Self::LongPoll(_) => 2,
            Self::Test(_) => 4,
        };
        s + t
    }

    /// Wraps one serializer output for this transport.
    pub(crate) fn frame(&self, kind: FrameKind, encoded: &[u8]) -> Result<Bytes, OutboxError> {
        match self {
            // Counted in the endpoint's outbound total for as long as any copy lives.
            Self::WebSocket(queue) => Ok(queue.frame(
                match kind {
                    FrameKind::Text => OpCode::Text,
                    FrameKind::Binary => OpCode::Binary,
                },
                encoded,
            )),
            Self::LongPoll(_) => match kind {
                FrameKind::Text => Ok(Bytes::copy_from_slice(encoded)),
                FrameKind::Binary => Err(OutboxError::BinaryOverLongPoll),
            },
            Self::Test(_) => Ok(Bytes::copy_from_slice(encoded)),
        }
    }

    /// Queues a frame whose message is `head`, then `payload` (a buffer of its own,
    /// shared with other frames or moved in, not copied), then `tail`: what
    /// [`Serializer::encode_around`](phx_protocol::Serializer::encode_around) writes
    /// around a payload. On the wire it is byte for byte the frame [`Outbox::frame`] makes
    /// of the whole message; a WebSocket writes the payload from its own buffer (one
    /// vectored write with the head and tail), a long poll gets the message in one piece.
    pub(crate) fn send_around(
        &self,
        kind: FrameKind,
        head: &[u8],
        payload: Bytes,
        tail: &[u8],
    ) -> Result<(), OutboxError> {
        match self {
            Self::WebSocket(queue) => {
                let opcode = match kind {
                    FrameKind::Text => OpCode::Text,
                    FrameKind::Binary => OpCode::Binary,
                };
                let (head, tail) = queue.frame_around(opcode, head, payload.len(), tail);
                queue.push_around([head, payload, tail])
            }
            Self::LongPoll(_) | Self::Test(_) => {
                let whole = [head, &payload, tail].concat();
                self.send(self.frame(kind, &whole)?)
            }
        }
    }

    /// Ends the connection after what is already queued; nothing more is accepted. A
    /// WebSocket gets a close frame with `code`; a long-poll session ends (its next
    /// poll answers 410, docs/protocol.md §7).
    pub(crate) fn close(&self, code: u16) {
        match self {
            Self::WebSocket(queue) => queue.close(code),
            Self::LongPoll(buffer) | Self::Test(buffer) => buffer.end(),
        }
    }

    /// Drops the connection at once, with no close frame and nothing more written (the
    /// client sees the transport vanish, as when Phoenix kills the transport process).
    pub(crate) fn abort(&self) {
        match self {
            Self::WebSocket(queue) => queue.abort(),
            Self::LongPoll(buffer) | Self::Test(buffer) => buffer.end(),
        }
    }

    /// Queues a frame made by [`Outbox::frame`] of the same transport.
    pub(crate) fn send(&self, frame: Bytes) -> Result<(), OutboxError> {
        match self {
            Self::WebSocket(queue) => queue.push(frame),
            Self::LongPoll(buffer) | Self::Test(buffer) => buffer.push(frame),
        }
    }
}

/// A complete server-to-client WebSocket frame (FIN set, unmasked).
pub(crate) fn ws_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut head = [0u8; 14];
    let size = Frame::new(true, opcode, None, WsPayload::Borrowed(payload)).fmt_head(&mut head);
    let mut out = BytesMut::with_capacity(size + payload.len());
    out.extend_from_slice(&head[..size]);
    out.extend_from_slice(payload);
    out.freeze()
}

/// A close frame's payload: the code, big-endian, then the reason.
pub(crate) fn close_payload(code: u16, reason: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out.freeze()
}

#[cfg(test)]
mod tests;
