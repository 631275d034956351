//! Cluster flags (docs/cluster.md): Redis, node names, heartbeats and sharing
//! broadcasts with Phoenix nodes, checked into [`ClusterSettings`].

use std::time::Duration;

use clap::Args;
use phx_server::cluster::PhoenixPubSub;

use super::Config;

/// Redis, node names, heartbeats and Phoenix PubSub.
#[derive(Args, Debug, Clone)]
pub struct ClusterFlags {
    /// Redis URL (`redis://[:password@]host:port[/db]`) through which this node joins a
    /// cluster of chat-app nodes: broadcasts, presence, typing and disconnects then span
    /// every node. Needs `DATABASE_URL` and `SECRET_KEY_BASE`, the same on every node.
    /// Unset or empty: a single node, no Redis needed.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// This node's name in its own and the other nodes' logs. Default: the host name and
    /// the listening port (`web-1:4000`).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// Milliseconds between this node's heartbeats to the others (clustered only).
    #[arg(long, env = "CLUSTER_HEARTBEAT_MS", default_value_t = 1500,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub cluster_heartbeat_ms: u64,

    /// Milliseconds of silence after which another node counts as down and its users
    /// leave every presence list (clustered only); at least twice the heartbeat period.
    #[arg(long, env = "CLUSTER_DOWN_MS", default_value_t = 5000)]
    pub cluster_down_ms: u64,

    /// Also share broadcasts with the Phoenix nodes of an Elixir app that uses
    /// Phoenix.PubSub.Redis on the same Redis: its PubSub name (`MyApp.PubSub`). Needs
    /// `REDIS_URL` and `PHOENIX_NODE` (docs/cluster.md, "Beside a Phoenix cluster").
    #[arg(long, env = "PHOENIX_PUBSUB")]
    pub phoenix_pubsub: Option<String>,

    /// This node's name among the Phoenix nodes (`phx_rs@10.0.0.8`), unique among them.
    #[arg(long, env = "PHOENIX_NODE")]
    pub phoenix_node: Option<String>,

    /// zlib level, 0 (none) to 9, of the messages published for the Phoenix nodes.
    #[arg(long, env = "PHOENIX_COMPRESSION_LEVEL", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=9))]
    pub phoenix_compression_level: u32,
}

impl ClusterFlags {
    /// `PHOENIX_PUBSUB`, `PHOENIX_NODE` and `PHOENIX_COMPRESSION_LEVEL` as phx-server's
    /// settings; `None` without `PHOENIX_PUBSUB` (or with an empty one).
    fn phoenix(&self) -> Result<Option<PhoenixPubSub>, ClusterConfigError> {
        let Some(name) = self
            .phoenix_pubsub
            .as_deref()
            .filter(|n| !n.trim().is_empty())
        else {
            return Ok(None);
        };
        let node = self.phoenix_node.as_deref().unwrap_or("");
        if node.trim().is_empty() {
            return Err(ClusterConfigError::Phoenix(
                "PHOENIX_NODE must name this node among the Phoenix nodes (phx_rs@host)".to_owned(),
            ));
        }
        PhoenixPubSub::new(name, node)
            .and_then(|p| p.compression_level(self.phoenix_compression_level))
            .map(Some)
            .map_err(|e| ClusterConfigError::Phoenix(e.to_string()))
    }
}

/// The cluster settings of a node that joins one (see [`Config::cluster_settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The Redis URL, as configured (it may hold a password: log [`Self::redis_address`]).
    pub redis_url: String,
    /// `--node-name`, if set.
    pub node_name: Option<String>,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Silence after which another node is down.
    pub down_after: Duration,
    /// Sharing broadcasts with Phoenix nodes (`PHOENIX_PUBSUB`), if set.
    pub phoenix: Option<PhoenixPubSub>,
}

impl ClusterSettings {
    /// The Redis address for logs: the URL with any password replaced by `***`.
    pub fn redis_address(&self) -> String {
        mask_password(&self.redis_url)
    }

    /// The node name: `--node-name`, else `<host name>:<port>` (the port is the bound
    /// one, stable across restarts unlike a process id, and distinct for nodes sharing
    /// a host).
    pub fn node_name(&self, port: u16) -> String {
        if let Some(name) = &self.node_name {
            return name.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "node".to_owned());
        format!("{host}:{port}")
    }
}

/// Why a configuration cannot start a cluster node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterConfigError {
    /// History in memory is per process: the nodes would show different histories,
    /// with colliding ids.
    #[error(
        "REDIS_URL/--redis-url is set but DATABASE_URL is not: a cluster keeps history \
         in one PostgreSQL shared by every node (in memory each node would have its own \
         history and message ids). Set DATABASE_URL to the same database on every node, \
         or unset REDIS_URL for a single node"
    )]
    NeedsDatabase,
    /// A random secret per node: a session token (or long-poll token) signed by one
    /// node is refused by the others, so signed-in users would be logged out whenever
    /// they reconnect to another node.
    #[error(
        "REDIS_URL/--redis-url is set but SECRET_KEY_BASE is not: every node must check \
         the session tokens the others sign, so set SECRET_KEY_BASE to the same secret \
         on every node, or unset REDIS_URL for a single node"
    )]
    NeedsSecret,
    /// A down period shorter than two heartbeats declares a healthy node down when a
    /// single heartbeat is late (Phoenix.Tracker refuses the same).
    #[error(
        "CLUSTER_DOWN_MS ({down_ms}) must be at least twice CLUSTER_HEARTBEAT_MS \
         ({heartbeat_ms}), or one late heartbeat declares a healthy node down"
    )]
    DownWithinTwoHeartbeats {
        /// `--cluster-down-ms`.
        down_ms: u64,
        /// `--cluster-heartbeat-ms`.
        heartbeat_ms: u64,
    },
    /// Phoenix nodes are reached through Redis.
    #[error("PHOENIX_PUBSUB/--phoenix-pubsub is set but REDIS_URL is not: Phoenix nodes are reached through Redis")]
    PhoenixNeedsRedis,
    /// `PHOENIX_PUBSUB` without a node name, or invalid settings.
    #[error("PHOENIX_PUBSUB/PHOENIX_NODE: {0}")]
    Phoenix(String),
}

impl Config {
    /// The cluster this node joins: `None` without `REDIS_URL` (or with an empty one),
    /// a single node exactly as without the flag. Refused when the rest of the
    /// configuration would make the nodes disagree (see [`ClusterConfigError`]).
    pub fn cluster_settings(&self) -> Result<Option<ClusterSettings>, ClusterConfigError> {
        let Some(url) = self
            .cluster
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
        else {
            return match self.cluster.phoenix_pubsub.as_deref().map(str::trim) {
                Some(name) if !name.is_empty() => Err(ClusterConfigError::PhoenixNeedsRedis),
                _ => Ok(None),
            };
        };
        if self.database_url().is_none() {
            return Err(ClusterConfigError::NeedsDatabase);
        }
        if self
            .secret_key_base
            .as_deref()
            .is_none_or(|secret| secret.is_empty())
        {
            return Err(ClusterConfigError::NeedsSecret);
        }
        if self.cluster.cluster_down_ms < self.cluster.cluster_heartbeat_ms.saturating_mul(2) {
            return Err(ClusterConfigError::DownWithinTwoHeartbeats {
                down_ms: self.cluster.cluster_down_ms,
                heartbeat_ms: self.cluster.cluster_heartbeat_ms,
            });
        }
        Ok(Some(ClusterSettings {
            redis_url: url.to_owned(),
            node_name: self
                .cluster
                .node_name
                .clone()
                .filter(|name| !name.trim().is_empty()),
            heartbeat: Duration::from_millis(self.cluster.cluster_heartbeat_ms),
            down_after: Duration::from_millis(self.cluster.cluster_down_ms),
            phoenix: self.cluster.phoenix()?,
        }))
    }
}

/// `scheme://user:***@host…` for `scheme://user:password@host…`; anything else as is.
fn mask_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    const DB: &str = "postgres://postgres@127.0.0.1:5432/chat";

    fn cluster_of(args: &[&str]) -> Result<Option<ClusterSettings>, ClusterConfigError> {
        let mut all = vec!["chat-app"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).unwrap().cluster_settings()
    }

    #[test]
    fn without_redis_url_the_node_is_single_and_needs_nothing_else() {
        assert_eq!(cluster_of(&[]), Ok(None));
        assert_eq!(cluster_of(&["--redis-url", ""]), Ok(None));
        assert_eq!(cluster_of(&["--redis-url", "  "]), Ok(None));
        let config = Config::parse_from(["chat-app"]);
        assert_eq!(config.cluster.cluster_heartbeat_ms, 1500);
        assert_eq!(config.cluster.cluster_down_ms, 5000);
    }

    #[test]
    fn cluster_flags_are_read() {
        let settings = cluster_of(&[
            "--redis-url",
            "redis://127.0.0.1:6390",
            "--database-url",
            DB,
            "--secret-key-base",
            "s",
            "--node-name",
            "chat-2",
            "--cluster-heartbeat-ms",
            "200",
            "--cluster-down-ms",
            "900",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            settings,
            ClusterSettings {
                redis_url: "redis://127.0.0.1:6390".to_owned(),
                node_name: Some("chat-2".to_owned()),
                heartbeat: Duration::from_millis(200),
                down_after: Duration::from_millis(900),
                phoenix: None,
            }
        );
        assert_eq!(settings.node_name(4001), "chat-2");
        // The defaults of phx-server's builder.
        let settings = cluster_of(&[
            "--redis-url",
            "redis://r:6379",
            "--database-url",
            DB,
            "--secret-key-base",
            "s",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(settings.heartbeat, phx_server::CLUSTER_HEARTBEAT);
        assert_eq!(settings.down_after, phx_server::CLUSTER_DOWN_AFTER);
        let name = settings.node_name(4002);
        assert!(
            name.ends_with(":4002") && name.len() > ":4002".len(),
            "{name}"
        );
    }

    #[test]
    fn a_cluster_without_a_shared_database_or_secret_is_refused() {
        let error =
            cluster_of(&["--redis-url", "redis://r:6379", "--secret-key-base", "s"]).unwrap_err();
        assert_eq!(error, ClusterConfigError::NeedsDatabase);
        assert!(error.to_string().contains("DATABASE_URL"), "{error}");
        // An empty DATABASE_URL is unset.
        assert_eq!(
            cluster_of(&[
                "--redis-url",
                "redis://r",
                "--database-url",
                "",
                "--secret-key-base",
                "s"
            ]),
            Err(ClusterConfigError::NeedsDatabase)
        );
        let error =
            cluster_of(&["--redis-url", "redis://r:6379", "--database-url", DB]).unwrap_err();
        assert_eq!(error, ClusterConfigError::NeedsSecret);
        assert!(error.to_string().contains("SECRET_KEY_BASE"), "{error}");
    }

    #[test]
    fn a_down_period_under_two_heartbeats_and_tiny_heartbeats_are_refused() {
        let base = [
            "--redis-url",
            "redis://r",
            "--database-url",
            DB,
            "--secret-key-base",
            "s",
        ];
        let mut args = base.to_vec();
        args.extend([
            "--cluster-heartbeat-ms",
            "1000",
            "--cluster-down-ms",
            "1999",
        ]);
        assert!(matches!(
            cluster_of(&args),
            Err(ClusterConfigError::DownWithinTwoHeartbeats {
                down_ms: 1999,
                heartbeat_ms: 1000
            })
        ));
        args.pop();
        args.push("2000");
        assert!(cluster_of(&args).is_ok(), "twice the heartbeat is enough");
        assert!(
            Config::try_parse_from(["chat-app", "--cluster-heartbeat-ms", "0"]).is_err(),
            "a zero heartbeat must be refused"
        );
    }

    #[test]
    fn phoenix_flags_need_redis_and_a_node_name() {
        let base = [
            "--redis-url",
            "redis://r",
            "--database-url",
            DB,
            "--secret-key-base",
            "s",
        ];
        let mut args = base.to_vec();
        args.extend([
            "--phoenix-pubsub",
            "MyApp.PubSub",
            "--phoenix-node",
            "phx_rs@h",
        ]);
        args.extend(["--phoenix-compression-level", "6"]);
        let phoenix = cluster_of(&args).unwrap().unwrap().phoenix.unwrap();
        assert_eq!(phoenix.channel(), "phx:Elixir.MyApp.PubSub.Adapter");
        assert_eq!((phoenix.node_name(), phoenix.level()), ("phx_rs@h", 6));
        assert_eq!(
            cluster_of(&["--phoenix-pubsub", "MyApp.PubSub"]),
            Err(ClusterConfigError::PhoenixNeedsRedis)
        );
        let mut no_node = base.to_vec();
        no_node.extend(["--phoenix-pubsub", "MyApp.PubSub"]);
        assert!(matches!(
            cluster_of(&no_node),
            Err(ClusterConfigError::Phoenix(_))
        ));
    }

    #[test]
    fn redis_passwords_never_reach_the_logs() {
        let settings = |url: &str| ClusterSettings {
            redis_url: url.to_owned(),
            node_name: None,
            heartbeat: Duration::from_secs(1),
            down_after: Duration::from_secs(5),
            phoenix: None,
        };
        assert_eq!(
            settings("redis://:s3cret@127.0.0.1:6379/0").redis_address(),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            settings("rediss://user:p@ss@host:1").redis_address(),
            "rediss://user:***@host:1"
        );
        assert_eq!(
            settings("redis://127.0.0.1:6379").redis_address(),
            "redis://127.0.0.1:6379"
        );
    }
}
