//! When presence diffs of one topic are merged: only under a burst.
//!
//! Phoenix sends every local presence change as its own `presence_diff`, and so does
//! this tracker while a topic sees at most [`BurstPolicy::limit`] changes per
//! [`BurstPolicy::window`]. Past that (a reconnect storm: thousands of joins in a
//! second, each a diff to every member, N² frames) further changes are merged into one
//! pending diff sent at the window's end, and merging goes on window after window until
//! a window passes with nothing held back. phoenix.js applies a merged diff exactly like
//! the diffs in sequence, so a burst costs each member about one diff per window.
//!
//! A pure state machine over [`Instant`]s, tested without a clock or a socket.

use std::time::{Duration, Instant};

/// A presence diff that later diffs can be folded into.
pub(crate) trait Merge {
    /// Appends `later`, so that applying `self` is the same as applying both in order.
    fn merge(&mut self, later: Self);
}

/// How many diffs of one topic go out on their own per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BurstPolicy {
    /// Diffs sent immediately, each on its own, per window (at least 1).
    pub(crate) limit: usize,
    /// The window; zero sends every change on its own, always.
    pub(crate) window: Duration,
}

/// One topic's state.
#[derive(Debug)]
pub(crate) struct Burst<D> {
    /// When the current window began (the first change after a quiet window, or the
    /// last flush of a merged diff).
    window_start: Option<Instant>,
    /// Diffs sent on their own in the current window.
    sent: usize,
    /// Changes held back during a burst, merged, waiting for the window's end.
    pending: Option<D>,
}

impl<D> Default for Burst<D> {
    fn default() -> Self {
        Self {
            window_start: None,
            sent: 0,
            pending: None,
        }
    }
}

impl<D: Merge> Burst<D> {
    /// A change at `now`: returns it when it goes out at once, or keeps it (merged into
    /// the pending diff) for [`Burst::due`].
    pub(crate) fn admit(&mut self, policy: BurstPolicy, now: Instant, diff: D) -> Option<D> {
        if let Some(pending) = &mut self.pending {
            // Never overtake a held-back diff: later changes join it.
            pending.merge(diff);
            return None;
        }
        if self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= policy.window)
        {
            self.window_start = Some(now);
            self.sent = 0;
        }
        if self.sent < policy.limit.max(1) {
            self.sent += 1;
            Some(diff)
        } else {
            self.pending = Some(diff);
            None
        }
    }

    /// The pending merged diff, once its window has ended at `now`.
    pub(crate) fn due(&mut self, policy: BurstPolicy, now: Instant) -> Option<D> {
        let start = self.window_start?;
        if now.saturating_duration_since(start) < policy.window {
            return None;
        }
        let diff = self.pending.take()?;
        // Still in the burst: the flush opens a window whose budget is spent, so the
        // changes that keep coming are merged too. The first window without a held-back
        // change ends the burst, and the next change goes out on its own again.
        self.window_start = Some(now);
        self.sent = policy.limit.max(1);
        Some(diff)
    }

    /// Nothing held back and the window over: forgetting this state changes nothing.
    pub(crate) fn is_idle(&self, policy: BurstPolicy, now: Instant) -> bool {
        self.pending.is_none()
            && self
                .window_start
                .is_none_or(|start| now.saturating_duration_since(start) >= policy.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A diff that records which changes it carries.
    #[derive(Debug, PartialEq)]
    struct Changes(Vec<u32>);

    impl Merge for Changes {
        fn merge(&mut self, later: Self) {
            self.0.extend(later.0);
        }
    }

    const POLICY: BurstPolicy = BurstPolicy {
        limit: 3,
        window: Duration::from_millis(25),
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn changes_within_the_limit_go_out_each_on_its_own() {
        let mut burst = Burst::default();
        let t0 = Instant::now();
        for (i, at) in [0, 1, 2].into_iter().enumerate() {
            let sent = burst.admit(POLICY, t0 + ms(at), Changes(vec![i as u32]));
            assert_eq!(sent, Some(Changes(vec![i as u32])));
        }
        assert_eq!(burst.due(POLICY, t0 + ms(100)), None, "nothing held back");
        assert!(burst.is_idle(POLICY, t0 + ms(100)));
    }

    #[test]
    fn past_the_limit_changes_are_merged_and_sent_at_the_window_end() {
        let mut burst = Burst::default();
        let t0 = Instant::now();
        let sent: Vec<Option<Changes>> = (0..6)
            .map(|i| burst.admit(POLICY, t0 + ms(i), Changes(vec![i as u32])))
            .collect();
        assert_eq!(
            sent,
            [
                Some(Changes(vec![0])),
                Some(Changes(vec![1])),
                Some(Changes(vec![2])),
                None,
                None,
                None
            ]
        );
        assert!(!burst.is_idle(POLICY, t0 + ms(100)));
        assert_eq!(burst.due(POLICY, t0 + ms(10)), None, "window not over");
        assert_eq!(burst.due(POLICY, t0 + ms(25)), Some(Changes(vec![3, 4, 5])));
    }

    #[test]
    fn a_held_back_diff_is_never_overtaken() {
        let mut burst = Burst::default();
        let t0 = Instant::now();
        for i in 0..4 {
            burst.admit(POLICY, t0, Changes(vec![i]));
        }
        // Long after the window, but before the flusher ran: the new change must not go
        // out ahead of the pending one.
        assert_eq!(burst.admit(POLICY, t0 + ms(500), Changes(vec![4])), None);
        assert_eq!(burst.due(POLICY, t0 + ms(500)), Some(Changes(vec![3, 4])));
    }

    #[test]
    fn a_burst_keeps_merging_until_a_window_passes_without_one() {
        let mut burst = Burst::default();
        let t0 = Instant::now();
        for i in 0..4 {
            burst.admit(POLICY, t0, Changes(vec![i]));
        }
        assert_eq!(burst.due(POLICY, t0 + ms(25)), Some(Changes(vec![3])));
        // The storm goes on: merged, one diff per window.
        assert_eq!(burst.admit(POLICY, t0 + ms(30), Changes(vec![10])), None);
        assert_eq!(burst.admit(POLICY, t0 + ms(31), Changes(vec![11])), None);
        assert_eq!(burst.due(POLICY, t0 + ms(50)), Some(Changes(vec![10, 11])));
        // A quiet window: the flusher finds nothing, and the next change is exact again.
        assert_eq!(burst.due(POLICY, t0 + ms(75)), None);
        assert!(burst.is_idle(POLICY, t0 + ms(75)));
        assert_eq!(
            burst.admit(POLICY, t0 + ms(80), Changes(vec![20])),
            Some(Changes(vec![20]))
        );
    }

    #[test]
    fn a_zero_window_never_holds_anything_back() {
        let policy = BurstPolicy {
            limit: 1,
            window: Duration::ZERO,
        };
        let mut burst = Burst::default();
        let t0 = Instant::now();
        for i in 0..100 {
            assert_eq!(
                burst.admit(policy, t0, Changes(vec![i])),
                Some(Changes(vec![i]))
            );
        }
    }
}
