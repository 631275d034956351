//! The circuit breaker in front of the backend (docs/gateway.md, "When the backend
//! fails"): after `failures` consecutive failures every call fails at once for
//! `cooldown`, then one call goes through as a probe; its success closes the breaker.

use std::sync::Mutex;
use std::time::Instant;

use crate::config;

/// Whether a call may go to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go.
    Go,
    /// The one probe after a cooldown: go, and report how it went.
    Probe,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    Probing,
}

/// A breaker shared by every hook.
#[derive(Debug)]
pub struct Breaker {
    policy: config::Breaker,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(policy: config::Breaker) -> Self {
        Self {
            policy,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// `None`: fail fast (open, or a probe is already out).
    pub fn admit(&self, now: Instant) -> Option<Admission> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *state {
            State::Closed { .. } => Some(Admission::Go),
            State::Open { until } if now >= until => {
                *state = State::Probing;
                Some(Admission::Probe)
            }
            State::Open { .. } | State::Probing => None,
        }
    }

    /// A call that reached the backend and got a usable answer.
    pub fn success(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*state, State::Closed { failures: 0 }) {
            if matches!(*state, State::Probing | State::Open { .. }) {
                tracing::info!("backend answered again: breaker closed");
            }
            *state = State::Closed { failures: 0 };
        }
    }

    /// A call that failed because of the backend (unreachable, timed out, 5xx).
    pub fn failure(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let open = match *state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.policy.failures {
                    tracing::error!(
                        failures,
                        cooldown_ms = self.policy.cooldown.as_millis() as u64,
                        "backend failing: breaker open, hooks fail fast"
                    );
                    true
                } else {
                    *state = State::Closed { failures };
                    false
                }
            }
            State::Probing => {
                tracing::warn!("breaker probe failed: open again");
                true
            }
            // A call admitted before the breaker opened: no change.
            State::Open { .. } => false,
        };
        if open {
            *state = State::Open {
                until: now + self.policy.cooldown,
            };
        }
    }

    /// A probe that ended without telling anything about the backend (cancelled):
    /// let the next call probe.
    pub fn abandon_probe(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, State::Probing) {
            *state = State::Open { until: now };
        }
    }

    /// Whether calls fail fast now (for `/readyz` and the gauge).
    pub fn is_open(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        !matches!(*state, State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn breaker() -> Breaker {
        Breaker::new(config::Breaker {
            failures: 3,
            cooldown: Duration::from_secs(5),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_then_probes_once() {
        let b = breaker();
        let t0 = Instant::now();
        b.failure(t0);
        b.failure(t0);
        assert_eq!(b.admit(t0), Some(Admission::Go));
        b.success(); // resets the count
        b.failure(t0);
        b.failure(t0);
        assert!(!b.is_open());
        b.failure(t0);
        assert!(b.is_open());
        assert_eq!(b.admit(t0 + Duration::from_secs(4)), None);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(b.admit(later), Some(Admission::Probe));
        assert_eq!(b.admit(later), None, "one probe at a time");
        b.failure(later);
        assert_eq!(b.admit(later + Duration::from_secs(1)), None, "open again");
        let again = later + Duration::from_secs(5);
        assert_eq!(b.admit(again), Some(Admission::Probe));
        b.success();
        assert!(!b.is_open());
        assert_eq!(b.admit(again), Some(Admission::Go));
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..3 {
            b.failure(t0);
        }
        let later = t0 + Duration::from_secs(6);
        assert_eq!(b.admit(later), Some(Admission::Probe));
        b.abandon_probe(later);
        assert_eq!(b.admit(later), Some(Admission::Probe));
    }
}
