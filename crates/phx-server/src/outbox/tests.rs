//! The WebSocket write queue's bounds: frames and bytes, measured on what is queued.

use bytes::Bytes;

use super::*;

fn frame(len: usize) -> Bytes {
    Bytes::from(vec![b'x'; len])
}

/// Takes everything queued; returns the frame sizes.
fn drain(queue: &WsQueue) -> Vec<usize> {
    let mut items = Vec::new();
    queue.take(&mut items, usize::MAX);
    items
        .iter()
        .map(|item| match item {
            WsOut::Frame(f) | WsOut::Close(f) => f.len(),
        })
        .collect()
}

#[test]
fn a_backlog_exactly_at_the_byte_budget_is_queued_and_one_byte_more_kills() {
    let queue = WsQueue::new(100, 10);
    assert_eq!(queue.push(frame(4)), Ok(()));
    assert_eq!(queue.push(frame(6)), Ok(()), "4 + 6 = the budget");
    assert_eq!(queue.kill_code(), 0);
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
    assert_eq!(queue.kill_code(), CLOSE_SLOW_READER);
    assert!(queue.killed().is_cancelled());
}

#[test]
fn a_lone_frame_larger_than_the_byte_budget_still_fits_an_empty_queue() {
    let queue = WsQueue::new(100, 10);
    assert_eq!(queue.push(frame(50)), Ok(()));
    assert_eq!(queue.kill_code(), 0, "a client that reads gets it");
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed), "a backlog");
    assert_eq!(queue.kill_code(), CLOSE_SLOW_READER);
}

#[test]
fn frames_taken_by_the_writer_return_their_bytes_to_the_budget() {
    let queue = WsQueue::new(100, 10);
    for _ in 0..5 {
        assert_eq!(queue.push(frame(6)), Ok(()));
        assert_eq!(queue.push(frame(4)), Ok(()));
        assert_eq!(drain(&queue), vec![6, 4]);
    }
    assert_eq!(queue.kill_code(), 0);
}

#[test]
fn frames_still_queued_after_a_partial_take_keep_counting() {
    let queue = WsQueue::new(100, 10);
    queue.push(frame(2)).unwrap();
    queue.push(frame(8)).unwrap();
    let mut items = Vec::new();
    queue.take(&mut items, 1);
    assert_eq!(items.len(), 1);
    assert_eq!(queue.push(frame(2)), Ok(()), "8 + 2 = the budget");
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
}

#[test]
fn the_frame_count_is_bounded_too() {
    let queue = WsQueue::new(2, 1 << 20);
    assert_eq!(queue.push(frame(1)), Ok(()));
    assert_eq!(queue.push(frame(1)), Ok(()));
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
    assert_eq!(queue.kill_code(), CLOSE_SLOW_READER);
}

#[test]
fn take_moves_at_most_the_asked_number_of_items_in_order() {
    let queue = WsQueue::new(100, 1 << 20);
    for len in 1..=5 {
        queue.push(frame(len)).unwrap();
    }
    let mut items = Vec::new();
    assert!(!queue.take(&mut items, 2), "not finished");
    assert_eq!(items.len(), 2);
    assert_eq!(drain(&queue), vec![3, 4, 5]);
}

#[test]
fn nothing_is_queued_once_the_socket_finished() {
    let queue = WsQueue::new(100, 1 << 20);
    queue.push(frame(1)).unwrap();
    queue.finish();
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
    assert_eq!(queue.kill_code(), 0, "finishing is not killing");
    let mut items = Vec::new();
    assert!(
        queue.take(&mut items, 10),
        "the writer learns the socket finished"
    );
    assert_eq!(items.len(), 1, "what was queued before is still written");
}

#[test]
fn nothing_is_queued_once_the_connection_was_killed_and_the_first_code_wins() {
    let queue = WsQueue::new(100, 1 << 20);
    queue.kill(1001);
    queue.kill(CLOSE_SLOW_READER);
    assert_eq!(queue.kill_code(), 1001);
    assert_eq!(queue.push(frame(1)), Err(OutboxError::Closed));
    // Protocol-mandated frames (close echoes, pongs) still go out.
    queue.push_control(WsOut::Close(close_payload(1001, "")));
    assert_eq!(drain(&queue), vec![2]);
}
