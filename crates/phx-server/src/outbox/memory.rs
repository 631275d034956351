//! The endpoint-wide count of outbound WebSocket frames held in memory, each frame once
//! however many sockets share it (see [`OutboundMemory`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload as WsPayload};
use tokio::sync::Notify;

/// Default bound on the outbound frames all WebSockets of an endpoint hold at once (see
/// [`crate::EndpointBuilder::outbound_bytes_total`]): 256 MiB.
///
/// Why this number: a client that reads takes its frames within milliseconds, so only
/// clients that stop reading hold frames for long, each up to its budget
/// ([`crate::DEFAULT_OUTBOUND_BYTES`]); 256 MiB is a thousand of them at their full
/// budget at once, far past what legitimate traffic holds (a broadcast counts once, not
/// once per subscriber), and a small part of a server's memory.
pub const DEFAULT_OUTBOUND_BYTES_TOTAL: usize = 256 * 1024 * 1024;

/// Outbound WebSocket frames alive in memory, counted once each: a frame is counted from
/// when it is made until its last copy is dropped (written by every socket it was queued
/// for, or dropped with a closed socket), whatever shares it: one broadcast to ten
/// thousand subscribers is one frame here.
///
/// Past the bound the endpoint closes, with 1013, the sockets that hold the most while
/// their writers write nothing; a socket whose writer progresses is never closed for it
/// (see the shedding task in `transport::websocket`).
#[derive(Debug)]
pub(crate) struct OutboundMemory {
    held: AtomicUsize,
    max: usize,
    /// Signalled on every frame made while the total is over `max`.
    over: Notify,
}

/// A frame's bytes, uncounted when the last `Bytes` sharing them is dropped.
struct Counted {
    bytes: Vec<u8>,
    /// What the frame counts: its bytes, plus, for a frame written around a payload of
    /// its own, that payload's.
    counted: usize,
    memory: Arc<OutboundMemory>,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.memory.held.fetch_sub(self.counted, Ordering::AcqRel);
    }
}

/// Appends the header of a final, unmasked frame of `len` payload bytes (RFC 6455
/// §5.2), as fastwebsockets writes it: for frames whose payload is written from a
/// buffer of its own, after the header.
fn push_ws_head(out: &mut Vec<u8>, opcode: OpCode, len: usize) {
    out.push(0x80 | opcode as u8);
    match len {
        0..=125 => out.push(len as u8),
        126..=65_535 => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// The length of that header.
fn ws_head_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    }
}

impl OutboundMemory {
    /// A count bounded at `max` bytes.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            max,
            over: Notify::new(),
        })
    }

    /// A complete server-to-client WebSocket frame (FIN set, unmasked), counted until
    /// its last copy is dropped. One allocation for the bytes and one for the shared
    /// owner, per frame (per broadcast, never per subscriber).
    pub(crate) fn frame(self: &Arc<Self>, opcode: OpCode, payload: &[u8]) -> Bytes {
        let mut head = [0u8; 14];
        let size = Frame::new(true, opcode, None, WsPayload::Borrowed(payload)).fmt_head(&mut head);
        let mut bytes = Vec::with_capacity(size + payload.len());
        bytes.extend_from_slice(&head[..size]);
        bytes.extend_from_slice(payload);
        let len = bytes.len();
        self.counted(bytes, len)
    }

    /// The two pieces of a WebSocket frame whose message is `head`, a payload of
    /// `payload_len` bytes written from a buffer of its own, then `tail`: the WebSocket
    /// header and `head`, and `tail`, in one allocation. The frame counts in full (the
    /// payload included) until both pieces are dropped: a payload shared by several
    /// frames counts in each, as if each had its own copy, so the total stays an upper
    /// bound of what the frames hold.
    pub(crate) fn frame_around(
        self: &Arc<Self>,
        opcode: OpCode,
        head: &[u8],
        payload_len: usize,
        tail: &[u8],
    ) -> (Bytes, Bytes) {
        let message_len = head.len() + payload_len + tail.len();
        let mut bytes = Vec::with_capacity(ws_head_len(message_len) + head.len() + tail.len());
        push_ws_head(&mut bytes, opcode, message_len);
        bytes.extend_from_slice(head);
        let split = bytes.len();
        bytes.extend_from_slice(tail);
        let counted = bytes.len() + payload_len;
        let mut head = self.counted(bytes, counted);
        let tail = head.split_off(split);
        (head, tail)
    }

    /// `bytes` as a frame counted as `counted` bytes until its last copy is dropped.
    fn counted(self: &Arc<Self>, bytes: Vec<u8>, counted: usize) -> Bytes {
        let held = self.held.fetch_add(counted, Ordering::AcqRel) + counted;
        if held > self.max {
            self.over.notify_one();
        }
        Bytes::from_owner(Counted {
            bytes,
            counted,
            memory: self.clone(),
        })
    }

    /// Bytes of frames alive now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// The bound.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Waits until a frame is made while the total is over the bound.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits; callers look at [`OutboundMemory::held`] afterwards.
    pub(crate) async fn over(&self) {
        self.over.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_counts_once_however_many_copies_share_it_until_the_last_is_dropped() {
        let memory = OutboundMemory::new(usize::MAX);
        let frame = memory.frame(OpCode::Text, &[b'x'; 1000]);
        assert_eq!(frame.len(), 1004, "2-byte length header and 16-bit length");
        assert_eq!(memory.held(), 1004);
        let copies: Vec<Bytes> = (0..10_000).map(|_| frame.clone()).collect();
        assert_eq!(memory.held(), 1004, "shared, not copied");
        drop(frame);
        assert_eq!(memory.held(), 1004);
        drop(copies);
        assert_eq!(memory.held(), 0);
    }

    #[test]
    fn the_frame_is_the_one_fastwebsockets_would_write() {
        let memory = OutboundMemory::new(usize::MAX);
        for len in [0, 125, 126, 65_535, 65_536] {
            let payload = vec![7u8; len];
            assert_eq!(
                memory.frame(OpCode::Binary, &payload),
                super::super::ws_frame(OpCode::Binary, &payload)
            );
        }
    }

    #[test]
    fn a_frame_around_a_payload_is_the_frame_fastwebsockets_would_write() {
        let memory = OutboundMemory::new(usize::MAX);
        let (head, tail) = (b"[\"1\",null,\"t\",\"e\",".as_slice(), b"]".as_slice());
        let around = head.len() + tail.len();
        for len in [0usize, 125, 126, 65_535, 65_536, 70_000] {
            for len in [len, len.saturating_sub(around)] {
                let payload = vec![b'x'; len];
                let (first, last) = memory.frame_around(OpCode::Text, head, len, tail);
                let whole = [head, &payload, tail].concat();
                assert_eq!(
                    [&first[..], &payload, &last[..]].concat(),
                    super::super::ws_frame(OpCode::Text, &whole),
                    "message of {} bytes",
                    whole.len()
                );
            }
        }
    }

    #[test]
    fn a_frame_around_a_payload_counts_it_until_both_pieces_are_dropped() {
        let memory = OutboundMemory::new(usize::MAX);
        let (head, tail) = memory.frame_around(OpCode::Text, b"[", 1000, b"]");
        assert_eq!((head.len(), tail.len()), (5, 1), "16-bit length header");
        assert_eq!(memory.held(), 1006);
        drop(head);
        assert_eq!(memory.held(), 1006, "the tail still holds the frame");
        drop(tail);
        assert_eq!(memory.held(), 0);
    }

    #[tokio::test]
    async fn a_frame_made_over_the_bound_wakes_the_waiter() {
        let memory = OutboundMemory::new(100);
        let _small = memory.frame(OpCode::Text, &[0; 50]);
        let waiter = tokio::spawn({
            let memory = memory.clone();
            async move { memory.over().await }
        });
        tokio::task::yield_now().await;
        let _big = memory.frame(OpCode::Text, &[0; 60]);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
