//! A long-poll session's buffer: what the socket wrote since the last GET (§7.3),
//! bounded in messages and in bytes like a WebSocket's write queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::OutboxError;

/// Messages waiting for the next GET of one session.
#[derive(Debug)]
pub(crate) struct LongPollBuffer {
    pending: Mutex<Pending>,
    notify: Notify,
    max: usize,
    max_bytes: usize,
    /// Cancelled when the session ends, for whatever reason.
    ended: CancellationToken,
    /// Mirrors `ended` without its lock, for the per-subscriber check in `push`.
    ended_flag: AtomicBool,
}

#[derive(Debug, Default)]
struct Pending {
    queue: VecDeque<Bytes>,
    bytes: usize,
}

impl LongPollBuffer {
    /// A buffer without a byte budget, for unit tests that use it as a frame sink.
    #[cfg(test)]
    pub(crate) fn new(max: usize) -> Self {
        Self::bounded(max, usize::MAX)
    }

    /// A session's buffer: at most `max` messages and, past the first, `max_bytes`.
    pub(crate) fn bounded(max: usize, max_bytes: usize) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
            max,
            max_bytes,
            ended: CancellationToken::new(),
            ended_flag: AtomicBool::new(false),
        }
    }

    /// Ends the session (cap exceeded, malformed input, inactivity, socket closed).
    pub(crate) fn end(&self) {
        self.ended_flag.store(true, Ordering::Release);
        self.ended.cancel();
    }

    /// Cancelled when the session ends.
    pub(crate) fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Completes after the next push. Create it before [`LongPollBuffer::take`] so a
    /// push in between is not missed.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Buffers a frame within the bounds; past them the client does not poll fast
    /// enough and its session is ended rather than buffered without bound.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), OutboxError> {
        if self.ended_flag.load(Ordering::Acquire) {
            return Err(OutboxError::Closed);
        }
        let mut pending = self.pending.lock().map_err(|_| OutboxError::Closed)?;
        // A frame is accepted while the backlog before it is within the budget, so a
        // message larger than the budget (and the reply written right after it) still
        // reaches a client that polls; the buffer holds at most the budget plus one
        // frame.
        let over_bytes = pending.bytes > self.max_bytes;
        if pending.queue.len() >= self.max || over_bytes {
            let (messages, bytes) = (pending.queue.len(), pending.bytes);
            drop(pending);
            tracing::warn!(
                messages,
                bytes,
                max = self.max,
                max_bytes = self.max_bytes,
                "long-poll buffer full: ending the session"
            );
            self.end();
            return Err(OutboxError::Closed);
        }
        pending.bytes += frame.len();
        pending.queue.push_back(frame);
        drop(pending);
        self.notify.notify_one();
        Ok(())
    }

    /// Everything buffered, oldest first. The buffer gives its allocation away with
    /// the messages, so a session that once held a burst does not keep its capacity.
    pub(crate) fn take(&self) -> Vec<Bytes> {
        self.pending
            .lock()
            .map(|mut pending| Vec::from(std::mem::take(&mut *pending).queue))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn a_backlog_over_the_byte_budget_ends_the_session() {
        let buffer = LongPollBuffer::bounded(1000, 100);
        buffer.push(frame(60)).unwrap();
        buffer.push(frame(40)).unwrap();
        // At the budget exactly: one more frame is still accepted…
        buffer.push(frame(30)).unwrap();
        // …and once the backlog is over it, the session ends.
        assert_eq!(buffer.push(frame(1)), Err(OutboxError::Closed));
        assert!(buffer.ended().is_cancelled());
        // Nothing more is buffered once the session ended.
        assert_eq!(buffer.push(frame(1)), Err(OutboxError::Closed));
        assert_eq!(buffer.take().len(), 3);
    }

    #[test]
    fn a_frame_larger_than_the_budget_is_delivered() {
        let buffer = LongPollBuffer::bounded(1000, 100);
        buffer.push(frame(500)).unwrap();
        assert!(!buffer.ended().is_cancelled());
        assert_eq!(buffer.take().len(), 1);
        // Taking empties the budget: the next large frame fits again, a second does not.
        buffer.push(frame(500)).unwrap();
        assert_eq!(buffer.push(frame(1)), Err(OutboxError::Closed));
    }

    #[test]
    fn the_message_cap_still_ends_the_session() {
        let buffer = LongPollBuffer::bounded(3, usize::MAX);
        for _ in 0..3 {
            buffer.push(frame(1)).unwrap();
        }
        assert_eq!(buffer.push(frame(1)), Err(OutboxError::Closed));
        assert!(buffer.ended().is_cancelled());
    }

    #[test]
    fn taking_gives_the_allocation_away() {
        let buffer = LongPollBuffer::bounded(10_000, usize::MAX);
        for _ in 0..5000 {
            buffer.push(frame(1)).unwrap();
        }
        assert_eq!(buffer.take().len(), 5000);
        let pending = buffer.pending.lock().unwrap();
        assert_eq!(pending.queue.capacity(), 0);
        assert_eq!(pending.bytes, 0);
    }
}
