//! Where a socket's outgoing frames go, independent of the transport.
//!
//! A frame is encoded once by the serializer, wrapped once for the transport (a complete
//! WebSocket frame, header included, or the bare text a long-poll GET returns) into
//! [`Bytes`], and that same `Bytes` is handed to every subscriber that shares the
//! encoding (§5): the fan-out path clones a reference count, never the data.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload as WsPayload};
use phx_protocol::{FrameKind, Serializer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::connect::Transport;
use crate::longpoll::LongPollBuffer;

/// One item of a WebSocket connection's write queue.
#[derive(Debug)]
pub(crate) enum WsOut {
    /// A complete, unmasked WebSocket frame.
    Frame(Bytes),
    /// Send this close frame (payload: code + reason), then stop writing.
    Close(Bytes),
}

/// Ends a connection from any task: the writer sends a close frame with `code` and the
/// socket task terminates its channels. Used when a slow reader overflows its queue.
#[derive(Debug, Default)]
pub(crate) struct Kill {
    token: CancellationToken,
    code: AtomicU16,
    /// Bytes queued for the writer and not yet written (bounds memory, not just frames).
    queued: AtomicUsize,
}

impl Kill {
    pub(crate) fn kill(&self, code: u16) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.token.cancel();
    }
    pub(crate) fn code(&self) -> u16 {
        self.code.load(Ordering::Acquire)
    }
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
    /// The writer wrote `bytes` of queued frames.
    pub(crate) fn written(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes one WebSocket may have queued before it is closed as a slow reader.
pub(crate) const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// Close code used when a client does not read fast enough and its bounded queue
/// overflows (more than `outbound_capacity` frames or [`MAX_QUEUED_BYTES`] bytes):
/// 1013 "try again later" (any non-1000 code makes phoenix.js reconnect).
pub(crate) const CLOSE_SLOW_READER: u16 = 1013;

/// The sending side of one socket, cloned into every pubsub subscription of it.
#[derive(Clone, Debug)]
pub(crate) enum Outbox {
    WebSocket {
        tx: mpsc::Sender<WsOut>,
        kill: Arc<Kill>,
    },
    LongPoll(Arc<LongPollBuffer>),
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// The socket is gone.
    #[error("socket closed")]
    Closed,
    /// Binary frames cannot be delivered over long poll (§2.5, §11.1).
    #[error("binary payloads cannot be sent over long poll")]
    BinaryOverLongPoll,
}

/// The (serializer, transport) pairs a broadcast is encoded for at most once each.
pub(crate) const ENCODINGS: usize = 4;

impl Outbox {
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Self::WebSocket { .. } => Transport::WebSocket,
            Self::LongPoll(_) => Transport::LongPoll,
        }
    }

    /// Index of this outbox's encoding for `serializer`, `< ENCODINGS`.
    pub(crate) fn encoding_index(&self, serializer: Serializer) -> usize {
        let s = match serializer {
            Serializer::V1 => 0,
            Serializer::V2 => 1,
        };
        let t = match self {
            Self::WebSocket { .. } => 0,
            Self::LongPoll(_) => 2,
        };
        s + t
    }

    /// Wraps one serializer output for this transport.
    pub(crate) fn frame(&self, kind: FrameKind, encoded: &[u8]) -> Result<Bytes, OutboxError> {
        match self {
            Self::WebSocket { .. } => Ok(ws_frame(
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
        }
    }

    /// Queues a frame made by [`Outbox::frame`] of the same transport.
    pub(crate) fn send(&self, frame: Bytes) -> Result<(), OutboxError> {
        match self {
            Self::WebSocket { tx, kill } => {
                let len = frame.len();
                if kill.queued.fetch_add(len, Ordering::AcqRel) + len > MAX_QUEUED_BYTES {
                    kill.kill(CLOSE_SLOW_READER);
                    return Err(OutboxError::Closed);
                }
                match tx.try_send(WsOut::Frame(frame)) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // A reader this far behind is disconnected rather than buffered
                        // without bound (its client reconnects and rejoins).
                        kill.kill(CLOSE_SLOW_READER);
                        Err(OutboxError::Closed)
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(OutboxError::Closed),
                }
            }
            Self::LongPoll(buffer) => buffer.push(frame),
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
