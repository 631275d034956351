//! Store deadline, room creation, typing and per-socket rates (SECURITY.md).

use std::time::Duration;

use clap::Args;

use crate::limit::Rate;

/// Store deadline, room creation, typing and per-socket rates.
#[derive(Args, Debug, Clone)]
pub struct LimitFlags {
    /// Deadline of every store call, in milliseconds; past it the client gets
    /// `unavailable` (a database partition must not hold a socket).
    #[arg(long, env = "STORE_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub store_timeout_ms: u64,

    /// Rooms one client address (IPv6: its /64) may create at once.
    #[arg(long, env = "ROOM_CREATION_BURST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub room_creation_burst: u32,

    /// Milliseconds after which a client address may create one more room.
    #[arg(long, env = "ROOM_CREATION_REFILL_MS", default_value_t = 6000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub room_creation_refill_ms: u64,

    /// At most one `typing` broadcast per user per room per this many milliseconds
    /// (0: no throttle).
    #[arg(long, env = "TYPING_INTERVAL_MS", default_value_t = 1000)]
    pub typing_interval_ms: u64,

    /// Client messages per socket per second, sustained (heartbeats excluded); past it
    /// a message is refused with `{"reason":"rate limited"}` (0: no limit).
    #[arg(long, env = "RATE_LIMIT", default_value_t = 50)]
    pub rate_limit: u32,

    /// Client messages per socket accepted at once above `--rate-limit`.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,

    /// Joins per socket per second (burst: twice that).
    #[arg(long, env = "JOIN_RATE_LIMIT", default_value_t = 10)]
    pub join_rate_limit: u32,
}

impl LimitFlags {
    /// The deadline of every store call.
    pub fn store_timeout(&self) -> Duration {
        Duration::from_millis(self.store_timeout_ms)
    }

    /// Rooms one client address may create: `--room-creation-burst` at once, then one
    /// per `--room-creation-refill-ms`.
    pub fn room_creation(&self) -> Rate {
        Rate::new(
            self.room_creation_burst,
            Duration::from_millis(self.room_creation_refill_ms),
        )
    }

    /// `typing` broadcasts per user per room: one per `--typing-interval-ms`.
    pub fn typing(&self) -> Rate {
        Rate::one_per(Duration::from_millis(self.typing_interval_ms))
    }

    /// The per-socket inbound limit (`None` with `--rate-limit 0`): refusals past the
    /// rate, and a close (1008) once a client had more than a second's worth of
    /// messages refused within one second.
    pub fn inbound_limit(&self) -> Option<phx_server::RateLimit> {
        (self.rate_limit > 0).then(|| {
            phx_server::RateLimit::per_second(self.rate_limit)
                .burst(self.rate_limit_burst)
                .joins(self.join_rate_limit, self.join_rate_limit.saturating_mul(2))
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults_match_the_readme() {
        let limits = Config::parse_from(["chat-app"]).limits;
        assert_eq!(limits.store_timeout(), crate::store::DEFAULT_STORE_TIMEOUT);
        assert_eq!(limits.room_creation(), crate::limit::DEFAULT_ROOM_CREATION);
        assert_eq!(
            limits.typing(),
            Rate::one_per(crate::limit::DEFAULT_TYPING_INTERVAL)
        );
        assert_eq!(
            (
                limits.rate_limit,
                limits.rate_limit_burst,
                limits.join_rate_limit
            ),
            (50, 100, 10)
        );
        assert!(limits.inbound_limit().is_some());
        let unlimited = Config::parse_from(["chat-app", "--rate-limit", "0"]).limits;
        assert!(unlimited.inbound_limit().is_none());
    }

    #[test]
    fn limit_flags_are_read_and_zero_budgets_refused() {
        let config = Config::parse_from([
            "chat-app",
            "--store-timeout-ms",
            "1500",
            "--room-creation-burst",
            "3",
            "--room-creation-refill-ms",
            "100",
            "--typing-interval-ms",
            "0",
        ]);
        assert_eq!(config.limits.store_timeout(), Duration::from_millis(1500));
        assert_eq!(
            config.limits.room_creation(),
            Rate::new(3, Duration::from_millis(100))
        );
        assert_eq!(config.limits.typing().period, Duration::ZERO);
        for flag in [
            "--store-timeout-ms",
            "--room-creation-burst",
            "--room-creation-refill-ms",
        ] {
            assert!(
                Config::try_parse_from(["chat-app", flag, "0"]).is_err(),
                "{flag} 0 must be refused"
            );
        }
    }
}
