//! The write queue of one WebSocket and its bounds (see [`WsQueue`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use super::memory::OutboundMemory;
use super::{close_payload, OutboxError};

/// One item of a WebSocket connection's write queue.
#[derive(Debug)]
pub(crate) enum WsOut {
    /// A complete, unmasked WebSocket frame.
    Frame(Bytes),
    /// A complete frame in three pieces written in a row: its own head (WebSocket header
    /// and message up to the payload), a payload from a buffer of its own (shared with
    /// other frames, such as a presence list every joiner gets), and its own tail. Boxed:
    /// the queue's items stay as small as a `Bytes` plus a tag.
    Around(Box<[Bytes; 3]>),
    /// Send this close frame (payload: code + reason), then stop writing.
    Close(Bytes),
}

impl From<Bytes> for WsOut {
    fn from(frame: Bytes) -> Self {
        Self::Frame(frame)
    }
}

impl WsOut {
    /// The bytes this item writes.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Frame(frame) | Self::Close(frame) => frame.len(),
            Self::Around(pieces) => pieces.iter().map(Bytes::len).sum(),
        }
    }

    /// A data frame's bytes in one piece (`None` for a close): what the writer writes.
    #[cfg(test)]
    pub(crate) fn data(&self) -> Option<Vec<u8>> {
        match self {
            Self::Frame(frame) => Some(frame.to_vec()),
            Self::Around(pieces) => Some(pieces.concat()),
            Self::Close(_) => None,
        }
    }
}

/// Close code used when a client does not read fast enough and its bounded queue
/// overflows (more than `outbound_capacity` frames or `outbound_bytes` bytes):
/// 1013 "try again later" (any non-1000 code makes phoenix.js reconnect).
pub(crate) const CLOSE_SLOW_READER: u16 = 1013;

/// The kill code of an abort: 1006 is never sent on the wire (RFC 6455 §7.4.1), the
/// writer drops the connection instead of writing a close frame.
pub(crate) const CLOSE_ABORT: u16 = 1006;

/// Why a socket task must stop reading (see [`WsQueue::stopped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The connection ends at once (slow reader, peer gone, abort).
    Killed,
    /// A close frame is queued (disconnect, drain, a channel closing its socket).
    Closing,
}

/// The write queue of one WebSocket, shared by its socket task, its reader (pongs),
/// every pubsub subscription of it, and its writer task.
///
/// A mutex-guarded `VecDeque` and a `Notify` rather than a tokio channel: on the fan-out
/// path a push is one uncontended lock and at most one wake-up, and an idle socket holds
/// no pre-allocated slots (a bounded channel allocates a 32-slot block per socket).
///
/// Every frame the server queues counts against the bound, pongs included: a client that
/// sends pings (or requests) and never reads would otherwise pin memory without limit.
/// A frame counts from when it is queued until the writer has handed all of it to the
/// kernel, not just until the writer takes it: a writer blocked on a client that does not
/// read still holds the frames of its write, and those are what a non-reader pins.
/// A broadcast frame shared with other sockets counts in full here: it is what this
/// socket keeps alive once the readers have written it, which for a non-reader is within
/// milliseconds; the endpoint-wide total ([`OutboundMemory`]) counts it once.
/// The bound, in order of strictness:
///
/// - the socket task stops reading from a client whose backlog is above half the budget
///   ([`WsQueue::has_room`]), as a Phoenix transport blocked on a full socket would, so a
///   client's own requests cannot fill its queue;
/// - a backlog over the byte budget is tolerated for [`SLOW_READER_GRACE`] as long as
///   the writer keeps taking frames: one callback's burst (a big broadcast followed by
///   its reply) never closes a client that reads, however large the frame;
/// - a backlog over the budget with a writer that wrote nothing for the grace period
///   (checked by the next push and by the blocked writer itself, so a non-reader that
///   gets no more frames is closed too), more than `capacity` frames, or more than the
///   hard cap (four budgets plus one maximal message) is a slow reader: the connection
///   is closed with 1013.
///
/// A frame is accepted whenever the backlog before it is within those bounds, so any
/// message the server accepted from a client can reach every client that reads.
#[derive(Debug)]
pub(crate) struct WsQueue {
    items: Mutex<Items>,
    ready: Notify,
    /// Signalled whenever the writer took frames: a paused reader looks again.
    space: Notify,
    capacity: usize,
    max_bytes: usize,
    hard_cap: usize,
    /// Wakes the socket task when the queue is killed or a close is queued. The state
    /// itself is in `kill_code` and `close_code` (non-zero once set), so the socket task
    /// and the writer look at it with an atomic load: no lock per loop iteration or per
    /// write, which two `CancellationToken`s cost on every frame (their `cancelled()`
    /// futures lock the token on each poll and register and deregister a waiter).
    stop: AtomicWaker,
    /// Wakes the writer blocked in a write when the queue is killed. Not `ready`: a
    /// blocked writer waiting on `ready` would be woken by every push to a client that
    /// is not reading, for nothing.
    kill_signal: Notify,
    close_code: AtomicU16,
    kill_code: AtomicU16,
    /// No frame is accepted any more: a close is queued, or the socket task is done.
    /// The writer flushes what is queued and stops.
    finished: AtomicBool,
    /// Successful writes so far (partial ones included): the writer's progress.
    progress: AtomicU64,
    /// Where the endpoint's frames are counted once each.
    memory: Arc<OutboundMemory>,
}

#[derive(Debug, Default)]
struct Items {
    queue: VecDeque<WsOut>,
    /// Bytes queued plus bytes taken by the writer and not written yet.
    bytes: usize,
    /// Of `bytes`, those the writer took and has not written yet.
    in_flight: usize,
    /// A close frame is queued: nothing after it is written.
    closing: bool,
    /// When the backlog was first seen over the budget, at which writer progress.
    over_budget: Option<(u64, Instant)>,
}

/// How long a backlog over the budget may last while the writer takes nothing (it is
/// blocked writing to a client that does not read, or starved).
pub(crate) const SLOW_READER_GRACE: Duration = Duration::from_secs(3);

impl Items {
    /// The backlog is over the budget: whether it has been, with no write by the writer,
    /// for longer than the grace period. Reads the clock only in this rare case.
    fn stuck_over_budget(&mut self, progress: u64, now: Instant) -> bool {
        match self.over_budget {
            Some((seen, since)) if seen == progress => {
                now.saturating_duration_since(since) > SLOW_READER_GRACE
            }
            _ => {
                self.over_budget = Some((progress, now));
                false
            }
        }
    }
}

impl WsQueue {
    /// `capacity` frames, a budget of `max_bytes` of backlog, and `max_message` the
    /// largest message a client may send (it sets the hard cap, see above).
    ///
    /// Its frames are counted in a total of their own; see [`WsQueue::with_memory`].
    #[cfg(test)]
    pub(crate) fn new(capacity: usize, max_bytes: usize, max_message: usize) -> Self {
        Self::with_memory(
            capacity,
            max_bytes,
            max_message,
            OutboundMemory::new(usize::MAX),
        )
    }

    /// [`WsQueue::new`], with the frames made by [`WsQueue::frame`] counted in `memory`
    /// (the endpoint's total).
    pub(crate) fn with_memory(
        capacity: usize,
        max_bytes: usize,
        max_message: usize,
        memory: Arc<OutboundMemory>,
    ) -> Self {
        let max_bytes = max_bytes.max(1);
        Self {
            items: Mutex::new(Items::default()),
            ready: Notify::new(),
            space: Notify::new(),
            capacity: capacity.max(1),
            max_bytes,
            hard_cap: max_bytes.saturating_mul(4).saturating_add(max_message),
            stop: AtomicWaker::new(),
            kill_signal: Notify::new(),
            close_code: AtomicU16::new(0),
            kill_code: AtomicU16::new(0),
            finished: AtomicBool::new(false),
            progress: AtomicU64::new(0),
            memory,
        }
    }

    /// A complete WebSocket frame for this socket, counted in the endpoint's total until
    /// its last copy is dropped (see [`OutboundMemory`]).
    pub(crate) fn frame(&self, opcode: fastwebsockets::OpCode, payload: &[u8]) -> Bytes {
        self.memory.frame(opcode, payload)
    }

    /// The head and tail of a frame around a payload of `payload_len` bytes written
    /// from its own buffer, counted like [`WsQueue::frame`] (see
    /// [`OutboundMemory::frame_around`]).
    pub(crate) fn frame_around(
        &self,
        opcode: fastwebsockets::OpCode,
        head: &[u8],
        payload_len: usize,
        tail: &[u8],
    ) -> (Bytes, Bytes) {
        self.memory.frame_around(opcode, head, payload_len, tail)
    }

    /// Bytes this socket holds: queued, and taken by the writer but not written.
    pub(crate) fn held_bytes(&self) -> usize {
        self.items.lock().map_or(0, |items| items.bytes)
    }

    /// The writer's progress: how many writes handed bytes to the kernel so far. Two
    /// looks a while apart that see bytes held and the same progress mean the writer
    /// wrote nothing in between.
    pub(crate) fn progress(&self) -> u64 {
        self.progress.load(Ordering::Acquire)
    }

    /// The writer handed bytes to the kernel.
    pub(crate) fn progressed(&self) {
        self.progress.fetch_add(1, Ordering::AcqRel);
    }

    /// The writer finished writing `bytes` it had taken: they no longer count.
    pub(crate) fn written(&self, bytes: usize) {
        if let Ok(mut items) = self.items.lock() {
            let bytes = bytes.min(items.in_flight);
            items.in_flight -= bytes;
            items.bytes -= bytes;
        }
        self.progressed();
        self.space.notify_one();
    }

    /// Whether the writer has held more than the budget for the grace period without
    /// writing a byte: a slow reader (checked by the writer while a write is blocked, so
    /// a client that stops reading is closed even when nothing more is pushed to it).
    pub(crate) fn stuck_over_budget(&self, now: Instant) -> bool {
        let progress = self.progress();
        self.items.lock().is_ok_and(|mut items| {
            items.bytes > self.max_bytes && items.stuck_over_budget(progress, now)
        })
    }

    /// Ends the connection from any task without flushing: the writer sends a close
    /// frame with `code` and the socket task terminates its channels.
    pub(crate) fn kill(&self, code: u16) {
        let _ = self
            .kill_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        // An idle writer waits on `ready`, a writer blocked in a write on
        // `kill_signal` (both look at `kill_code` when woken), the socket task on `stop`.
        // What is queued will never be written: let it go now, not when the socket
        // task and every subscription have dropped the queue.
        if let Ok(mut items) = self.items.lock() {
            let queued = items.bytes - items.in_flight;
            items.bytes -= queued;
            items.queue = VecDeque::new();
        }
        self.ready.notify_one();
        self.kill_signal.notify_one();
        self.stop.wake();
    }

    /// Drops the connection without a close frame (see [`super::Outbox::abort`]).
    pub(crate) fn abort(&self) {
        self.kill(CLOSE_ABORT);
    }

    /// The code of the first [`WsQueue::kill`], 0 while the queue was not killed.
    pub(crate) fn kill_code(&self) -> u16 {
        self.kill_code.load(Ordering::Acquire)
    }

    /// Whether the queue was killed.
    pub(crate) fn is_killed(&self) -> bool {
        self.kill_code() != 0
    }

    /// Ready once the queue is killed ([`Stop::Killed`], first) or a close frame is
    /// queued ([`Stop::Closing`]). Only the socket task waits on it (one waker).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only looks at the state, which stays set.
    pub(crate) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<Stop> {
        if let Some(stop) = self.stop_now() {
            return Poll::Ready(stop);
        }
        self.stop.register(cx.waker());
        // A kill or close between the first look and the registration woke nobody.
        match self.stop_now() {
            Some(stop) => Poll::Ready(stop),
            None => Poll::Pending,
        }
    }

    /// [`WsQueue::poll_stopped`] as a future.
    pub(crate) async fn stopped(&self) -> Stop {
        std::future::poll_fn(|cx| self.poll_stopped(cx)).await
    }

    /// What [`WsQueue::stopped`] would answer now, `None` while the socket may go on.
    pub(crate) fn stop_now(&self) -> Option<Stop> {
        if self.is_killed() {
            Some(Stop::Killed)
        } else if self.close_code() != 0 {
            Some(Stop::Closing)
        } else {
            None
        }
    }

    /// Queues a frame within the bounds; past them the reader is too slow and the
    /// connection is killed (1013) rather than buffered without bound.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), OutboxError> {
        self.push_at(frame, Instant::now)
    }

    /// Queues a frame made of a head, a payload of its own and a tail (see
    /// [`WsOut::Around`]), within the same bounds as [`WsQueue::push`]: it counts in full.
    pub(crate) fn push_around(&self, pieces: [Bytes; 3]) -> Result<(), OutboxError> {
        self.push_at(WsOut::Around(Box::new(pieces)), Instant::now)
    }

    /// [`WsQueue::push`] with the clock as an argument (read only when over budget).
    pub(crate) fn push_at(
        &self,
        frame: impl Into<WsOut>,
        now: impl FnOnce() -> Instant,
    ) -> Result<(), OutboxError> {
        let frame = frame.into();
        // `kill` sets the code before cancelling: an atomic load answers "killed?"
        // without the token's lock, once per subscriber per broadcast.
        if self.kill_code.load(Ordering::Acquire) != 0 || self.finished.load(Ordering::Acquire) {
            return Err(OutboxError::Closed);
        }
        let mut items = self.items.lock().map_err(|_| OutboxError::Closed)?;
        if items.closing {
            return Err(OutboxError::Closed);
        }
        let progress = self.progress();
        if items.queue.len() >= self.capacity
            || items.bytes > self.hard_cap
            || (items.bytes > self.max_bytes && items.stuck_over_budget(progress, now()))
        {
            drop(items);
            self.kill(CLOSE_SLOW_READER);
            return Err(OutboxError::Closed);
        }
        items.bytes += frame.len();
        items.queue.push_back(frame);
        drop(items);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues a close frame after what is already queued; from then on nothing else is
    /// accepted (docs/protocol.md §1.7: once a disconnect reached a socket, nothing more
    /// is written to it). A second close is ignored.
    pub(crate) fn close(&self, code: u16) {
        if let Ok(mut items) = self.items.lock() {
            if items.closing {
                return;
            }
            items.closing = true;
            items.queue.push_back(WsOut::Close(close_payload(code, "")));
        }
        // Close codes are never 0 (RFC 6455 §7.4): 0 means "no close queued".
        self.close_code.store(code.max(1), Ordering::Release);
        self.finished.store(true, Ordering::Release);
        self.ready.notify_one();
        self.stop.wake();
    }

    /// The code of the close queued by [`WsQueue::close`].
    pub(crate) fn close_code(&self) -> u16 {
        self.close_code.load(Ordering::Acquire)
    }

    /// Queues the echo of the client's close frame (RFC 6455 §5.5.1), unless a close is
    /// already on its way.
    pub(crate) fn echo_close(&self, payload: Bytes) {
        if let Ok(mut items) = self.items.lock() {
            if items.closing {
                return;
            }
            items.closing = true;
            items.queue.push_back(WsOut::Close(payload));
        }
        self.finished.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// The socket task is done; the writer stops once the queue is empty.
    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// Whether the backlog is below half the bound: the socket task reads more from
    /// the client only then (backpressure).
    pub(crate) fn has_room(&self) -> bool {
        self.items.lock().is_ok_and(|items| {
            items.queue.len() <= self.capacity / 2 && items.bytes <= self.max_bytes / 2
        })
    }

    /// Moves up to `max` queued items into `out`; returns whether the socket finished.
    /// Their bytes still count until the writer reports them [`WsQueue::written`].
    pub(crate) fn take(&self, out: &mut Vec<WsOut>, max: usize) -> bool {
        if let Ok(mut items) = self.items.lock() {
            while out.len() < max {
                let Some(item) = items.queue.pop_front() else {
                    break;
                };
                if !matches!(item, WsOut::Close(_)) {
                    items.in_flight += item.len();
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

    /// Waits until the queue is killed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a kill stays set, and its wake-up is kept as a permit when nobody
    /// waits.
    pub(crate) async fn killed(&self) {
        while !self.is_killed() {
            self.kill_signal.notified().await;
        }
    }

    /// Waits until the writer wrote frames it had taken.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits; callers look at [`WsQueue::has_room`] afterwards.
    pub(crate) async fn space(&self) {
        self.space.notified().await;
    }
}
