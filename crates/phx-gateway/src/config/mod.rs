//! The configuration file (docs/gateway.md, "The configuration file"): read, checked
//! and turned into the values the gateway runs with. Every problem is collected with its
//! key and line ([`Problem`]); nothing is contacted over the network here.

mod env;
pub mod reader;
mod units;

use std::net::SocketAddr;
use std::time::Duration;

use hyper::header::HeaderName;
use hyper::Uri;
use phx_server::cluster::{PhoenixPubSub, PhoenixPubSubError};
use phx_server::{CheckOrigin, RateLimit, Tls, TlsError};
use serde_json::Value;

pub use reader::Problem;
use reader::{Doc, Item, Table};

use crate::auth::jwt::{self, JwtConfig};
use crate::expr::Expr;
use crate::static_files::{Mount, StaticFiles};
use crate::template::Template;

/// The whole file, checked.
#[derive(Debug)]
pub struct Config {
    pub server: Server,
    /// `[tls]`: the certificate, loaded and checked (`https://` and `wss://`).
    pub tls: Option<Tls>,
    pub cluster: Option<Cluster>,
    pub backend: Backend,
    pub sockets: Vec<Socket>,
    /// `[[static]]`: the files, read.
    pub static_files: StaticFiles,
}

/// `[server]`.
#[derive(Debug)]
pub struct Server {
    pub listen: SocketAddr,
    pub host: Option<String>,
    pub secret_key_base: Option<String>,
    pub metrics: bool,
    pub health: bool,
    pub node_name: Option<String>,
    pub max_request_line: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub longpoll_max_sessions: Option<usize>,
    pub longpoll_max_sessions_per_address: Option<usize>,
    pub api: Option<Api>,
    pub drain: phx_server::Drain,
}

/// `[server.api]`.
pub struct Api {
    pub key: String,
    pub body_limit: usize,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("key", &"***")
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

/// `[cluster]`.
#[derive(Debug)]
pub struct Cluster {
    pub redis_url: String,
    pub name: String,
    pub heartbeat: Duration,
    pub down_after: Duration,
    /// Beside a Phoenix cluster: the Phoenix app's PubSub on the same Redis
    /// (docs/cluster.md, "Beside a Phoenix cluster").
    pub phoenix: Option<PhoenixPubSub>,
}

/// `[backend]`.
pub struct Backend {
    /// Base URL; `None` when no hook is configured.
    pub url: Option<Uri>,
    pub secret: Vec<u8>,
    pub health: Option<Uri>,
    pub http2: bool,
    pub max_answer_bytes: usize,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    pub breaker: Breaker,
    pub connect: Hook,
    pub join: Hook,
    pub event: Hook,
    pub notify: Hook,
    pub notify_batch: usize,
    pub notify_flush: Duration,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("url", &self.url)
            .field("secret", &"***")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// `[backend.breaker]`.
#[derive(Clone, Copy, Debug)]
pub struct Breaker {
    pub failures: u32,
    pub cooldown: Duration,
}

/// `[backend.connect]` and the other hook tables.
#[derive(Clone, Debug)]
pub struct Hook {
    pub path: String,
    pub timeout: Duration,
    pub concurrency: usize,
    pub queue: usize,
    pub retries: u32,
}

/// `[[socket]]`.
#[derive(Debug)]
pub struct Socket {
    pub path: String,
    pub websocket: bool,
    pub longpoll: bool,
    pub check_origin: CheckOrigin,
    pub idle_timeout: Option<Duration>,
    pub longpoll_window: Option<Duration>,
    pub max_channels: Option<usize>,
    pub max_frame_size: Option<usize>,
    pub outbound_bytes: Option<usize>,
    pub rate_limit: Option<RateLimit>,
    pub notify_disconnect: bool,
    pub auth: Auth,
    pub channels: Vec<ChannelSpec>,
}

/// Where a token is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// A connect param.
    Param(String),
    /// phoenix.js' `authToken` (the WebSocket subprotocol).
    AuthToken,
}

/// `[socket.auth]`.
#[derive(Debug)]
pub enum Auth {
    None,
    Hook {
        headers: Vec<HeaderName>,
    },
    PhoenixToken {
        secret_key_base: String,
        salt: String,
        max_age: Duration,
        token: TokenSource,
        assign: String,
        socket_id: Option<Template>,
    },
    Jwt(Box<JwtConfig>),
}

/// Who may join a channel.
#[derive(Debug)]
pub enum JoinPolicy {
    All,
    Hook,
    When(Expr),
}

/// A value that is a template (a string) or a plain JSON value.
#[derive(Clone, Debug)]
pub enum Field {
    Template(Template),
    Literal(Value),
}

/// `presence = { key, meta }`.
#[derive(Debug)]
pub struct PresenceSpec {
    pub key: Template,
    pub meta: Vec<(String, Field)>,
}

/// What a client event does.
#[derive(Debug, Clone)]
pub enum Handle {
    Forward,
    Broadcast {
        include_self: bool,
        rate: Option<BroadcastRate>,
    },
    Refuse,
}

/// `rate_limit` of a `broadcast` rule: a token bucket per channel.
#[derive(Debug, Clone, Copy)]
pub struct BroadcastRate {
    pub per_second: u32,
    pub burst: u32,
}

/// `[[socket.channel.event]]`.
#[derive(Debug)]
pub struct EventRule {
    pub name: String,
    pub handle: Handle,
}

/// `[[socket.channel.outgoing]]`.
#[derive(Debug)]
pub struct OutRule {
    pub event: String,
    pub when: Option<Expr>,
    pub drop: bool,
    pub set: Vec<(String, Field)>,
    pub remove: Vec<String>,
}

/// `[[socket.channel]]`.
#[derive(Debug)]
pub struct ChannelSpec {
    pub topic: String,
    pub join: JoinPolicy,
    pub presence: Option<PresenceSpec>,
    pub notify_leave: bool,
    pub events: Vec<EventRule>,
    pub outgoing: Vec<OutRule>,
}

impl Config {
    /// Reads `source` (the file's text) with `env` for `${…}`: the checked
    /// configuration, or every problem found.
    pub fn parse(
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
        base_dir: &std::path::Path,
    ) -> Result<Self, Vec<Problem>> {
        let doc = Doc::parse(source, env);
        let root = doc.root();
        let server = root.table("server").map_or_else(
            || server(None, base_dir),
            |t| {
                let s = server(Some(&t), base_dir);
                t.finish();
                s
            },
        );
        let tls = root.table("tls").and_then(|t| {
            let tls = tls(&t, base_dir);
            t.finish();
            tls
        });
        let cluster = root.table("cluster").and_then(|t| {
            let c = cluster(&t);
            t.finish();
            c
        });
        let mut static_files = StaticFiles::default();
        for t in root.tables("static") {
            static_mount(&t, base_dir, &mut static_files);
            t.finish();
        }
        let backend_table = root.table("backend");
        let backend = backend(backend_table.as_ref());
        let socket_tables = root.tables("socket");
        if socket_tables.is_empty() && !root.has("socket") {
            root.table_error("no [[socket]]: mount at least one socket");
        }
        let mut sockets = Vec::new();
        for t in &socket_tables {
            if let Some(s) = socket(t, base_dir) {
                if sockets.iter().any(|o: &Socket| o.path == s.path) {
                    t.error("path", format!("{:?} is mounted twice", s.path));
                }
                sockets.push(s);
            }
        }
        for t in socket_tables {
            t.finish();
        }
        // Hooks need a backend to go to.
        let uses_hooks = sockets.iter().any(Socket::uses_hooks);
        if let Some(t) = &backend_table {
            if uses_hooks && backend.url.is_none() && !t.has("url") {
                t.error(
                    "url",
                    "missing: a socket uses a hook, so the backend needs a url",
                );
            }
        } else if uses_hooks {
            root.table_error("no [backend]: a socket uses a hook (auth, join, forward or notify), so [backend] url and secret are required");
        }
        if let Some(t) = backend_table {
            t.finish();
        }
        root.finish();
        let problems = doc.into_problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            server,
            tls,
            cluster,
            backend,
            sockets,
            static_files,
        })
    }

    /// One line for `check`: what the file sets up.
    pub fn summary(&self) -> String {
        let channels: usize = self.sockets.iter().map(|s| s.channels.len()).sum();
        let mounts: Vec<&str> = self.sockets.iter().map(|s| s.path.as_str()).collect();
        format!(
            "{} socket(s) ({}), {} channel route(s), backend {}, listen {}{}{}{}",
            self.sockets.len(),
            mounts.join(", "),
            channels,
            self.backend
                .url
                .as_ref()
                .map_or_else(|| "none".to_owned(), ToString::to_string),
            self.server.listen,
            if self.static_files.is_empty() {
                String::new()
            } else {
                format!(", {} static file(s)", self.static_files.len())
            },
            if self.tls.is_some() { ", tls" } else { "" },
            match &self.cluster {
                Some(Cluster {
                    phoenix: Some(p), ..
                }) => format!(", clustered beside Phoenix ({})", p.channel()),
                Some(_) => ", clustered".to_owned(),
                None => String::new(),
            }
        )
    }
}

impl Socket {
    /// Whether anything on this socket calls the backend.
    pub fn uses_hooks(&self) -> bool {
        matches!(self.auth, Auth::Hook { .. })
            || self.notify_disconnect
            || self.channels.iter().any(|c| {
                matches!(c.join, JoinPolicy::Hook)
                    || c.notify_leave
                    || c.events.iter().any(|e| matches!(e.handle, Handle::Forward))
            })
    }
}

fn positive(t: &Table<'_, '_>, key: &str, value: Option<u64>) -> Option<u64> {
    match value {
        Some(0) => {
            t.error(key, "must be at least 1");
            None
        }
        other => other,
    }
}

fn usize_of(value: Option<u64>) -> Option<usize> {
    value.and_then(|v| usize::try_from(v).ok())
}

fn u32_of(t: &Table<'_, '_>, key: &str, value: Option<u64>) -> Option<u32> {
    let value = value?;
    match u32::try_from(value) {
        Ok(v) => Some(v),
        Err(_) => {
            t.error(key, "too large");
            None
        }
    }
}

fn server(t: Option<&Table<'_, '_>>, _base_dir: &std::path::Path) -> Server {
    let mut server = Server {
        listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
        host: None,
        secret_key_base: None,
        metrics: false,
        health: true,
        node_name: None,
        max_request_line: None,
        max_header_bytes: None,
        longpoll_max_sessions: None,
        longpoll_max_sessions_per_address: None,
        api: None,
        drain: phx_server::Drain::default(),
    };
    let Some(t) = t else { return server };
    if let Some(listen) = t.string("listen") {
        match listen.parse() {
            Ok(addr) => server.listen = addr,
            Err(_) => t.error(
                "listen",
                format!("{listen:?} is not an address:port (\"127.0.0.1:4000\", \"[::]:4000\")"),
            ),
        }
    }
    server.host = t.string("host");
    server.secret_key_base = t.string("secret_key_base");
    if let Some(secret) = &server.secret_key_base {
        if secret.len() < 32 {
            t.error("secret_key_base", "too short: use at least 32 random bytes");
        }
    }
    server.metrics = t.bool("metrics").unwrap_or(false);
    server.health = t.bool("health").unwrap_or(true);
    server.node_name = t.string("node_name");
    server.max_request_line =
        usize_of(positive(t, "max_request_line", t.count("max_request_line")));
    server.max_header_bytes =
        usize_of(positive(t, "max_header_bytes", t.count("max_header_bytes")));
    server.longpoll_max_sessions = usize_of(t.count("longpoll_max_sessions"));
    server.longpoll_max_sessions_per_address =
        usize_of(t.count("longpoll_max_sessions_per_address"));
    if let Some(api) = t.table("api") {
        let key = api.required_string("key");
        if let Some(key) = &key {
            if key.len() < 32 {
                api.error("key", "too short: use at least 32 random characters");
            }
        }
        let body_limit = api
            .size("body_limit")
            .unwrap_or(phx_server::DEFAULT_API_BODY_LIMIT);
        if let Some(key) = key {
            server.api = Some(Api { key, body_limit });
        }
        api.finish();
    }
    if let Some(d) = t.table("drain") {
        let default = phx_server::Drain::default();
        server.drain = phx_server::Drain::new(
            usize_of(positive(&d, "batch_size", d.count("batch_size")))
                .unwrap_or(default.batch_size),
            d.duration("batch_interval")
                .unwrap_or(default.batch_interval),
            d.duration("budget").unwrap_or(default.budget),
        );
        d.finish();
    }
    server
}

/// One `[[static]]` table: `path` and `file` (one URL) or `dir` (a directory's files
/// under a path ending in `/`), read now so `check` reports what is missing.
fn static_mount(t: &Table<'_, '_>, base_dir: &std::path::Path, files: &mut StaticFiles) {
    let path = t.required_string("path");
    let file = t.string("file");
    let dir = t.string("dir");
    if let Some(path) = &path {
        if !path.starts_with('/') {
            t.error("path", "must start with '/'");
            return;
        }
    }
    let (key, mount) = match (path, file, dir) {
        (Some(_), Some(_), Some(_)) => {
            t.error("dir", "give file or dir, not both");
            return;
        }
        (Some(path), Some(file), None) => (
            "file",
            Mount::File {
                path,
                file: base_dir.join(file),
            },
        ),
        (Some(path), None, Some(dir)) => {
            if !path.ends_with('/') {
                t.error(
                    "path",
                    "a dir is served under a path ending in '/' (\"/assets/\")",
                );
                return;
            }
            (
                "dir",
                Mount::Dir {
                    path,
                    dir: base_dir.join(dir),
                },
            )
        }
        (_, None, None) if !t.has("file") && !t.has("dir") => {
            t.table_error("a [[static]] needs file or dir");
            return;
        }
        _ => return,
    };
    if let Err(error) = files.add(&mount) {
        t.error(key, error.to_string());
    }
}

/// `[tls]`: the certificate chain and key are read and checked here, as the gateway
/// would at start (a missing file, a PEM without a certificate, a key that does not
/// belong to the certificate), each problem at its key's line. Relative paths are
/// relative to the configuration file.
fn tls(t: &Table<'_, '_>, base_dir: &std::path::Path) -> Option<Tls> {
    let cert = t.required_string("cert_file").map(|f| base_dir.join(f));
    let key = t.required_string("key_file").map(|f| base_dir.join(f));
    let timeout = t.duration("handshake_timeout");
    if timeout.is_some_and(|d| d.is_zero()) {
        t.error("handshake_timeout", "must be more than zero");
    }
    let (cert, key) = (cert?, key?);
    let mut readable = true;
    for (name, path) in [("cert_file", &cert), ("key_file", &key)] {
        if let Err(e) = std::fs::File::open(path) {
            t.error(name, format!("cannot read {}: {e}", path.display()));
            readable = false;
        }
    }
    if !readable {
        return None;
    }
    match Tls::from_pem_files(&cert, &key) {
        Ok(tls) => Some(
            tls.handshake_timeout(
                timeout
                    .filter(|d| !d.is_zero())
                    .unwrap_or(phx_server::DEFAULT_TLS_HANDSHAKE_TIMEOUT),
            ),
        ),
        Err(error) => {
            let name = match &error {
                TlsError::NoCertificate(_) => "cert_file",
                TlsError::Pem { path, .. } if *path == cert => "cert_file",
                _ => "key_file",
            };
            t.error(name, error.to_string());
            None
        }
    }
}

fn cluster(t: &Table<'_, '_>) -> Option<Cluster> {
    let redis_url = if !t.has("redis_url") && t.has("phoenix_pubsub") {
        t.error(
            "redis_url",
            "missing: phoenix_pubsub needs the Redis the Phoenix nodes use (Phoenix.PubSub.Redis)",
        );
        None
    } else {
        t.required_string("redis_url")
    };
    if let Some(url) = &redis_url {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            t.error("redis_url", "expected redis://host:port");
        }
    }
    let name = t.string("name").unwrap_or_else(|| "phx-gateway".to_owned());
    let heartbeat = t
        .duration("heartbeat")
        .unwrap_or(phx_server::CLUSTER_HEARTBEAT);
    let down_after = t
        .duration("down_after")
        .unwrap_or(phx_server::CLUSTER_DOWN_AFTER);
    let phoenix = phoenix(t);
    Some(Cluster {
        redis_url: redis_url?,
        name,
        heartbeat,
        down_after,
        phoenix,
    })
}

/// `phoenix_pubsub`, `phoenix_node` and `compression_level` as phx-server's
/// [`PhoenixPubSub`]; each refusal at the key it is about.
fn phoenix(t: &Table<'_, '_>) -> Option<PhoenixPubSub> {
    let pubsub = t.string("phoenix_pubsub");
    let node = t.string("phoenix_node");
    let level = u32_of(t, "compression_level", t.count("compression_level"));
    if pubsub.is_none() {
        for key in ["phoenix_node", "compression_level"] {
            if t.has(key) && !t.has("phoenix_pubsub") {
                t.error(
                    key,
                    "only with phoenix_pubsub (the Phoenix app's PubSub name, \"MyApp.PubSub\")",
                );
            }
        }
        return None;
    }
    let pubsub = pubsub?;
    let Some(node) = node else {
        if !t.has("phoenix_node") {
            t.error(
                "phoenix_node",
                "missing: this node's name among the Phoenix nodes (\"phx_rs@10.0.0.8\"), required with phoenix_pubsub",
            );
        }
        return None;
    };
    let refused = |error: PhoenixPubSubError| {
        let key = match error {
            PhoenixPubSubError::PubSubName(_) => "phoenix_pubsub",
            PhoenixPubSubError::NodeName(_) => "phoenix_node",
            _ => "compression_level",
        };
        t.error(key, error.to_string());
    };
    let options = PhoenixPubSub::new(&pubsub, &node).map_err(refused).ok()?;
    match level {
        Some(level) => options.compression_level(level).map_err(refused).ok(),
        None => Some(options),
    }
}

/// Parses an absolute `http://` or `https://` URL.
fn http_url(t: &Table<'_, '_>, key: &str, text: &str) -> Option<Uri> {
    match text.parse::<Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() =>
        {
            Some(uri)
        }
        _ => {
            t.error(
                key,
                format!("{text:?} is not an http:// or https:// URL with a host"),
            );
            None
        }
    }
}

/// `base` with `path` appended (`http://h:1/api` + `/phx/join`).
pub fn join_url(base: &Uri, path: &str) -> Option<Uri> {
    let base_text = base.to_string();
    let joined = format!(
        "{}/{}",
        base_text.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    joined.parse().ok()
}

const HOOK_DEFAULTS: [(&str, &str, usize, usize, u32); 4] = [
    ("connect", "/phx/connect", 64, 1024, 0),
    ("join", "/phx/join", 64, 1024, 2),
    ("event", "/phx/event", 256, 4096, 0),
    ("notify", "/phx/notify", 4, 10_000, 5),
];

fn hook(parent: Option<&Table<'_, '_>>, name: &str) -> Hook {
    let (_, path, concurrency, queue, retries) = HOOK_DEFAULTS
        .iter()
        .copied()
        .find(|(n, ..)| *n == name)
        .unwrap_or(("", "/", 1, 1, 0));
    let mut hook = Hook {
        path: path.to_owned(),
        timeout: Duration::from_secs(5),
        concurrency,
        queue,
        retries,
    };
    let Some(t) = parent.and_then(|p| p.table(name)) else {
        return hook;
    };
    if let Some(path) = t.string("path") {
        if path.starts_with('/') {
            hook.path = path;
        } else {
            t.error("path", "must start with '/'");
        }
    }
    if let Some(timeout) = t.duration("timeout") {
        if timeout.is_zero() {
            t.error("timeout", "must be more than zero");
        } else {
            hook.timeout = timeout;
        }
    }
    if let Some(n) = usize_of(positive(&t, "concurrency", t.count("concurrency"))) {
        hook.concurrency = n;
    }
    if let Some(n) = usize_of(t.count("queue")) {
        hook.queue = n;
    }
    if let Some(n) = u32_of(&t, "retries", t.count("retries")) {
        if n > 0 && matches!(name, "connect" | "event") {
            t.error(
                "retries",
                format!("{name} calls are never retried (an event is not idempotent): must be 0"),
            );
        } else if n > 10 {
            t.error("retries", "at most 10");
        } else {
            hook.retries = n;
        }
    }
    if name == "notify" {
        // Read by `backend` below; marked here so `finish` does not call them unknown.
        let _ = (t.has("batch"), t.has("flush"));
    }
    t.finish();
    hook
}

fn backend(t: Option<&Table<'_, '_>>) -> Backend {
    let mut backend = Backend {
        url: None,
        secret: Vec::new(),
        health: None,
        http2: false,
        max_answer_bytes: 1024 * 1024,
        pool_idle_timeout: Duration::from_secs(90),
        pool_max_idle: 32,
        breaker: Breaker {
            failures: 5,
            cooldown: Duration::from_secs(5),
        },
        connect: hook(t, "connect"),
        join: hook(t, "join"),
        event: hook(t, "event"),
        notify: hook(t, "notify"),
        notify_batch: 100,
        notify_flush: Duration::from_millis(100),
    };
    let Some(t) = t else { return backend };
    backend.url = t.string("url").and_then(|u| http_url(t, "url", &u));
    if let Some(secret) = t.string("secret") {
        if secret.len() < 32 {
            t.error("secret", "too short: use at least 32 random bytes");
        }
        backend.secret = secret.into_bytes();
    } else if backend.url.is_some() {
        t.error(
            "secret",
            "missing: every request to the backend is signed with it",
        );
    }
    if let Some(health) = t.string("health") {
        backend.health = if health.starts_with('/') {
            backend
                .url
                .as_ref()
                .and_then(|base| join_url(base, &health))
        } else {
            http_url(t, "health", &health)
        };
    }
    backend.http2 = t.bool("http2").unwrap_or(false);
    if let Some(n) = t.size("max_answer_bytes") {
        backend.max_answer_bytes = n.max(1);
    }
    if let Some(d) = t.duration("pool_idle_timeout") {
        backend.pool_idle_timeout = d;
    }
    if let Some(n) = usize_of(t.count("pool_max_idle")) {
        backend.pool_max_idle = n;
    }
    if let Some(b) = t.table("breaker") {
        if let Some(n) = u32_of(
            &b,
            "failures",
            positive(&b, "failures", b.count("failures")),
        ) {
            backend.breaker.failures = n;
        }
        if let Some(d) = b.duration("cooldown") {
            backend.breaker.cooldown = d;
        }
        b.finish();
    }
    if let Some(n) = t.table("notify") {
        if let Some(batch) = usize_of(positive(&n, "batch", n.count("batch"))) {
            backend.notify_batch = batch;
        }
        if let Some(flush) = n.duration("flush") {
            backend.notify_flush = flush;
        }
    }
    // The hook tables were read by `hook` above.
    for name in ["connect", "join", "event", "notify"] {
        let _ = t.has(name);
    }
    backend
}

fn check_origin(t: &Table<'_, '_>) -> CheckOrigin {
    let Some(item) = t.item("check_origin") else {
        return CheckOrigin::Host;
    };
    match item.value {
        toml::de::DeValue::Boolean(true) => CheckOrigin::Host,
        toml::de::DeValue::Boolean(false) => CheckOrigin::Disabled,
        toml::de::DeValue::String(_) => match t.string_of(&item).as_deref() {
            Some("conn") => CheckOrigin::Conn,
            Some(other) => {
                t.error(
                    "check_origin",
                    format!("{other:?}: expected true, false, \"conn\" or a list of origins"),
                );
                CheckOrigin::Host
            }
            None => CheckOrigin::Host,
        },
        toml::de::DeValue::Array(_) => {
            let Some(list) = t.strings_of(&item) else {
                return CheckOrigin::Host;
            };
            match CheckOrigin::allowed(list) {
                Ok(policy) => policy,
                Err(e) => {
                    t.error("check_origin", e.to_string());
                    CheckOrigin::Host
                }
            }
        }
        _ => {
            t.error(
                "check_origin",
                "expected true, false, \"conn\" or a list of origins",
            );
            CheckOrigin::Host
        }
    }
}

fn rate_limit(t: &Table<'_, '_>) -> Option<RateLimit> {
    let r = t.table("rate_limit")?;
    let per_second = u32_of(
        &r,
        "per_second",
        positive(&r, "per_second", r.count("per_second")),
    );
    if per_second.is_none() && !r.has("per_second") {
        r.error("per_second", "missing (required in rate_limit)");
    }
    let mut limit = per_second.map(RateLimit::per_second);
    if let Some(burst) = u32_of(&r, "burst", positive(&r, "burst", r.count("burst"))) {
        limit = limit.map(|l| l.burst(burst));
    }
    let joins = u32_of(
        &r,
        "joins_per_second",
        positive(&r, "joins_per_second", r.count("joins_per_second")),
    );
    let join_burst = u32_of(
        &r,
        "join_burst",
        positive(&r, "join_burst", r.count("join_burst")),
    );
    if joins.is_some() || join_burst.is_some() {
        let j = joins.unwrap_or_else(|| per_second.unwrap_or(1));
        limit = limit.map(|l| l.joins(j, join_burst.unwrap_or(j.saturating_mul(2))));
    }
    if let Some(n) = u32_of(
        &r,
        "close_after",
        positive(&r, "close_after", r.count("close_after")),
    ) {
        limit = limit.map(|l| l.close_after(n));
    }
    r.finish();
    limit
}

fn token_source(t: &Table<'_, '_>) -> TokenSource {
    match t.string("token") {
        None => TokenSource::Param("token".into()),
        Some(s) if s == "auth_token" => TokenSource::AuthToken,
        Some(s) => match s.strip_prefix("param:") {
            Some(name) if !name.is_empty() => TokenSource::Param(name.to_owned()),
            _ => {
                t.error(
                    "token",
                    format!("{s:?}: expected \"param:<name>\" or \"auth_token\""),
                );
                TokenSource::Param("token".into())
            }
        },
    }
}

fn template(t: &Table<'_, '_>, key: &str) -> Option<Template> {
    let text = t.string(key)?;
    match Template::parse(&text) {
        Ok(template) => Some(template),
        Err(e) => {
            t.error(key, format!("bad template: {e}"));
            None
        }
    }
}

fn auth(t: Option<&Table<'_, '_>>, base_dir: &std::path::Path) -> Auth {
    let Some(t) = t else {
        return Auth::None;
    };
    let method = t.required_string("method").unwrap_or_else(|| "none".into());
    match method.as_str() {
        "none" => Auth::None,
        "hook" => {
            let mut headers = Vec::new();
            for name in t.strings("headers").unwrap_or_default() {
                match HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
                    Ok(h) => headers.push(h),
                    Err(_) => t.error("headers", format!("{name:?} is not a header name")),
                }
            }
            Auth::Hook { headers }
        }
        "phoenix_token" => {
            let secret_key_base = t.required_string("secret_key_base");
            let salt = t.required_string("salt");
            let max_age = t.duration("max_age").unwrap_or(Duration::from_secs(86_400));
            let token = token_source(t);
            let assign = t.string("assign").unwrap_or_else(|| "user_id".into());
            let socket_id = template(t, "socket_id");
            match (secret_key_base, salt) {
                (Some(secret_key_base), Some(salt)) => Auth::PhoenixToken {
                    secret_key_base,
                    salt,
                    max_age,
                    token,
                    assign,
                    socket_id,
                },
                _ => Auth::None,
            }
        }
        "jwt" => {
            let token = token_source(t);
            let socket_id = template(t, "socket_id");
            match jwt::config(t, base_dir, token, socket_id) {
                Some(config) => Auth::Jwt(Box::new(config)),
                None => Auth::None,
            }
        }
        other => {
            t.error(
                "method",
                format!("{other:?}: expected \"none\", \"hook\", \"phoenix_token\" or \"jwt\""),
            );
            Auth::None
        }
    }
}

fn field(t: &Table<'_, '_>, item: &Item<'_, '_>) -> Option<Field> {
    let value = t.json_of(item)?;
    Some(match value {
        Value::String(s) => match Template::parse(&s) {
            Ok(template) => Field::Template(template),
            Err(e) => {
                t.doc()
                    .problem(&item.span, &item.key, format!("bad template: {e}"));
                return None;
            }
        },
        other => Field::Literal(other),
    })
}

fn fields(t: &Table<'_, '_>, key: &str) -> Vec<(String, Field)> {
    let Some(table) = t.table(key) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in table_keys(&table) {
        if let Some(item) = table.item(&name) {
            if let Some(f) = field(&table, &item) {
                out.push((name, f));
            }
        }
    }
    table.finish();
    out
}

/// Every key of a free-form table (`set`, `meta`).
fn table_keys(t: &Table<'_, '_>) -> Vec<String> {
    t.json_keys()
}

fn expr(t: &Table<'_, '_>, key: &str, text: &str) -> Option<Expr> {
    match Expr::parse(text) {
        Ok(e) => Some(e),
        Err(e) => {
            t.error(key, format!("bad expression: {e}"));
            None
        }
    }
}

fn channel(t: &Table<'_, '_>) -> Option<ChannelSpec> {
    let topic = t.required_string("topic");
    if let Some(topic) = &topic {
        if topic.is_empty() {
            t.error("topic", "may not be empty");
        } else if topic.find('*').is_some_and(|at| at + 1 != topic.len()) {
            t.error("topic", "'*' may only end a pattern (\"room:*\")");
        }
    }
    let join = match t.item("join") {
        None => JoinPolicy::Hook,
        Some(item) => match t.string_of(&item).as_deref() {
            Some("all") => JoinPolicy::All,
            Some("hook") => JoinPolicy::Hook,
            Some(text) => expr(t, "join", text).map_or(JoinPolicy::Hook, JoinPolicy::When),
            None => JoinPolicy::Hook,
        },
    };
    let presence = t.table("presence").and_then(|p| {
        let key = template(&p, "key");
        if key.is_none() && !p.has("key") {
            p.error("key", "missing: the presence key template (\"{sub}\")");
        }
        let meta = fields(&p, "meta");
        p.finish();
        Some(PresenceSpec { key: key?, meta })
    });
    let notify_leave = t.bool("notify_leave").unwrap_or(false);
    let mut events = Vec::new();
    for e in t.tables("event") {
        let name = e.required_string("name");
        let handle = match e.required_string("handle").as_deref() {
            Some("forward") => Some(Handle::Forward),
            Some("refuse") => Some(Handle::Refuse),
            Some("broadcast") => {
                let include_self = e.bool("self").unwrap_or(true);
                let rate = e.table("rate_limit").and_then(|r| {
                    let per_second = u32_of(
                        &r,
                        "per_second",
                        positive(&r, "per_second", r.count("per_second")),
                    );
                    if per_second.is_none() && !r.has("per_second") {
                        r.error("per_second", "missing (required in rate_limit)");
                    }
                    let burst = u32_of(&r, "burst", positive(&r, "burst", r.count("burst")));
                    r.finish();
                    per_second.map(|per_second| BroadcastRate {
                        per_second,
                        burst: burst.unwrap_or(per_second),
                    })
                });
                Some(Handle::Broadcast { include_self, rate })
            }
            Some(other) => {
                e.error(
                    "handle",
                    format!("{other:?}: expected \"forward\", \"broadcast\" or \"refuse\""),
                );
                None
            }
            None => None,
        };
        if let Some(Handle::Forward | Handle::Refuse) = &handle {
            for key in ["self", "rate_limit"] {
                if e.has(key) {
                    e.error(key, "only a \"broadcast\" rule takes this");
                }
            }
        }
        if let Some(name) = &name {
            if name.is_empty() {
                e.error("name", "may not be empty");
            } else if name.starts_with("phx_") {
                e.error("name", "phx_ events belong to the protocol");
            }
        }
        e.finish();
        if let (Some(name), Some(handle)) = (name, handle) {
            events.push(EventRule { name, handle });
        }
    }
    let mut outgoing = Vec::new();
    for o in t.tables("outgoing") {
        let event = o.required_string("event");
        let when = o.string("when").and_then(|w| expr(&o, "when", &w));
        let drop = o.bool("drop").unwrap_or(false);
        let set = fields(&o, "set");
        let remove = o.strings("remove").unwrap_or_default();
        if drop && (!set.is_empty() || !remove.is_empty()) {
            o.error("drop", "a rule that drops cannot also set or remove");
        }
        if !drop && set.is_empty() && remove.is_empty() {
            o.table_error("an outgoing rule needs drop = true, set or remove");
        }
        o.finish();
        if let Some(event) = event {
            outgoing.push(OutRule {
                event,
                when,
                drop,
                set,
                remove,
            });
        }
    }
    Some(ChannelSpec {
        topic: topic?,
        join,
        presence,
        notify_leave,
        events,
        outgoing,
    })
}

fn socket(t: &Table<'_, '_>, base_dir: &std::path::Path) -> Option<Socket> {
    let path = t.required_string("path");
    if let Some(path) = &path {
        if !path.starts_with('/') {
            t.error("path", "must start with '/'");
        }
    }
    let websocket = t.bool("websocket").unwrap_or(true);
    let longpoll = t.bool("longpoll").unwrap_or(true);
    if !websocket && !longpoll {
        t.error(
            "websocket",
            "websocket and longpoll are both off: nothing to serve",
        );
    }
    let check_origin = check_origin(t);
    let idle_timeout = t.duration("idle_timeout");
    let longpoll_window = t.duration("longpoll_window");
    let max_channels = usize_of(t.count("max_channels"));
    let max_frame_size = t.size("max_frame_size");
    let outbound_bytes = t.size("outbound_bytes");
    let rate_limit = rate_limit(t);
    let notify_disconnect = t.bool("notify_disconnect").unwrap_or(false);
    let auth_table = t.table("auth");
    let auth = auth(auth_table.as_ref(), base_dir);
    if let Some(a) = auth_table {
        a.finish();
    }
    let mut channels = Vec::new();
    let tables = t.tables("channel");
    for c in &tables {
        if let Some(spec) = channel(c) {
            channels.push(spec);
        }
    }
    for c in tables {
        c.finish();
    }
    Some(Socket {
        path: path?,
        websocket,
        longpoll,
        check_origin,
        idle_timeout,
        longpoll_window,
        max_channels,
        max_frame_size,
        outbound_bytes,
        rate_limit,
        notify_disconnect,
        auth,
        channels,
    })
}

#[cfg(test)]
mod tests;
