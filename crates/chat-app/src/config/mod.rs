//! Configuration from flags and the environment (`--help` lists both).
//!
//! [`Config`] is what clap parses. Its flags are grouped by concern, each group a
//! struct flattened into it and kept in its own file with the accessors that turn its
//! numbers into the types the app uses, and its tests. `--help` lists the flags in field
//! order, a group's where its field is; groups carry no help heading, so the listing
//! reads as one.
//!
//! - here: the port, address, origin check and host (parsed in `network`), the
//!   database, the session secret, the page's directory;
//! - `network`: the address to bind, the origin check and the public host (their value
//!   parsers and the start-up line about them), connection caps and TLS
//!   ([`ConnectionFlags`]);
//! - `limits`: store deadline, room creation, typing and per-socket rates ([`LimitFlags`]);
//! - `accounts`: registration, login and invitation bounds ([`AccountFlags`]);
//! - `uploads`: where files go and every upload bound ([`UploadFlags`]);
//! - `logs`: log filter and format ([`LogFlags`]);
//! - `cluster`: Redis, node names, heartbeats, Phoenix PubSub ([`ClusterFlags`],
//!   checked into [`ClusterSettings`]);
//! - `ops`: server API, metrics and drain ([`OpsFlags`]).

use std::path::PathBuf;

use clap::Parser;

use network::{parse_bind, parse_check_origin, parse_host};

mod accounts;
mod cluster;
mod limits;
mod logs;
mod network;
mod ops;
mod uploads;

pub use accounts::AccountFlags;
pub use cluster::{ClusterConfigError, ClusterFlags, ClusterSettings};
pub use limits::LimitFlags;
pub use logs::LogFlags;
pub use network::{describe_policy, ConnectionFlags, OriginSetting};
pub use ops::OpsFlags;
pub use uploads::UploadFlags;

/// The chat app's settings.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "chat-app",
    version,
    about = "phx-rs chat: Phoenix Channels rooms with presence and history"
)]
pub struct Config {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 4000)]
    pub port: u16,

    /// Address to bind: an IPv4 or IPv6 address (`0.0.0.0`, `127.0.0.1`, `::`, `::1`)
    /// or `localhost` (127.0.0.1).
    #[arg(long, env = "BIND", default_value = "0.0.0.0", value_parser = parse_bind)]
    pub bind: std::net::IpAddr,

    /// PostgreSQL URL for history (e.g. postgres://postgres@127.0.0.1:5432/chat;
    /// `?sslmode=require` or `verify-full` for TLS). Unset or empty: history is kept in
    /// memory and lost on restart.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Connections in the PostgreSQL pool.
    #[arg(long, env = "POOL_SIZE", default_value_t = 10)]
    pub pool_size: usize,

    /// Secret that signs session tokens: the `token` that /api/login and /api/register
    /// give a signed-in page (its socket connects with it) and long-poll session tokens.
    /// Whoever knows it can sign in as any user with a live session. Unset or empty:
    /// with DATABASE_URL, one made at the first start and kept in the database (table
    /// `secret_key_base`), so sessions outlive restarts; without, a random one for the
    /// process, and every session ends when it stops. Required, the same on every
    /// node, with --redis-url.
    #[arg(long, env = "SECRET_KEY_BASE", hide_env_values = true)]
    pub secret_key_base: Option<String>,

    /// Origin check: `true` (only the hosts the app serves: localhost, 127.0.0.1 and
    /// `[::1]` on its own port, plus `--host`), `false` (off), or a comma-separated list
    /// of allowed origins such as `//example.com,https://chat.io,//*.example.org`.
    #[arg(long, env = "CHECK_ORIGIN", default_value = "true", value_parser = parse_check_origin)]
    pub check_origin: OriginSetting,

    /// Public host of the app (e.g. `chat.example.org`, behind a proxy): pages served
    /// from it may connect when `CHECK_ORIGIN=true`, on any scheme and port unless it
    /// names a port.
    #[arg(long, env = "PHX_HOST", value_parser = parse_host)]
    pub host: Option<String>,

    /// Directory of the browser page (`js-client/`, after `npm ci` there). Default:
    /// `js-client` in the working directory, else next to the binary, else two levels
    /// up from it (`target/debug/chat-app` in a checkout).
    #[arg(long, env = "STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// Store deadline, room creation, typing and per-socket rates.
    #[command(flatten)]
    pub limits: LimitFlags,

    /// Registration, login and invitation bounds.
    #[command(flatten)]
    pub accounts: AccountFlags,

    /// Uploads (docs/chat.md, "Uploads").
    #[command(flatten)]
    pub uploads: UploadFlags,

    /// Log filter and format.
    #[command(flatten)]
    pub logs: LogFlags,

    /// Cluster (docs/cluster.md).
    #[command(flatten)]
    pub cluster: ClusterFlags,

    /// Operating (docs/operating.md).
    #[command(flatten)]
    pub ops: OpsFlags,

    /// Connection caps (SECURITY.md) and TLS (docs/operating.md).
    #[command(flatten)]
    pub connections: ConnectionFlags,
}

impl Config {
    /// `DATABASE_URL`, with an empty value meaning unset (memory).
    pub fn database_url(&self) -> Option<&str> {
        self.database_url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
    }

    /// The static dir: `--static-dir`, else the first of `./js-client`,
    /// `<binary dir>/js-client`, `<binary dir>/../../js-client` that holds `index.html`.
    /// `Err` lists where it looked.
    pub fn static_dir(&self) -> Result<PathBuf, String> {
        if let Some(dir) = &self.static_dir {
            return Ok(dir.clone());
        }
        let mut tried = vec![PathBuf::from("js-client")];
        if let Some(bin) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
        {
            tried.push(bin.join("js-client"));
            tried.push(bin.join("../../js-client"));
        }
        tried
            .iter()
            .find(|dir| dir.join("index.html").is_file())
            .cloned()
            .ok_or_else(|| {
                let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
                format!(
                    "the browser page (js-client/) was not found in {}: run from the \
                     repository root or set STATIC_DIR / --static-dir",
                    list.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_readme() {
        let config = Config::parse_from(["chat-app"]);
        assert_eq!(config.port, 4000);
        assert_eq!(config.pool_size, 10);
        assert_eq!(config.check_origin, OriginSetting::ConfiguredHosts);
        assert!(config.static_dir.is_none());
        assert!(config.database_url().is_none());
        assert!(config.secret_key_base.is_none());
    }

    #[test]
    fn empty_database_url_and_api_key_mean_unset() {
        let config = Config::parse_from(["chat-app", "--database-url", "", "--api-key", ""]);
        assert!(config.database_url().is_none());
        assert!(config.ops.api_key().is_none());
    }
}
