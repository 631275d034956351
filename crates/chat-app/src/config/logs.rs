//! Log filter and format.

use clap::Args;

/// Log filter and format.
#[derive(Args, Debug, Clone)]
pub struct LogFlags {
    /// Log filter (`info`, `debug`, `chat_app=debug,phx_server=info`…), `RUST_LOG`
    /// syntax. `--log`/`LOG_LEVEL` wins over `RUST_LOG`; neither set: `RUST_LOG`, else
    /// `info`. An invalid filter stops start-up.
    #[arg(long = "log", env = "LOG_LEVEL")]
    pub log_level: Option<String>,

    /// Log format: `text` or `json` (one JSON object per line).
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl LogFlags {
    /// The log filter: `--log`/`LOG_LEVEL`, else `RUST_LOG`, else `info`; refused when
    /// it does not parse.
    pub fn filter(&self) -> Result<tracing_subscriber::EnvFilter, String> {
        let (source, filter) = match (&self.log_level, std::env::var("RUST_LOG")) {
            (Some(filter), _) => ("--log/LOG_LEVEL", filter.clone()),
            (None, Ok(filter)) if !filter.is_empty() => ("RUST_LOG", filter),
            _ => return Ok(tracing_subscriber::EnvFilter::new("info")),
        };
        tracing_subscriber::EnvFilter::builder()
            .parse(&filter)
            .map_err(|e| format!("invalid log filter {filter:?} in {source}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Config;

    #[test]
    fn an_invalid_log_filter_is_refused() {
        let config = Config::parse_from(["chat-app", "--log", "chat_app=loud"]);
        let error = config.logs.filter().unwrap_err();
        assert!(error.contains("--log"), "{error}");
        assert!(Config::parse_from(["chat-app", "--log", "debug"])
            .logs
            .filter()
            .is_ok());
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        assert_eq!(Config::parse_from(["chat-app"]).logs.log_format, "text");
        let json = Config::parse_from(["chat-app", "--log-format", "json"]);
        assert_eq!(json.logs.log_format, "json");
        assert!(Config::try_parse_from(["chat-app", "--log-format", "xml"]).is_err());
    }
}
