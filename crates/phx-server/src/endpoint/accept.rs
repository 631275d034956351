//! Backing off when `accept` fails (EMFILE, ENFILE, ENOBUFS…): a pure state machine, so
//! the policy is tested without exhausting real file descriptors.
//!
//! Such errors come in episodes: the process is out of descriptors until some
//! connections close. Retrying at a fixed short interval would spin and flood the log,
//! so the pause doubles from [`AcceptBackoff::FIRST`] up to [`AcceptBackoff::MAX`] and
//! the episode is logged twice: once when it starts, once when accepting works again.

use std::time::{Duration, Instant};

/// The accept loop's failure state.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    episode: Option<Episode>,
}

#[derive(Debug)]
struct Episode {
    started: Instant,
    failures: u64,
    delay: Duration,
}

/// What to do after a failed accept.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Retry {
    /// Sleep this long before the next accept.
    pub(crate) after: Duration,
    /// The first failure of an episode: log it (later ones are counted, not logged).
    pub(crate) episode_started: bool,
}

/// An episode that ended with a successful accept: log it once.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Failed accepts during the episode.
    pub(crate) failures: u64,
    /// From the first failure to the success.
    pub(crate) lasted: Duration,
}

impl AcceptBackoff {
    /// The pause after the first failure of an episode.
    pub(crate) const FIRST: Duration = Duration::from_millis(10);
    /// The longest pause: at most this long passes between a descriptor freeing up and
    /// the next accept.
    pub(crate) const MAX: Duration = Duration::from_secs(1);

    /// An accept failed at `now`.
    pub(crate) fn failed(&mut self, now: Instant) -> Retry {
        match &mut self.episode {
            Some(episode) => {
                episode.failures += 1;
                episode.delay = (episode.delay * 2).min(Self::MAX);
                Retry {
                    after: episode.delay,
                    episode_started: false,
                }
            }
            None => {
                self.episode = Some(Episode {
                    started: now,
                    failures: 1,
                    delay: Self::FIRST,
                });
                Retry {
                    after: Self::FIRST,
                    episode_started: true,
                }
            }
        }
    }

    /// An accept succeeded at `now`: ends the episode, if one was running.
    pub(crate) fn succeeded(&mut self, now: Instant) -> Option<Recovered> {
        self.episode.take().map(|episode| Recovered {
            failures: episode.failures,
            lasted: now.saturating_duration_since(episode.started),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_from_10_ms_up_to_1_s() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        let pauses: Vec<u64> = (0..10)
            .map(|_| backoff.failed(now).after.as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }

    #[test]
    fn an_episode_is_reported_once_at_its_start_and_once_at_its_end() {
        let mut backoff = AcceptBackoff::default();
        let start = Instant::now();
        assert_eq!(
            backoff.succeeded(start),
            None,
            "no episode, nothing to report"
        );
        let started: Vec<bool> = (0..5)
            .map(|_| backoff.failed(start).episode_started)
            .collect();
        assert_eq!(started, [true, false, false, false, false]);
        let end = start + Duration::from_secs(3);
        assert_eq!(
            backoff.succeeded(end),
            Some(Recovered {
                failures: 5,
                lasted: Duration::from_secs(3)
            })
        );
        assert_eq!(backoff.succeeded(end), None, "reported once");
    }

    #[test]
    fn a_success_resets_the_pause() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        for _ in 0..20 {
            backoff.failed(now);
        }
        backoff.succeeded(now);
        let retry = backoff.failed(now);
        assert_eq!(
            retry,
            Retry {
                after: AcceptBackoff::FIRST,
                episode_started: true
            }
        );
    }
}
