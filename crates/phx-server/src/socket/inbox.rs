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

use super::SocketMsg;

#[derive(Debug, Default)]
pub(crate) struct Inbox {
    queue: Mutex<VecDeque<SocketMsg>>,
    ready: Notify,
    closed: AtomicBool,
}

impl Inbox {
    /// Queues a message; `Err` once the socket has ended.
    pub(crate) fn send(&self, msg: SocketMsg) -> Result<(), SocketMsg> {
        if self.closed.load(Ordering::Acquire) {
            return Err(msg);
        }
        match self.queue.lock() {
            Ok(mut queue) => queue.push_back(msg),
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
