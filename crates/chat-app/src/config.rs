//! Configuration from flags and the environment (`--help` lists both).

use std::path::PathBuf;

use clap::Parser;
use phx_server::CheckOrigin;

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
    }
}
