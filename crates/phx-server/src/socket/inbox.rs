//! A socket's inbox: messages from outside its transport (intercepted broadcasts, infos,
//! `disconnect`).
//!
//! A queue that allocates nothing until a message arrives: most sockets never get one,
//! and a tokio unbounded channel would allocate a 32-slot block per socket up front
//! (about 1 KiB, a sizeable share of what one connection costs).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use std::sync::Arc;

use super::SocketMsg;
use crate::pubsub::{Broadcast, InstanceId, Mailbox};

/// Messages an inbox holds at most. A socket that cannot keep up with its intercepted
/// broadcasts and infos (its outbound queue is full, so it runs no callback) is closed
/// as a slow reader rather than queueing without bound.
pub(crate) const INBOX_CAPACITY: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Inbox {
    queue: Mutex<VecDeque<SocketMsg>>,
    ready: Notify,
    closed: AtomicBool,
    /// A message was refused for lack of room: the socket must close (1013).
    overflowed: AtomicBool,
}

impl Inbox {
    /// Queues a message; `Err` once the socket has ended.
    pub(crate) fn send(&self, msg: SocketMsg) -> Result<(), SocketMsg> {
        if self.closed.load(Ordering::Acquire) {
            return Err(msg);
        }
        match self.queue.lock() {
            Ok(mut queue) if queue.len() < INBOX_CAPACITY => queue.push_back(msg),
            Ok(_) => {
                self.overflowed.store(true, Ordering::Release);
                self.ready.notify_one();
                return Err(msg);
            }
            Err(_) => return Err(msg),
        }
        self.ready.notify_one();
        Ok(())
    }

    fn pop(&self) -> Option<SocketMsg> {
        let mut queue = self.queue.lock().ok()?;
        let msg = queue.pop_front();
        if queue.is_empty() && queue.capacity() > 16 {
            queue.shrink_to(0);
        }
        msg
    }

    /// The next message.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is only taken from the queue when this returns it, and a
    /// wake-up consumed by a dropped call is made up for because every call looks at the
    /// queue before waiting.
    pub(crate) async fn recv(&self) -> SocketMsg {
        loop {
            let notified = self.ready.notified();
            if self.overflowed.load(Ordering::Acquire) {
                return SocketMsg::Overflowed;
            }
            if let Some(msg) = self.pop() {
                return msg;
            }
            notified.await;
        }
    }

    /// Refuses further messages and drops the queued ones.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut queue) = self.queue.lock() {
            queue.clear();
        }
    }
}

impl Mailbox for Inbox {
    fn intercepted(&self, instance: InstanceId, broadcast: Arc<Broadcast>) {
        let _ = self.send(SocketMsg::Intercepted(instance, broadcast));
    }

    fn disconnect(&self) {
        let _ = self.send(SocketMsg::Disconnect);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[test]
    fn an_inbox_holds_exactly_its_capacity_then_overflows() {
        let inbox = Inbox::default();
        for n in 0..INBOX_CAPACITY {
            assert!(
                inbox.send(SocketMsg::Disconnect).is_ok(),
                "message {n} fits"
            );
        }
        assert!(
            inbox
                .recv()
                .now_or_never()
                .is_some_and(|m| matches!(m, SocketMsg::Disconnect)),
            "a full inbox still hands out its messages"
        );
        assert!(
            inbox.send(SocketMsg::Disconnect).is_ok(),
            "taking one made room"
        );
        assert!(
            inbox.send(SocketMsg::Disconnect).is_err(),
            "one past the capacity is refused"
        );
        assert!(
            matches!(inbox.recv().now_or_never(), Some(SocketMsg::Overflowed)),
            "and the socket is told it overflowed before anything else"
        );
    }

    #[test]
    fn a_closed_inbox_refuses_and_drops_what_it_held() {
        let inbox = Inbox::default();
        assert!(inbox.send(SocketMsg::Disconnect).is_ok());
        inbox.close();
        assert!(inbox.send(SocketMsg::Disconnect).is_err());
        assert!(
            inbox.recv().now_or_never().is_none(),
            "nothing left to take"
        );
    }
}
