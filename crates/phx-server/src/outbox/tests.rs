//! The WebSocket write queue's bounds: frames and bytes, measured on what is queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::websocket::{Stop, SLOW_READER_GRACE};
use super::*;

fn frame(len: usize) -> Bytes {
    Bytes::from(vec![b'x'; len])
}

/// Takes everything queued and writes it, as the writer does; returns the frame sizes.
fn drain(queue: &WsQueue) -> Vec<usize> {
    let mut items = Vec::new();
    queue.take(&mut items, usize::MAX);
    let lens: Vec<usize> = items.iter().map(WsOut::len).collect();
    let frames: usize = items
        .iter()
        .filter(|item| !matches!(item, WsOut::Close(_)))
        .map(WsOut::len)
        .sum();
    queue.written(frames);
    lens
}

/// Takes up to `max` items and writes them; returns their bytes.
fn write(queue: &WsQueue, max: usize) -> usize {
    let mut items = Vec::new();
    queue.take(&mut items, max);
    let bytes = items
        .iter()
        .filter(|item| !matches!(item, WsOut::Close(_)))
        .map(WsOut::len)
        .sum();
    queue.written(bytes);
    bytes
}

#[test]
fn a_backlog_within_the_budget_is_queued_and_a_frame_over_it_still_fits_once() {
    // Budget 10, largest message 0: hard cap 40.
    let queue = WsQueue::new(100, 10, 0);
    assert_eq!(queue.push(frame(4)), Ok(()));
    assert_eq!(queue.push(frame(6)), Ok(()), "4 + 6 = the budget");
    assert_eq!(
        queue.push(frame(30)),
        Ok(()),
        "the backlog was within the budget"
    );
    assert_eq!(queue.kill_code(), 0);
    assert_eq!(drain(&queue), vec![4, 6, 30]);
}

#[test]
fn a_lone_frame_larger_than_the_budget_reaches_a_client_that_reads() {
    let queue = WsQueue::new(100, 10, 0);
    assert_eq!(queue.push(frame(500)), Ok(()));
    assert_eq!(queue.kill_code(), 0, "a client that reads gets it");
    assert_eq!(drain(&queue), vec![500]);
    assert_eq!(queue.push(frame(500)), Ok(()), "and the next one");
}

#[test]
fn past_the_hard_cap_the_reader_is_closed_at_once() {
    // Hard cap: 4 × 10 + 5 = 45 bytes of backlog.
    let queue = WsQueue::new(100, 10, 5);
    assert_eq!(queue.push(frame(46)), Ok(()), "an empty queue takes it");
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
    assert_eq!(queue.kill_code(), CLOSE_SLOW_READER);
    assert!(queue.is_killed());
}

#[test]
fn over_the_budget_is_tolerated_while_the_writer_writes() {
    let queue = WsQueue::new(100, 10, 100);
    let t0 = Instant::now();
    let late = t0 + SLOW_READER_GRACE + Duration::from_secs(1);
    assert_eq!(queue.push_at(frame(20), || t0), Ok(()));
    // Over the budget: the grace starts.
    assert_eq!(queue.push_at(frame(20), || t0), Ok(()));
    // The writer writes part of what it took: it progresses, so later pushes start a
    // new grace.
    let mut items = Vec::new();
    queue.take(&mut items, 1);
    queue.progressed();
    assert_eq!(queue.push_at(frame(5), || late), Ok(()));
    assert_eq!(queue.kill_code(), 0);
}

#[test]
fn frames_the_writer_took_count_until_they_are_written() {
    // Budget 10: backpressure above 5 bytes.
    let queue = WsQueue::new(100, 10, 0);
    assert_eq!(queue.push(frame(8)), Ok(()));
    let mut items = Vec::new();
    queue.take(&mut items, usize::MAX);
    assert_eq!(queue.held_bytes(), 8, "taken, not written: still held");
    assert!(!queue.has_room(), "a blocked write still holds its frames");
    queue.written(8);
    assert_eq!(queue.held_bytes(), 0);
    assert!(queue.has_room());
}

#[test]
fn a_writer_stuck_over_the_budget_finds_out_itself() {
    let queue = WsQueue::new(100, 10, 100);
    let t0 = Instant::now();
    assert_eq!(queue.push_at(frame(30), || t0), Ok(()));
    let mut items = Vec::new();
    queue.take(&mut items, usize::MAX);
    // Nothing more is pushed: the writer's own looks start and end the grace.
    assert!(!queue.stuck_over_budget(t0));
    assert!(!queue.stuck_over_budget(t0 + SLOW_READER_GRACE));
    assert!(queue.stuck_over_budget(t0 + SLOW_READER_GRACE + Duration::from_millis(1)));
    // Under the budget it never is.
    let queue = WsQueue::new(100, 100, 100);
    queue.push_at(frame(30), || t0).unwrap();
    queue.stuck_over_budget(t0);
    assert!(!queue.stuck_over_budget(t0 + SLOW_READER_GRACE * 10));
}

#[test]
fn a_kill_lets_go_of_what_is_queued_at_once() {
    let queue = WsQueue::new(100, 1 << 20, 0);
    queue.push(frame(100)).unwrap();
    let mut items = Vec::new();
    queue.take(&mut items, 1);
    queue.push(frame(50)).unwrap();
    queue.kill(CLOSE_SLOW_READER);
    assert_eq!(queue.held_bytes(), 100, "only what the writer still holds");
}

#[test]
fn frames_made_for_a_socket_count_once_in_the_endpoint_total() {
    let memory = OutboundMemory::new(usize::MAX);
    let queues: Vec<WsQueue> = (0..3)
        .map(|_| WsQueue::with_memory(100, 1 << 20, 0, memory.clone()))
        .collect();
    let shared = queues[0].frame(OpCode::Text, &[b'x'; 100]);
    for queue in &queues {
        queue.push(shared.clone()).unwrap();
    }
    drop(shared);
    assert_eq!(memory.held(), 102, "one frame, three queues");
    assert_eq!(queues[0].held_bytes(), 102, "each socket holds it in full");
    drain(&queues[0]);
    drain(&queues[1]);
    assert_eq!(memory.held(), 102, "the third still holds it");
    queues[2].kill(CLOSE_SLOW_READER);
    assert_eq!(memory.held(), 0);
}

#[test]
fn over_the_budget_with_a_stuck_writer_for_the_grace_period_is_a_slow_reader() {
    let queue = WsQueue::new(100, 10, 100);
    let t0 = Instant::now();
    assert_eq!(queue.push_at(frame(20), || t0), Ok(()));
    assert_eq!(queue.push_at(frame(5), || t0), Ok(()), "the grace starts");
    let within = t0 + SLOW_READER_GRACE - Duration::from_millis(1);
    assert_eq!(queue.push_at(frame(5), || within), Ok(()));
    let after = t0 + SLOW_READER_GRACE + Duration::from_millis(1);
    assert_eq!(queue.push_at(frame(5), || after), Err(OutboxError::Closed));
    assert_eq!(queue.kill_code(), CLOSE_SLOW_READER);
}

#[test]
fn frames_taken_by_the_writer_return_their_bytes_to_the_budget() {
    let queue = WsQueue::new(100, 10, 0);
    for _ in 0..5 {
        assert_eq!(queue.push(frame(6)), Ok(()));
        assert_eq!(queue.push(frame(4)), Ok(()));
        assert!(queue.has_room() || drain(&queue).len() == 2);
        drain(&queue);
        assert!(queue.has_room());
    }
    assert_eq!(queue.kill_code(), 0);
}

#[test]
fn backpressure_starts_at_half_the_budget_or_half_the_frames() {
    let queue = WsQueue::new(100, 10, 0);
    queue.push(frame(5)).unwrap();
    assert!(queue.has_room(), "5 of 10 bytes: at half, still room");
    queue.push(frame(1)).unwrap();
    assert!(!queue.has_room(), "over half the bytes");
    drain(&queue);
    assert!(queue.has_room());
    let queue = WsQueue::new(4, 1 << 20, 0);
    queue.push(frame(1)).unwrap();
    queue.push(frame(1)).unwrap();
    assert!(queue.has_room(), "2 of 4 frames");
    queue.push(frame(1)).unwrap();
    assert!(!queue.has_room(), "3 of 4 frames");
}

#[test]
fn the_frame_count_is_bounded_too() {
    let queue = WsQueue::new(2, 1 << 20, 0);
    assert_eq!(queue.push(frame(1)), Ok(()));
    assert_eq!(queue.push(frame(1)), Ok(()));
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
    assert_eq!(queue.kill_code(), CLOSE_SLOW_READER);
}

#[test]
fn take_moves_at_most_the_asked_number_of_items_in_order() {
    let queue = WsQueue::new(100, 1 << 20, 0);
    for len in 1..=5 {
        queue.push(frame(len)).unwrap();
    }
    let mut items = Vec::new();
    assert!(!queue.take(&mut items, 3));
    let lens: Vec<usize> = items.iter().map(WsOut::len).collect();
    assert_eq!(lens, vec![1, 2, 3]);
    assert_eq!(drain(&queue), vec![4, 5]);
}

#[test]
fn a_close_goes_after_what_is_queued_and_nothing_follows_it() {
    let queue = WsQueue::new(100, 1 << 20, 0);
    queue.push(frame(3)).unwrap();
    queue.close(1001);
    queue.close(1000);
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
    assert_eq!(queue.close_code(), 1001, "the first close wins");
    assert_eq!(queue.stop_now(), Some(Stop::Closing));
    // The frame, then the close payload (2-byte code).
    assert_eq!(drain(&queue), vec![3, 2]);
}

#[test]
fn nothing_is_queued_once_the_socket_finished() {
    let queue = WsQueue::new(100, 1 << 20, 0);
    queue.push(frame(2)).unwrap();
    queue.finish();
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
    let mut items = Vec::new();
    assert!(
        queue.take(&mut items, 10),
        "the writer learns the socket finished"
    );
    assert_eq!(items.len(), 1);
}

#[test]
fn nothing_is_queued_once_the_connection_was_killed_and_the_first_code_wins() {
    let queue = WsQueue::new(100, 1 << 20, 0);
    queue.push(frame(2)).unwrap();
    queue.kill(1001);
    queue.kill(CLOSE_SLOW_READER);
    assert_eq!(queue.kill_code(), 1001);
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
}

#[test]
fn a_backlog_of_exactly_the_hard_cap_still_takes_a_frame() {
    // Hard cap: 4 × 10 + 5 = 45 bytes; the clock never moves, so only the cap counts.
    let queue = WsQueue::new(100, 10, 5);
    let t0 = Instant::now();
    assert_eq!(queue.push_at(frame(45), || t0), Ok(()));
    assert_eq!(
        queue.push_at(frame(1), || t0),
        Ok(()),
        "45 queued is not over the cap"
    );
    assert_eq!(queue.kill_code(), 0);
    assert_eq!(queue.push_at(frame(1), || t0), Err(OutboxError::Closed));
}

#[test]
fn the_slow_reader_grace_is_not_over_at_exactly_its_length() {
    let queue = WsQueue::new(100, 10, 100);
    let t0 = Instant::now();
    assert_eq!(queue.push_at(frame(20), || t0), Ok(()));
    assert_eq!(queue.push_at(frame(5), || t0), Ok(()), "the grace starts");
    let exactly = t0 + SLOW_READER_GRACE;
    assert_eq!(queue.push_at(frame(5), || exactly), Ok(()));
    assert_eq!(queue.kill_code(), 0);
}

#[test]
fn a_backlog_of_exactly_the_budget_does_not_start_the_grace() {
    let queue = WsQueue::new(100, 10, 100);
    let t0 = Instant::now();
    assert_eq!(queue.push_at(frame(10), || t0), Ok(()));
    // 10 queued is the budget, not over it: no grace starts here.
    assert_eq!(queue.push_at(frame(1), || t0), Ok(()));
    // Over the budget for the first time now, long after t0: the grace starts now.
    let later = t0 + SLOW_READER_GRACE + Duration::from_millis(1);
    assert_eq!(queue.push_at(frame(1), || later), Ok(()));
    assert_eq!(queue.kill_code(), 0);
}

#[test]
fn writing_one_frame_gives_back_exactly_its_bytes() {
    // Budget 10: backpressure above 5 bytes.
    let queue = WsQueue::new(100, 10, 0);
    assert_eq!(queue.push(frame(4)), Ok(()));
    assert_eq!(queue.push(frame(6)), Ok(()));
    assert_eq!(write(&queue, 1), 4);
    assert!(
        !queue.has_room(),
        "6 bytes still queued: over half the budget"
    );
    assert_eq!(write(&queue, 1), 6);
    assert!(queue.has_room());
}

#[test]
fn the_clients_close_is_echoed_after_what_is_queued_and_ends_the_queue() {
    let queue = WsQueue::new(100, 1 << 20, 0);
    assert_eq!(queue.push(frame(3)), Ok(()));
    queue.echo_close(Bytes::from_static(b"\x03\xe8bye"));
    let mut out = Vec::new();
    assert!(queue.take(&mut out, usize::MAX), "the socket is finished");
    assert!(
        matches!(&out[..], [WsOut::Frame(f), WsOut::Close(c)] if f.len() == 3 && &c[..] == b"\x03\xe8bye")
    );
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
}

#[tokio::test]
async fn writing_frames_wakes_a_socket_waiting_for_space() {
    let queue = Arc::new(WsQueue::new(100, 10, 0));
    assert_eq!(queue.push(frame(8)), Ok(()));
    let waiting = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.space().await })
    };
    tokio::task::yield_now().await;
    write(&queue, usize::MAX);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("woken once the writer wrote frames")
        .expect("the waiting task ends");
}

#[tokio::test]
async fn the_socket_task_is_woken_by_a_kill_or_a_close_and_a_kill_wins() {
    let queue = Arc::new(WsQueue::new(100, 1 << 20, 0));
    assert_eq!(queue.stop_now(), None);
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.stopped().await }
    });
    tokio::task::yield_now().await;
    queue.close(1000);
    assert_eq!(waiting.await.unwrap(), Stop::Closing);

    let queue = Arc::new(WsQueue::new(100, 1 << 20, 0));
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.stopped().await }
    });
    tokio::task::yield_now().await;
    queue.kill(CLOSE_SLOW_READER);
    assert_eq!(waiting.await.unwrap(), Stop::Killed);
    queue.close(1000);
    assert_eq!(queue.stop_now(), Some(Stop::Killed), "a kill goes first");
}

#[tokio::test]
async fn a_kill_wakes_the_writer_waiting_for_frames() {
    let queue = Arc::new(WsQueue::new(100, 1 << 20, 0));
    let writer = tokio::spawn({
        let queue = queue.clone();
        async move {
            queue.ready().await;
            queue.is_killed()
        }
    });
    tokio::task::yield_now().await;
    queue.kill(CLOSE_SLOW_READER);
    assert!(writer.await.unwrap(), "woken, and it sees the kill");
}

/// Counts its wake-ups.
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_writer_blocked_in_a_write_is_woken_by_a_kill_and_not_by_pushes() {
    use std::future::Future;
    use std::sync::atomic::Ordering::SeqCst;
    use std::task::{Context, Waker};

    let queue = WsQueue::new(100, 1 << 20, 0);
    let wakes = Arc::new(Wakes(Default::default()));
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    let mut killed = std::pin::pin!(queue.killed());
    assert!(killed.as_mut().poll(&mut cx).is_pending());
    queue.push(frame(3)).unwrap();
    queue.push(frame(3)).unwrap();
    assert_eq!(wakes.0.load(SeqCst), 0, "pushes do not wake it");
    queue.kill(CLOSE_SLOW_READER);
    assert_eq!(wakes.0.load(SeqCst), 1, "a kill does");
    assert!(killed.as_mut().poll(&mut cx).is_ready());
}
