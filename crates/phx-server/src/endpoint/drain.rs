//! Graceful drain, like Phoenix's socket drainer: on shutdown the endpoint stops
//! accepting, turns not ready, waits one batch interval (so load balancers see it not
//! ready), then closes its sockets a batch at a time with 1012 ("service restart") so
//! clients reconnect elsewhere gradually instead of all at once.

use std::time::Duration;

use tokio::time::Instant;

use super::Endpoint;

/// How a shutdown closes sockets (Phoenix's `drainer: [batch_size:, batch_interval:,
/// shutdown:]`, same defaults).
///
/// ```
/// use std::time::Duration;
/// let endpoint = phx_server::Endpoint::builder()
///     .drain(phx_server::Drain::new(1_000, Duration::from_millis(500), Duration::from_secs(20)))
///     .build();
/// # let _ = endpoint;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drain {
    /// Sockets closed per batch.
    pub batch_size: usize,
    /// Pause between batches.
    pub batch_interval: Duration,
    /// The whole drain's budget; sockets left when it runs out are closed at once.
    pub budget: Duration,
}

impl Drain {
    /// `batch_size` sockets every `batch_interval`, within `budget`.
    pub fn new(batch_size: usize, batch_interval: Duration, budget: Duration) -> Self {
        Self {
            batch_size: batch_size.max(1),
            batch_interval,
            budget,
        }
    }
}

impl Default for Drain {
    /// 10 000 sockets every 2 s within 30 s, as Phoenix.
    fn default() -> Self {
        Self::new(10_000, Duration::from_secs(2), Duration::from_secs(30))
    }
}

/// The drain's outcome, for the log.
#[derive(Debug)]
pub(crate) struct Drained {
    pub(crate) closed: usize,
    pub(crate) batches: usize,
    pub(crate) left: usize,
}

impl Endpoint {
    /// Closes every socket with 1012 in batches (see [`Drain`]); returns what it did.
    pub(crate) async fn drain_sockets(&self, deadline: Instant) -> Drained {
        let plan = self.shared.drain;
        let sockets = &self.shared.services.sockets;
        let total = sockets.len();
        tracing::info!(
            sockets = total,
            batch_size = plan.batch_size,
            batch_interval_ms = plan.batch_interval.as_millis() as u64,
            "draining: closing sockets with 1012 in batches"
        );
        let mut drained = Drained {
            closed: 0,
            batches: 0,
            left: 0,
        };
        // Readiness is already false: one interval lets load balancers notice before
        // the first sockets close.
        tokio::time::sleep_until(deadline.min(Instant::now() + plan.batch_interval)).await;
        loop {
            let batch = sockets.take(plan.batch_size);
            if batch.is_empty() {
                break;
            }
            drained.batches += 1;
            drained.closed += batch.len();
            for outbox in batch {
                outbox.close(CLOSE_RESTART);
            }
            tracing::debug!(
                batch = drained.batches,
                closed = drained.closed,
                "drain batch closed"
            );
            if sockets.len() == 0 || Instant::now() + plan.batch_interval >= deadline {
                break;
            }
            tokio::time::sleep(plan.batch_interval).await;
        }
        drained.left = sockets.len();
        drained
    }
}

/// Close code of a drain: 1012, service restart.
pub(crate) const CLOSE_RESTART: u16 = 1012;
