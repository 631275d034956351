//! Configuration from flags and the environment (`--help` lists both).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use phx_server::cluster::PhoenixPubSub;
use phx_server::{CheckOrigin, Origin};

use crate::limit::Rate;

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

    /// Accounts: accounts one client address (IPv6: /64) may create at once (then one
    /// per minute). Only registrations that create an account count; refused attempts
    /// (a taken name, a weak password) count against `--register-attempt-burst`.
    #[arg(long, env = "REGISTER_BURST", default_value_t = 5)]
    pub register_burst: u32,

    /// Accounts: registration attempts one client address may make at once, refused
    /// ones included (then one per 3 s).
    #[arg(long, env = "REGISTER_ATTEMPT_BURST", default_value_t = 20)]
    pub register_attempt_burst: u32,

    /// Accounts: login attempts one client address may make at once (then one per 3 s;
    /// per username: 5, then one per minute).
    #[arg(long, env = "LOGIN_ADDRESS_BURST", default_value_t = 20)]
    pub login_address_burst: u32,

    /// Accounts: password hashes (Argon2id, 19 MiB each) computed at once; this bounds
    /// the memory and blocking threads that logins and registrations can take.
    #[arg(long, env = "PASSWORD_HASHES", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub password_hashes: u64,

    /// Accounts: logins and registrations waiting for a password hash, in all; past it
    /// (and past `--login-queue-per-address`) they are refused at once with 429 and
    /// `Retry-After`.
    #[arg(long, env = "LOGIN_QUEUE", default_value_t = 256)]
    pub login_queue: usize,

    /// Accounts: logins and registrations of one client (IPv4 address, IPv6 /48)
    /// waiting for a password hash.
    #[arg(long, env = "LOGIN_QUEUE_PER_ADDRESS", default_value_t = 4)]
    pub login_queue_per_address: usize,

    /// Invitations: after someone declines an invitation (or leaves a private room), the
    /// seconds during which the inviter may not invite them again to any room, nor anyone
    /// to that room (docs/chat.md, "Invitations"). At most a year.
    #[arg(long, env = "INVITE_COOLDOWN_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub invite_cooldown_secs: u64,

    // --- Uploads (docs/chat.md, "Uploads") ---
    /// Directory of uploaded files, created at start if missing. Nodes of a cluster
    /// must share it (e.g. one network file system), or a file uploaded through one node
    /// is missing on the others.
    #[arg(long, env = "UPLOAD_DIR", default_value = "uploads")]
    pub upload_dir: PathBuf,

    /// Largest upload, in bytes; a larger body is cut off with 413.
    #[arg(long, env = "UPLOAD_MAX_BYTES", default_value_t = 10_485_760,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_max_bytes: u64,

    /// Bytes of uploads one user may keep (1 GiB); past it, 413.
    #[arg(long, env = "UPLOAD_QUOTA_BYTES", default_value_t = 1_073_741_824,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_quota_bytes: u64,

    /// Uploads one signed-in user may make at once (then one per `--upload-refill-ms`).
    #[arg(long, env = "UPLOAD_BURST", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_burst: u32,

    /// Milliseconds after which a user may upload one more file (3000: 20 a minute).
    #[arg(long, env = "UPLOAD_REFILL_MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_refill_ms: u64,

    /// Upload bodies one user may send at once; past it, 429.
    #[arg(long, env = "UPLOAD_USER_AT_ONCE", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_user_at_once: u32,

    /// Upload bodies one client address (IPv6 /64) may send at once; past it, 429.
    #[arg(long, env = "UPLOAD_ADDRESS_AT_ONCE", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_address_at_once: u32,

    /// Upload bodies the node receives at once; past it, 503.
    #[arg(long, env = "UPLOAD_AT_ONCE", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_at_once: u32,

    /// Bytes all upload bodies being received may hold together (64 MiB; at least
    /// --upload-max-bytes); past it, 503.
    #[arg(long, env = "UPLOAD_BUFFER_BYTES", default_value_t = 67_108_864,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_buffer_bytes: u64,

    /// Slowest upload body, in bytes per second over each --upload-rate-window-ms
    /// (0: no floor); slower, 408.
    #[arg(long, env = "UPLOAD_MIN_RATE", default_value_t = 8192)]
    pub upload_min_rate: u64,

    /// The window the minimum upload rate is measured over, in milliseconds.
    #[arg(long, env = "UPLOAD_RATE_WINDOW_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub upload_rate_window_ms: u64,

    /// Time to receive a whole upload body, in milliseconds; past it, 408.
    #[arg(long, env = "UPLOAD_BODY_TIMEOUT_MS", default_value_t = 120_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_body_timeout_ms: u64,

    /// Seconds a signed file URL works (rounded up by at most a quarter).
    #[arg(long, env = "UPLOAD_URL_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_url_ttl_secs: u64,

    /// Seconds an upload may wait to be posted in a message before it is removed.
    #[arg(long, env = "UPLOAD_UNPOSTED_TTL_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_unposted_ttl_secs: u64,

    /// Log filter (`info`, `debug`, `chat_app=debug,phx_server=info`…), `RUST_LOG`
    /// syntax. `--log`/`LOG_LEVEL` wins over `RUST_LOG`; neither set: `RUST_LOG`, else
    /// `info`. An invalid filter stops start-up.
    #[arg(long = "log", env = "LOG_LEVEL")]
    pub log_level: Option<String>,

    /// Log format: `text` or `json` (one JSON object per line).
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    // --- Cluster (docs/cluster.md) ---
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

    // --- Operating (docs/operating.md) ---
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

    // --- Connections (SECURITY.md) ---
    /// TCP connections held at once; past it a new one gets HTTP 503 at accept. Unset:
    /// 90 % of the open-file limit (`ulimit -n`), logged at start.
    #[arg(long, env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// TCP connections one client address (IPv6: its /64) holds at once; past it a new
    /// one gets HTTP 429. Behind a reverse proxy every client has the proxy's address:
    /// set it to MAX_CONNECTIONS there.
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS",
          default_value_t = phx_server::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)]
    pub max_connections_per_address: usize,

    /// Bytes of outbound frames all WebSockets hold at once (each frame once); past it
    /// the sockets holding the most without reading are closed with 1013.
    #[arg(long, env = "OUTBOUND_BYTES_TOTAL",
          default_value_t = phx_server::DEFAULT_OUTBOUND_BYTES_TOTAL)]
    pub outbound_bytes_total: usize,

    // --- TLS (docs/operating.md) ---
    /// Serve https:// and wss:// with this PEM certificate chain (the server's
    /// certificate first, then intermediates). Needs --tls-key. SIGHUP reloads both files.
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Milliseconds a client gets to finish its TLS handshake; past it the connection
    /// is closed (it holds a connection slot until then).
    #[arg(long, env = "TLS_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_handshake_timeout_ms: u64,
}

fn parse_bind(value: &str) -> Result<std::net::IpAddr, String> {
    if value == "localhost" {
        return Ok(std::net::Ipv4Addr::LOCALHOST.into());
    }
    value
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            format!(
                "{value:?} is not an address to bind: expected an IPv4 or IPv6 address \
                 (`0.0.0.0`, `127.0.0.1`, `::`, `::1`) or `localhost`; the port is `--port`"
            )
        })
}

/// What `--check-origin` / `CHECK_ORIGIN` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginSetting {
    /// `true`: the hosts the app is configured for (see [`Config::origin_policy`]).
    ConfiguredHosts,
    /// `false`: no check.
    Off,
    /// Exactly these origins (each one checked to have a host).
    Allowed(Vec<String>),
}

const ACCEPTED_FORMS: &str = "expected `true`, `false`, or a comma-separated list of \
    origins such as `//a.com`, `https://b.io`, `//*.c.org`, `//d.net:8080`";

/// Refuses at start-up what would otherwise start a server that refuses every browser
/// (or, for a typo of `false`, one that checks nothing the operator meant it to).
fn parse_check_origin(value: &str) -> Result<OriginSetting, String> {
    match value {
        "true" => return Ok(OriginSetting::ConfiguredHosts),
        "false" => return Ok(OriginSetting::Off),
        _ => {}
    }
    let list: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    match CheckOrigin::allowed(list.clone()) {
        Ok(_) => Ok(OriginSetting::Allowed(list)),
        Err(invalid) if list.len() > 1 => Err(format!(
            "{:?} is not an origin; {ACCEPTED_FORMS}",
            invalid.0
        )),
        Err(_) => Err(ACCEPTED_FORMS.to_owned()),
    }
}

fn parse_host(value: &str) -> Result<String, String> {
    match Origin::parse(&format!("//{value}")).host {
        Some(_) => Ok(value.to_owned()),
        None => Err(format!(
            "{value:?} is not a host: expected a host name or address such as \
             `chat.example.org`, `192.0.2.7` or `[2001:db8::1]`, optionally with `:port`"
        )),
    }
}

impl Config {
    /// The `check_origin` policy for a server listening on `port` (the bound port, which
    /// `PORT=0` only tells after binding).
    ///
    /// `true` allows pages served by this app and nothing else: `localhost`, `127.0.0.1`
    /// and `[::1]` on `port` (any scheme, since a TLS proxy may sit in front), plus
    /// `--host`. Never the request's `Host` header, which a DNS-rebinding page chooses.
    pub fn origin_policy(&self, port: u16) -> CheckOrigin {
        match &self.check_origin {
            OriginSetting::Off => CheckOrigin::Disabled,
            OriginSetting::Allowed(list) => CheckOrigin::Allowed(list.clone()),
            OriginSetting::ConfiguredHosts => {
                let mut list: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
                    .iter()
                    .map(|host| format!("//{host}:{port}"))
                    .collect();
                if let Some(host) = &self.host {
                    list.push(format!("//{host}"));
                }
                CheckOrigin::Allowed(list)
            }
        }
    }
}

impl Config {
    /// `DATABASE_URL`, with an empty value meaning unset (memory).
    pub fn database_url(&self) -> Option<&str> {
        self.database_url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
    }

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

    /// The log filter: `--log`/`LOG_LEVEL`, else `RUST_LOG`, else `info`; refused when
    /// it does not parse.
    pub fn log_filter(&self) -> Result<tracing_subscriber::EnvFilter, String> {
        let (source, filter) = match (&self.log_level, std::env::var("RUST_LOG")) {
            (Some(filter), _) => ("--log/LOG_LEVEL", filter.clone()),
            (None, Ok(filter)) if !filter.is_empty() => ("RUST_LOG", filter),
            _ => return Ok(tracing_subscriber::EnvFilter::new("info")),
        };
        tracing_subscriber::EnvFilter::builder()
            .parse(&filter)
            .map_err(|e| format!("invalid log filter {filter:?} in {source}: {e}"))
    }

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

    /// The upload bounds (the `--upload-*` flags); a buffer budget under the largest
    /// upload is refused (such an upload could never be received).
    pub fn uploads(&self) -> Result<crate::uploads::http::UploadLimits, String> {
        if self.upload_buffer_bytes < self.upload_max_bytes {
            return Err(format!(
                "--upload-buffer-bytes / UPLOAD_BUFFER_BYTES ({}) must be at least \
                 --upload-max-bytes / UPLOAD_MAX_BYTES ({})",
                self.upload_buffer_bytes, self.upload_max_bytes
            ));
        }
        let at_once = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(crate::uploads::http::UploadLimits {
            max_bytes: self.upload_max_bytes,
            quota_bytes: self.upload_quota_bytes,
            per_user: Rate::new(
                self.upload_burst,
                Duration::from_millis(self.upload_refill_ms),
            ),
            admission: crate::uploads::admission::AdmissionLimits {
                per_user: at_once(self.upload_user_at_once),
                per_address: at_once(self.upload_address_at_once),
                at_once: at_once(self.upload_at_once),
                buffer_bytes: self.upload_buffer_bytes,
            },
            body_deadline: Duration::from_millis(self.upload_body_timeout_ms),
            min_rate: self.upload_min_rate,
            rate_window: Duration::from_millis(self.upload_rate_window_ms),
        })
    }

    /// How long a signed file URL works (`--upload-url-ttl-secs`).
    pub fn upload_url_ttl(&self) -> Duration {
        Duration::from_secs(self.upload_url_ttl_secs)
    }

    /// How long an upload may wait to be posted (`--upload-unposted-ttl-secs`).
    pub fn upload_unposted_ttl(&self) -> Duration {
        Duration::from_secs(self.upload_unposted_ttl_secs)
    }

    /// The account API's limits: the rates of `accounts::api` with the bursts and the
    /// hash queue configured here.
    pub fn account_limits(&self) -> crate::accounts::api::ApiLimits {
        use crate::accounts::api::ApiLimits;
        let defaults = ApiLimits::default();
        let with_burst = |rate: Rate, burst: u32| Rate::new(burst, rate.period);
        ApiLimits {
            register_per_address: with_burst(defaults.register_per_address, self.register_burst),
            register_attempts_per_address: with_burst(
                defaults.register_attempts_per_address,
                self.register_attempt_burst,
            ),
            login_per_address: with_burst(defaults.login_per_address, self.login_address_burst),
            hashing: crate::accounts::hash_queue::HashLimits {
                permits: usize::try_from(self.password_hashes).unwrap_or(1),
                queue: self.login_queue,
                queue_per_group: self.login_queue_per_address,
            },
            ..defaults
        }
    }

    /// `typing` broadcasts per user per room: one per `--typing-interval-ms`.
    pub fn typing(&self) -> Rate {
        Rate::one_per(Duration::from_millis(self.typing_interval_ms))
    }

    /// The invitation bounds, with `--invite-cooldown-secs`.
    pub fn invite_limits(&self) -> crate::accounts::InviteLimits {
        crate::accounts::InviteLimits::with_cooldown(Duration::from_secs(self.invite_cooldown_secs))
    }
}

/// The cluster settings of a node that joins one (see [`Config::cluster`]).
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
    pub fn cluster(&self) -> Result<Option<ClusterSettings>, ClusterConfigError> {
        let Some(url) = self
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
        else {
            return match self.phoenix_pubsub.as_deref().map(str::trim) {
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
        if self.cluster_down_ms < self.cluster_heartbeat_ms.saturating_mul(2) {
            return Err(ClusterConfigError::DownWithinTwoHeartbeats {
                down_ms: self.cluster_down_ms,
                heartbeat_ms: self.cluster_heartbeat_ms,
            });
        }
        Ok(Some(ClusterSettings {
            redis_url: url.to_owned(),
            node_name: self
                .node_name
                .clone()
                .filter(|name| !name.trim().is_empty()),
            heartbeat: Duration::from_millis(self.cluster_heartbeat_ms),
            down_after: Duration::from_millis(self.cluster_down_ms),
            phoenix: self.phoenix()?,
        }))
    }

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

/// One line for the start-up log: which origins may open a socket.
pub fn describe_policy(policy: &CheckOrigin) -> String {
    match policy {
        CheckOrigin::Disabled => "off: any origin may connect (CHECK_ORIGIN=false)".to_owned(),
        CheckOrigin::Allowed(list) => format!(
            "only pages from {} may connect (`//` is any scheme, no port is any port; \
             requests without an Origin header do not come from a page and pass)",
            list.join(", ")
        ),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Config, clap::Error> {
        Config::try_parse_from(["chat-app", "--check-origin", value])
    }

    #[test]
    fn origin_flag_maps_to_policies() {
        let policy = |v: &str| parse(v).unwrap().origin_policy(4000);
        assert!(matches!(policy("false"), CheckOrigin::Disabled));
        match policy("//a.com, https://b.io") {
            CheckOrigin::Allowed(list) => assert_eq!(list, vec!["//a.com", "https://b.io"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn true_allows_the_loopback_hosts_on_the_port_and_the_configured_host() {
        let config = Config::parse_from(["chat-app"]);
        match config.origin_policy(4123) {
            CheckOrigin::Allowed(list) => assert_eq!(
                list,
                vec!["//localhost:4123", "//127.0.0.1:4123", "//[::1]:4123"]
            ),
            other => panic!("unexpected {other:?}"),
        }
        let config = Config::parse_from(["chat-app", "--host", "chat.example.org"]);
        match config.origin_policy(4000) {
            CheckOrigin::Allowed(list) => assert_eq!(list.last().unwrap(), "//chat.example.org"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn invalid_check_origin_values_are_refused_with_the_accepted_forms() {
        for value in [
            "yes",
            "1",
            "*",
            "example.com",
            "",
            "TRUE",
            "//a.com,",
            "//a.com,b.io",
        ] {
            let error = parse(value).expect_err(value).to_string();
            assert!(
                error.contains("expected `true`, `false`"),
                "{value}: {error}"
            );
        }
        let error = parse("//a.com,b.io").unwrap_err().to_string();
        assert!(error.contains("\"b.io\""), "{error}");
    }

    #[test]
    fn valid_origin_lists_are_accepted() {
        for value in [
            "//a.com",
            "https://b.io",
            "//*.c.org",
            "//d.net:8080",
            "//a.com,https://b.io",
        ] {
            assert!(parse(value).is_ok(), "{value}");
        }
    }

    #[test]
    fn invalid_hosts_are_refused() {
        for host in [
            "",
            "a b",
            "evil.test\\@localhost",
            "http://x",
            "*.example.org",
        ] {
            assert!(
                Config::try_parse_from(["chat-app", "--host", host]).is_err(),
                "{host}"
            );
        }
        assert!(Config::try_parse_from(["chat-app", "--host", "[::1]:4000"]).is_ok());
    }

    #[test]
    fn defaults_match_the_readme() {
        let config = Config::parse_from(["chat-app"]);
        assert_eq!(config.pool_size, 10);
        assert_eq!(config.check_origin, OriginSetting::ConfiguredHosts);
        assert!(config.static_dir.is_none());
        assert!(config.metrics);
        assert!(config.api_key().is_none());
        assert_eq!(config.drain(), phx_server::Drain::default());
        assert_eq!(config.store_timeout(), crate::store::DEFAULT_STORE_TIMEOUT);
        assert_eq!(
            config.account_limits(),
            crate::accounts::api::ApiLimits::default()
        );
        assert_eq!(config.room_creation(), crate::limit::DEFAULT_ROOM_CREATION);
        assert_eq!(
            config.typing(),
            Rate::one_per(crate::limit::DEFAULT_TYPING_INTERVAL)
        );
        assert_eq!(config.upload_dir, PathBuf::from("uploads"));
        assert_eq!(
            config.invite_limits(),
            crate::accounts::InviteLimits::default()
        );
        assert!(
            Config::try_parse_from(["chat-app", "--invite-cooldown-secs", "31536001"]).is_err()
        );
        let uploads = config.uploads().unwrap();
        let defaults = crate::uploads::http::UploadLimits::default();
        assert_eq!(uploads.max_bytes, crate::uploads::http::DEFAULT_MAX_BYTES);
        assert_eq!(uploads.per_user, crate::uploads::http::DEFAULT_PER_USER);
        assert_eq!(
            uploads.quota_bytes,
            crate::uploads::quota::DEFAULT_QUOTA_BYTES
        );
        assert_eq!(uploads.admission, defaults.admission);
        assert_eq!(uploads.body_deadline, defaults.body_deadline);
        assert_eq!(uploads.min_rate, defaults.min_rate);
        assert_eq!(uploads.rate_window, defaults.rate_window);
        assert_eq!(
            config.upload_url_ttl(),
            crate::uploads::signed::DEFAULT_URL_TTL
        );
        assert_eq!(
            config.upload_unposted_ttl(),
            crate::uploads::files::DEFAULT_UNPOSTED_TTL
        );
    }

    #[test]
    fn upload_flags_are_read_and_zero_refused() {
        let config = Config::parse_from([
            "chat-app",
            "--upload-dir",
            "/srv/files",
            "--upload-max-bytes",
            "1000",
            "--upload-burst",
            "3",
            "--upload-refill-ms",
            "500",
            "--upload-quota-bytes",
            "5000",
            "--upload-user-at-once",
            "1",
            "--upload-address-at-once",
            "3",
            "--upload-at-once",
            "9",
            "--upload-buffer-bytes",
            "2000",
            "--upload-min-rate",
            "0",
            "--upload-rate-window-ms",
            "700",
            "--upload-body-timeout-ms",
            "800",
        ]);
        assert_eq!(config.upload_dir, PathBuf::from("/srv/files"));
        let uploads = config.uploads().unwrap();
        assert_eq!(uploads.max_bytes, 1000);
        assert_eq!(uploads.per_user, Rate::new(3, Duration::from_millis(500)));
        assert_eq!(uploads.quota_bytes, 5000);
        assert_eq!(
            uploads.admission,
            crate::uploads::admission::AdmissionLimits {
                per_user: 1,
                per_address: 3,
                at_once: 9,
                buffer_bytes: 2000
            }
        );
        assert_eq!(uploads.min_rate, 0);
        assert_eq!(uploads.rate_window, Duration::from_millis(700));
        assert_eq!(uploads.body_deadline, Duration::from_millis(800));
        let small_buffer = Config::parse_from([
            "chat-app",
            "--upload-max-bytes",
            "1000",
            "--upload-buffer-bytes",
            "999",
        ]);
        assert!(small_buffer
            .uploads()
            .unwrap_err()
            .contains("UPLOAD_BUFFER_BYTES"));
        for flag in [
            "--upload-max-bytes",
            "--upload-burst",
            "--upload-refill-ms",
            "--upload-quota-bytes",
            "--upload-user-at-once",
            "--upload-address-at-once",
            "--upload-at-once",
            "--upload-buffer-bytes",
            "--upload-rate-window-ms",
            "--upload-body-timeout-ms",
            "--upload-url-ttl-secs",
            "--upload-unposted-ttl-secs",
        ] {
            assert!(
                Config::try_parse_from(["chat-app", flag, "0"]).is_err(),
                "{flag}"
            );
        }
    }

    #[test]
    fn bind_takes_addresses_and_localhost_and_echoes_bad_values() {
        let bind = |v: &str| Config::try_parse_from(["chat-app", "--bind", v]).map(|c| c.bind);
        assert_eq!(bind("localhost").unwrap().to_string(), "127.0.0.1");
        assert_eq!(bind("::").unwrap().to_string(), "::");
        assert_eq!(bind("[::1]").unwrap().to_string(), "::1");
        let error = bind("0.0.0.0:4000").unwrap_err().to_string();
        assert!(
            error.contains("\"0.0.0.0:4000\" is not an address"),
            "{error}"
        );
    }

    const DB: &str = "postgres://postgres@127.0.0.1:5432/chat";

    fn cluster_of(args: &[&str]) -> Result<Option<ClusterSettings>, ClusterConfigError> {
        let mut all = vec!["chat-app"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).unwrap().cluster()
    }

    #[test]
    fn without_redis_url_the_node_is_single_and_needs_nothing_else() {
        assert_eq!(cluster_of(&[]), Ok(None));
        assert_eq!(cluster_of(&["--redis-url", ""]), Ok(None));
        assert_eq!(cluster_of(&["--redis-url", "  "]), Ok(None));
        let config = Config::parse_from(["chat-app"]);
        assert_eq!(config.cluster_heartbeat_ms, 1500);
        assert_eq!(config.cluster_down_ms, 5000);
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

    #[test]
    fn empty_database_url_and_api_key_mean_unset() {
        let config = Config::parse_from(["chat-app", "--database-url", "", "--api-key", ""]);
        assert!(config.database_url().is_none());
        assert!(config.api_key().is_none());
    }

    #[test]
    fn an_invalid_log_filter_is_refused() {
        let config = Config::parse_from(["chat-app", "--log", "chat_app=loud"]);
        let error = config.log_filter().unwrap_err();
        assert!(error.contains("--log"), "{error}");
        assert!(Config::parse_from(["chat-app", "--log", "debug"])
            .log_filter()
            .is_ok());
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
