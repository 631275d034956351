//! Operating flags: server API, metrics and drain (docs/operating.md).

use std::time::Duration;

use clap::Args;

/// Server API, metrics and drain.
#[derive(Args, Debug, Clone)]
pub struct OpsFlags {
    /// Bearer key of the server API (`/api/broadcast`, `/api/disconnect`,
    /// `/api/presence`). Unset or empty: the API is off.
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Serve Prometheus metrics at `GET /metrics` (`false` to turn off).
    #[arg(long, env = "METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// Sockets closed per batch when draining on SIGTERM/SIGINT.
    #[arg(long, env = "DRAIN_BATCH", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub drain_batch: u64,

    /// Milliseconds between drain batches.
    #[arg(long, env = "DRAIN_INTERVAL_MS", default_value_t = 2_000)]
    pub drain_interval_ms: u64,

    /// Milliseconds the whole drain may take; what is left then closes at once.
    #[arg(long, env = "DRAIN_BUDGET_MS", default_value_t = 30_000)]
    pub drain_budget_ms: u64,
}

impl OpsFlags {
    /// The server API key, with an empty value meaning unset (API off).
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref().filter(|key| !key.is_empty())
    }

    /// The drain plan.
    pub fn drain(&self) -> phx_server::Drain {
        phx_server::Drain::new(
            usize::try_from(self.drain_batch).unwrap_or(usize::MAX),
            Duration::from_millis(self.drain_interval_ms),
            Duration::from_millis(self.drain_budget_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Config;

    #[test]
    fn defaults_match_the_readme() {
        let ops = Config::parse_from(["chat-app"]).ops;
        assert!(ops.metrics);
        assert!(ops.api_key().is_none());
        assert_eq!(ops.drain(), phx_server::Drain::default());
    }

    #[test]
    fn metrics_can_be_turned_off_and_the_drain_planned() {
        let ops = Config::parse_from([
            "chat-app",
            "--metrics",
            "false",
            "--drain-batch",
            "5",
            "--drain-interval-ms",
            "100",
            "--drain-budget-ms",
            "900",
        ])
        .ops;
        assert!(!ops.metrics);
        assert_eq!(
            ops.drain(),
            phx_server::Drain::new(
                5,
                std::time::Duration::from_millis(100),
                std::time::Duration::from_millis(900)
            )
        );
        assert!(Config::try_parse_from(["chat-app", "--drain-batch", "0"]).is_err());
    }
}
