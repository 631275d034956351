//! The queue's rules, driven directly: turns, bounds, push-out, and permits that stay
//! with their hash.

use super::*;

use std::sync::mpsc;

fn v4(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 1, last])
}

/// Holds the one permit with a hash that waits for `release`; returns when running.
async fn hold(queue: &HashQueue) -> (mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, wait) = mpsc::channel::<()>();
    let (started, running) = oneshot::channel();
    let q = queue.clone();
    let task = tokio::spawn(async move {
        q.run(v4(250), move |_| {
            let _ = started.send(());
            let _ = wait.recv();
        })
        .await
        .unwrap();
    });
    running.await.unwrap();
    (release, task)
}

#[test]
fn ipv6_groups_are_48s_and_ipv4_addresses_stand_alone() {
    let a: IpAddr = "2001:db8:1:ff00::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:3::9".parse().unwrap();
    let other: IpAddr = "2001:db8:2::1".parse().unwrap();
    assert_eq!(fairness_group(a), fairness_group(b));
    assert_ne!(fairness_group(a), fairness_group(other));
    assert_eq!(fairness_group(a), "2001:db8:1::".parse::<IpAddr>().unwrap());
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    assert_eq!(
        fairness_group(mapped),
        "192.0.2.7".parse::<IpAddr>().unwrap()
    );
    assert_ne!(fairness_group(v4(1)), fairness_group(v4(2)));
}

#[test]
fn retry_seconds_round_up_and_are_at_least_one() {
    assert_eq!(retry_secs(Duration::ZERO), 1);
    assert_eq!(retry_secs(Duration::from_millis(1)), 1);
    assert_eq!(retry_secs(Duration::from_millis(1001)), 2);
    assert_eq!(retry_secs(Duration::from_secs(42)), 42);
}

#[tokio::test]
async fn a_free_permit_goes_to_the_groups_in_turn() {
    let queue = HashQueue::new(HashLimits {
        permits: 1,
        queue: 100,
        queue_per_group: 10,
    });
    let (release, holder) = hold(&queue).await;
    // Group 1 queues five, then groups 2 and 3 one each.
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for (n, group) in [1, 1, 1, 1, 1, 2, 3].into_iter().enumerate() {
        let q = queue.clone();
        let done_tx = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            q.run(v4(group), move |_| done_tx.send((n, group)).unwrap())
                .await
                .unwrap();
        }));
        // Each one queued before the next (their order is the test).
        while queue.waiting() < n + 1 {
            tokio::task::yield_now().await;
        }
    }
    release.send(()).unwrap();
    holder.await.unwrap();
    let mut order = Vec::new();
    for _ in 0..7 {
        order.push(done.recv().await.unwrap().1);
    }
    // Round robin: 2 and 3 are served after one of group 1's, not after all five.
    assert_eq!(order, [1, 2, 3, 1, 1, 1, 1]);
    assert_eq!(queue.peak(), 1);
}

#[tokio::test]
async fn waiting_is_bounded_per_group_and_in_all_and_a_full_queue_pushes_out_the_longest() {
    let queue = HashQueue::new(HashLimits {
        permits: 1,
        queue: 5,
        queue_per_group: 3,
    });
    let (release, holder) = hold(&queue).await;
    let spawn = |group: u8| {
        let q = queue.clone();
        tokio::spawn(async move { q.run(v4(group), |_| ()).await })
    };
    let mut group1 = Vec::new();
    for n in 0..3 {
        group1.push(spawn(1));
        while queue.waiting() < n + 1 {
            tokio::task::yield_now().await;
        }
    }
    // A fourth of group 1: refused at once, with a time to retry.
    let refused = spawn(1).await.unwrap();
    assert!(
        matches!(refused, Err(HashRefused::Busy { retry_after }) if retry_after > Duration::ZERO),
        "{refused:?}"
    );
    let g2 = spawn(2);
    let g3 = spawn(3);
    while queue.waiting() < 5 {
        tokio::task::yield_now().await;
    }
    // Full (5). A newcomer of group 4 pushes out group 1's newest waiter.
    let g4 = spawn(4);
    let pushed = group1.pop().unwrap().await.unwrap();
    assert!(
        matches!(pushed, Err(HashRefused::Busy { .. })),
        "{pushed:?}"
    );
    while queue.waiting() < 5 {
        tokio::task::yield_now().await;
    }
    // Now every group waits 1 or 2: a second of group 4 has nobody to push out.
    assert!(matches!(
        spawn(4).await.unwrap(),
        Err(HashRefused::Busy { .. })
    ));
    release.send(()).unwrap();
    holder.await.unwrap();
    for task in group1.into_iter().chain([g2, g3, g4]) {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(queue.waiting(), 0);
}

#[tokio::test]
async fn the_permit_stays_with_the_hash_when_the_request_goes_away() {
    let queue = HashQueue::new(HashLimits {
        permits: 1,
        queue: 10,
        queue_per_group: 10,
    });
    let (release, wait) = mpsc::channel::<()>();
    let (started, running) = oneshot::channel();
    let q = queue.clone();
    // The request is dropped while its hash runs (a client that went away).
    let request = tokio::spawn(async move {
        q.run(v4(1), move |_| {
            let _ = started.send(());
            let _ = wait.recv();
        })
        .await
    });
    running.await.unwrap();
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    // The hash still runs and still holds the permit: the next one must wait.
    let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
    let q = queue.clone();
    let next = tokio::spawn(async move { q.run(v4(2), move |_| ran_tx.send(()).unwrap()).await });
    while queue.waiting() < 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!(queue.running(), 1);
    assert!(
        ran.try_recv().is_err(),
        "a second hash ran beside the first"
    );
    release.send(()).unwrap();
    assert_eq!(next.await.unwrap(), Ok(()));
    assert_eq!(queue.peak(), 1);
}

#[tokio::test]
async fn a_waiter_that_goes_away_leaves_the_queue_and_loses_no_permit() {
    let queue = HashQueue::new(HashLimits {
        permits: 1,
        queue: 10,
        queue_per_group: 10,
    });
    let (release, holder) = hold(&queue).await;
    let q = queue.clone();
    let gone = tokio::spawn(async move { q.run(v4(1), |_| ()).await });
    while queue.waiting() < 1 {
        tokio::task::yield_now().await;
    }
    gone.abort();
    let _ = gone.await;
    assert_eq!(queue.waiting(), 0);
    release.send(()).unwrap();
    holder.await.unwrap();
    // The permit came back: two more hashes run one after the other.
    for group in [2, 3] {
        assert_eq!(queue.run(v4(group), |_| 7).await, Ok(7));
    }
}
