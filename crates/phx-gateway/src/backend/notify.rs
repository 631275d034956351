//! Leave and disconnect notifications (docs/gateway.md, "notify"): queued without ever
//! blocking a socket, batched, sent with retries, dropped (and counted) when the queue
//! is full or the retries are spent.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

use super::{request_id, Backend, HookKind};
use crate::metrics;
use crate::protocol::NotifyRequest;

/// Where sockets drop their notifications. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Notifier {
    tx: mpsc::Sender<Value>,
}

impl Notifier {
    /// Starts the task that batches and sends.
    pub fn start(backend: Arc<Backend>, batch: usize, flush: Duration) -> Self {
        let settings = backend.settings(HookKind::Notify).clone();
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        tokio::spawn(run(
            backend,
            rx,
            batch.max(1),
            flush,
            settings.concurrency.max(1),
        ));
        Self { tx }
    }

    /// Queues one notification; never waits. A full queue drops it.
    pub fn send(&self, notification: Value) {
        match self.tx.try_send(notification) {
            Ok(()) => metrics::hook_queue("notify", self.tx.max_capacity() - self.tx.capacity()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::notification_dropped(1);
                tracing::warn!("notification queue full: notification dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

async fn run(
    backend: Arc<Backend>,
    mut rx: mpsc::Receiver<Value>,
    batch: usize,
    flush: Duration,
    concurrency: usize,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    while let Some(first) = rx.recv().await {
        let mut notifications = vec![first];
        let deadline = tokio::time::Instant::now() + flush;
        while notifications.len() < batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(n)) => notifications.push(n),
                Ok(None) | Err(_) => break,
            }
        }
        metrics::hook_queue("notify", rx.len());
        // At most `concurrency` batches out at once; the queue absorbs the rest.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let backend = backend.clone();
        tokio::spawn(async move {
            let id = request_id();
            let body = NotifyRequest {
                notifications: &notifications,
            };
            let sent = backend
                .call_with(HookKind::Notify, &body, &id, |_| Ok(()))
                .await;
            if let Err(error) = sent {
                metrics::notification_dropped(notifications.len() as u64);
                tracing::error!(request_id = %id, %error, count = notifications.len(), "notifications dropped after their retries");
            }
            drop(permit);
        });
    }
}
