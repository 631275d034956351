//! Keeping the outbound frames of all WebSockets within the endpoint's total
//! ([`OutboundMemory`]): past it, the sockets that hold the most while their writers
//! write nothing are closed with 1013, largest first, until what they hold covers the
//! excess. A socket whose writer progresses is never closed for it, however much it
//! holds: only clients that stopped reading pay.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::outbox::{OutboundMemory, WsQueue, CLOSE_SLOW_READER};
use crate::transport::Services;

/// How long a socket must hold frames without writing a byte to be closed for the total.
/// Long enough that a client that reads (a slow mobile link included: its kernel buffer
/// drains and the writer writes again) is never taken for a stuck one.
pub(crate) const STALL: Duration = Duration::from_secs(1);

/// Waits while the total is within its bound, and sheds stuck sockets while it is over.
/// Ends with the endpoint (it holds only a weak reference to it).
pub(crate) async fn keep_within_total(services: Weak<Services>, memory: Arc<OutboundMemory>) {
    loop {
        tokio::select! {
            () = memory.over() => {}
            // An endpoint that is gone makes no more frames: look now and then.
            () = tokio::time::sleep(Duration::from_secs(10)) => {
                if services.strong_count() == 0 {
                    return;
                }
                continue;
            }
        }
        let mut warned = false;
        while memory.held() > memory.max() {
            // Two looks `STALL` apart: a socket that held bytes at both and made no
            // write in between is stuck.
            let Some(live) = services.upgrade() else {
                return;
            };
            let before: Vec<(Weak<WsQueue>, u64)> = live
                .sockets
                .websocket_queues()
                .iter()
                .filter(|queue| queue.held_bytes() > 0)
                .map(|queue| (Arc::downgrade(queue), queue.progress()))
                .collect();
            drop(live);
            tokio::time::sleep(STALL).await;
            let excess = memory.held().saturating_sub(memory.max());
            if excess == 0 {
                break;
            }
            let mut stuck: Vec<(usize, Arc<WsQueue>)> = before
                .into_iter()
                .filter_map(|(queue, seen)| {
                    let queue = queue.upgrade()?;
                    let held = queue.held_bytes();
                    (held > 0 && queue.progress() == seen && !queue.is_killed())
                        .then_some((held, queue))
                })
                .collect();
            let (closed, freed) = shed(&mut stuck, excess);
            if closed > 0 {
                tracing::warn!(
                    closed,
                    freed_bytes = freed,
                    total_bytes = memory.held(),
                    max_bytes = memory.max(),
                    "outbound frames over the endpoint's total: closed the sockets holding \
                     the most without reading (1013)"
                );
            } else if !warned {
                warned = true;
                tracing::warn!(
                    total_bytes = memory.held(),
                    max_bytes = memory.max(),
                    "outbound frames over the endpoint's total, but every socket holding \
                     them is reading: none closed"
                );
            }
        }
    }
}

/// Closes the largest of `stuck` (bytes held, queue) until what they hold covers
/// `excess`; returns how many were closed and what they held.
fn shed(stuck: &mut [(usize, Arc<WsQueue>)], excess: usize) -> (usize, usize) {
    stuck.sort_by_key(|(held, _)| std::cmp::Reverse(*held));
    let (mut closed, mut freed) = (0, 0);
    for (held, queue) in stuck.iter() {
        if freed >= excess {
            break;
        }
        queue.kill(CLOSE_SLOW_READER);
        freed += held;
        closed += 1;
    }
    (closed, freed)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn the_largest_holders_go_first_and_only_as_many_as_cover_the_excess() {
        let queues: Vec<Arc<WsQueue>> = [10, 50, 30, 5]
            .into_iter()
            .map(|len| {
                let queue = Arc::new(WsQueue::new(100, 1 << 20, 0));
                queue.push(Bytes::from(vec![0u8; len])).unwrap();
                queue
            })
            .collect();
        let mut stuck: Vec<(usize, Arc<WsQueue>)> =
            queues.iter().map(|q| (q.held_bytes(), q.clone())).collect();
        assert_eq!(shed(&mut stuck, 60), (2, 80), "50 then 30 cover 60");
        let killed: Vec<bool> = queues.iter().map(|q| q.is_killed()).collect();
        assert_eq!(killed, [false, true, true, false]);
        assert_eq!(queues[1].kill_code(), CLOSE_SLOW_READER);
    }
}
