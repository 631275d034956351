//! Configuration from flags and the environment (`--help` lists both).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use phx_server::CheckOrigin;

use crate::limit::Rate;

/// The chat app's settings.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "chat-app",
    about = "phx-rs chat: Phoenix Channels rooms with presence and history"
)]
pub struct Config {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 4000)]
    pub port: u16,

    /// Address to bind.
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    pub bind: String,

    /// PostgreSQL URL for history (e.g. postgres://postgres@127.0.0.1:5432/chat).
    /// Unset: history is kept in memory and lost on restart.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Connections in the PostgreSQL pool.
    #[arg(long, env = "POOL_SIZE", default_value_t = 10)]
    pub pool_size: usize,

    /// Secret that signs long-poll session tokens. Unset: a random one per start.
    #[arg(long, env = "SECRET_KEY_BASE", hide_env_values = true)]
    pub secret_key_base: Option<String>,

    /// Origin check: `true` (the Host header's host), `false` (off), or a
    /// comma-separated list of allowed origins such as `//example.com,https://chat.io`.
    #[arg(long, env = "CHECK_ORIGIN", default_value = "true")]
    pub check_origin: String,

    /// Host that `CHECK_ORIGIN=true` compares with (default: the request's Host).
    #[arg(long, env = "PHX_HOST")]
    pub host: Option<String>,

    /// Directory of the browser page (`js-client/`, after `npm ci` there).
    #[arg(long, env = "STATIC_DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../js-client"))]
    pub static_dir: PathBuf,

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

    /// Log filter (`info`, `debug`, `chat_app=debug,phx_server=info`…); `RUST_LOG` style.
    #[arg(long = "log", env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl Config {
    /// The `check_origin` policy the flag describes.
    pub fn origin_policy(&self) -> CheckOrigin {
        match self.check_origin.trim() {
            "true" | "" => CheckOrigin::Host,
            "false" => CheckOrigin::Disabled,
            list => CheckOrigin::Allowed(
                list.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        }
    }
}

impl Config {
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

    /// `typing` broadcasts per user per room: one per `--typing-interval-ms`.
    pub fn typing(&self) -> Rate {
        Rate::one_per(Duration::from_millis(self.typing_interval_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_flag_maps_to_policies() {
        let parse = |v: &str| Config::parse_from(["chat-app", "--check-origin", v]).origin_policy();
        assert!(matches!(parse("true"), CheckOrigin::Host));
        assert!(matches!(parse("false"), CheckOrigin::Disabled));
        match parse("//a.com, https://b.io") {
            CheckOrigin::Allowed(list) => assert_eq!(list, vec!["//a.com", "https://b.io"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_readme() {
        let config = Config::parse_from(["chat-app"]);
        assert_eq!(config.pool_size, 10);
        assert!(config.static_dir.ends_with("js-client"));
        assert_eq!(config.store_timeout(), crate::store::DEFAULT_STORE_TIMEOUT);
        assert_eq!(config.room_creation(), crate::limit::DEFAULT_ROOM_CREATION);
        assert_eq!(
            config.typing(),
            Rate::one_per(crate::limit::DEFAULT_TYPING_INTERVAL)
        );
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
        assert_eq!(config.store_timeout(), Duration::from_millis(1500));
        assert_eq!(
            config.room_creation(),
            Rate::new(3, Duration::from_millis(100))
        );
        assert_eq!(config.typing().period, Duration::ZERO);
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
