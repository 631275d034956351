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
//! A burst that goes on stretches its window: every merged window is twice as long as
//! the one before, up to [`MAX_STRETCH`] doublings (25 ms → 1.6 s with the default
//! window; Phoenix.Tracker's own period between nodes is 1.5 s). A storm of 10 000 rejoins lasts seconds; at 25 ms each member would take
//! one diff frame per 25 ms for all of it, and those frames (not the changes they
//! carry, which are the same bytes whatever the window) were most of the storm's cost.
//! The first window after a quiet one is the configured window again.
//!
//! A pure state machine over [`Instant`]s, tested without a clock or a socket.

use std::time::{Duration, Instant};

/// Doublings of the window while a burst goes on (×64 at most). Measured with
/// `phx-bench storm --n 10000`: ×16 (400 ms) left 8.3–8.5 s of server CPU, ×64 5.8–5.9 s.
pub(crate) const MAX_STRETCH: u32 = 6;

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
    /// Merged windows flushed in a row: the current window is `window << stretch`.
    stretch: u32,
}

impl<D> Default for Burst<D> {
    fn default() -> Self {
        Self {
            window_start: None,
            sent: 0,
            pending: None,
            stretch: 0,
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
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window(policy))
        {
            // A window passed with nothing held back: the burst is over.
            self.window_start = Some(now);
            self.sent = 0;
            self.stretch = 0;
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
        if now.saturating_duration_since(start) < self.window(policy) {
            return None;
        }
        let diff = self.pending.take()?;
        self.stretch = (self.stretch + 1).min(MAX_STRETCH);
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
                .is_none_or(|start| now.saturating_duration_since(start) >= self.window(policy))
    }

    /// The current window: the policy's, stretched while a burst goes on.
    fn window(&self, policy: BurstPolicy) -> Duration {
        policy.window.saturating_mul(1 << self.stretch)
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
        // The storm goes on: merged, one diff per (now 50 ms) window.
        assert_eq!(burst.admit(POLICY, t0 + ms(30), Changes(vec![10])), None);
        assert_eq!(burst.admit(POLICY, t0 + ms(31), Changes(vec![11])), None);
        assert_eq!(burst.due(POLICY, t0 + ms(74)), None);
        assert_eq!(burst.due(POLICY, t0 + ms(75)), Some(Changes(vec![10, 11])));
        // A quiet (100 ms) window: the flusher finds nothing, and the next change is
        // exact again.
        assert_eq!(burst.due(POLICY, t0 + ms(175)), None);
        assert!(burst.is_idle(POLICY, t0 + ms(175)));
        assert_eq!(
            burst.admit(POLICY, t0 + ms(180), Changes(vec![20])),
            Some(Changes(vec![20]))
        );
    }

    #[test]
    fn a_long_burst_stretches_its_window_and_a_quiet_one_resets_it() {
        let mut burst = Burst::default();
        let t0 = Instant::now();
        for i in 0..4 {
            burst.admit(POLICY, t0, Changes(vec![i]));
        }
        // Window after window with changes held back: 25 ms doubling up to 1.6 s.
        let mut at = t0;
        let windows = [25, 50, 100, 200, 400, 800, 1600, 1600];
        for (step, window) in windows.into_iter().enumerate() {
            assert_eq!(burst.due(POLICY, at + ms(window - 1)), None, "step {step}");
            at += ms(window);
            assert!(
                burst.due(POLICY, at).is_some(),
                "step {step}: flushed at the end"
            );
            let change = Changes(vec![100 + step as u32]);
            assert_eq!(burst.admit(POLICY, at + ms(1), change), None);
        }
        assert_eq!(burst.due(POLICY, at + ms(1599)), None);
        assert_eq!(burst.due(POLICY, at + ms(1600)), Some(Changes(vec![107])));
        at += ms(1600);
        // A quiet (stretched) window ends the burst; the next change goes out at once,
        // and the window is the policy's again.
        assert!(!burst.is_idle(POLICY, at + ms(1599)));
        assert!(burst.is_idle(POLICY, at + ms(1600)));
        let later = at + ms(1600);
        assert_eq!(
            burst.admit(POLICY, later, Changes(vec![7])),
            Some(Changes(vec![7]))
        );
        for i in 0..3 {
            burst.admit(POLICY, later, Changes(vec![i]));
        }
        assert_eq!(burst.due(POLICY, later + ms(24)), None);
        assert_eq!(burst.due(POLICY, later + ms(25)), Some(Changes(vec![2])));
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
