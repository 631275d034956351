//! Where a socket's outgoing frames go, independent of the transport.
//!
//! A frame is encoded once by the serializer, wrapped once for the transport (a complete
//! WebSocket frame, header included, or the bare text a long-poll GET returns) into
//! [`Bytes`], and that same `Bytes` is handed to every subscriber that shares the
//! encoding (§5): the fan-out path clones a reference count, never the data.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload as WsPayload};
use phx_protocol::{FrameKind, Serializer};
use tokio::sync::Notify;
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

/// Close code used when a client does not read fast enough and its bounded queue
/// overflows (more than `outbound_capacity` frames or `outbound_bytes` bytes):
/// 1013 "try again later" (any non-1000 code makes phoenix.js reconnect).
pub(crate) const CLOSE_SLOW_READER: u16 = 1013;

/// The write queue of one WebSocket, shared by its socket task, its reader (pongs,
/// close echoes), every pubsub subscription of it, and its writer task.
///
/// A mutex-guarded `VecDeque` and a `Notify` rather than a tokio channel: on the fan-out
/// path a push is one uncontended lock and at most one wake-up, and an idle socket holds
/// no pre-allocated slots (a bounded channel allocates a 32-slot block per socket).
#[derive(Debug)]
pub(crate) struct WsQueue {
    items: Mutex<Items>,
    ready: Notify,
    capacity: usize,
    max_bytes: usize,
    /// Cancelled when the connection must end (slow reader, peer gone).
    killed: CancellationToken,
    kill_code: AtomicU16,
    /// The socket task is done: the writer flushes what is queued and stops.
    finished: AtomicBool,
}

#[derive(Debug, Default)]
struct Items {
    queue: VecDeque<WsOut>,
    bytes: usize,
}

impl WsQueue {
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            items: Mutex::new(Items::default()),
            ready: Notify::new(),
            capacity,
            max_bytes,
            killed: CancellationToken::new(),
            kill_code: AtomicU16::new(0),
            finished: AtomicBool::new(false),
        }
    }

    /// Ends the connection from any task: the writer sends a close frame with `code` and
    /// the socket task terminates its channels.
    pub(crate) fn kill(&self, code: u16) {
        let _ = self
            .kill_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.killed.cancel();
    }

    pub(crate) fn kill_code(&self) -> u16 {
        self.kill_code.load(Ordering::Acquire)
    }

    pub(crate) fn killed(&self) -> &CancellationToken {
        &self.killed
    }

    /// Queues a frame within the bounds; past them the reader is too slow and the
    /// connection is killed rather than buffered without bound.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), OutboxError> {
        // `kill` sets the code before cancelling: an atomic load answers "killed?"
        // without the token's lock, once per subscriber per broadcast.
        if self.kill_code.load(Ordering::Acquire) != 0 || self.finished.load(Ordering::Acquire) {
            return Err(OutboxError::Closed);
        }
        let mut items = self.items.lock().map_err(|_| OutboxError::Closed)?;
        // A frame always fits an empty queue, so a message larger than the budget still
        // reaches a client that reads; only a backlog counts against it.
        let over_bytes = items.bytes > 0 && items.bytes + frame.len() > self.max_bytes;
        if items.queue.len() >= self.capacity || over_bytes {
            drop(items);
            self.kill(CLOSE_SLOW_READER);
            return Err(OutboxError::Closed);
        }
        items.bytes += frame.len();
        items.queue.push_back(WsOut::Frame(frame));
        drop(items);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues what the protocol obliges (pongs, close frames) regardless of the bounds.
    pub(crate) fn push_control(&self, item: WsOut) {
        if let Ok(mut items) = self.items.lock() {
            items.queue.push_back(item);
        }
        self.ready.notify_one();
    }

    /// The socket task is done; the writer stops once the queue is empty.
    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// Moves up to `max` queued items into `out`; returns whether the socket finished.
    pub(crate) fn take(&self, out: &mut Vec<WsOut>, max: usize) -> bool {
        if let Ok(mut items) = self.items.lock() {
            while out.len() < max {
                let Some(item) = items.queue.pop_front() else {
                    break;
                };
                if let WsOut::Frame(frame) = &item {
                    items.bytes -= frame.len();
                }
                out.push(item);
            }
            if items.queue.is_empty() && items.queue.capacity() > 64 {
                items.queue.shrink_to(0);
            }
        }
        self.finished.load(Ordering::Acquire)
    }

    /// Waits until something may have been queued (or the socket finished).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits; callers look at the queue after it returns.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }
}

/// The sending side of one socket, cloned into every pubsub subscription of it.
#[derive(Clone, Debug)]
pub(crate) enum Outbox {
    WebSocket(Arc<WsQueue>),
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
            Self::WebSocket(_) => Transport::WebSocket,
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
            Self::WebSocket(_) => 0,
            Self::LongPoll(_) => 2,
        };
        s + t
    }

    /// Wraps one serializer output for this transport.
    pub(crate) fn frame(&self, kind: FrameKind, encoded: &[u8]) -> Result<Bytes, OutboxError> {
        match self {
            Self::WebSocket(_) => Ok(ws_frame(
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
            Self::WebSocket(queue) => queue.push(frame),
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

#[cfg(test)]
mod tests;
