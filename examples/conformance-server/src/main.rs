//! The conformance-server contract of `docs/conformance.md`, on `phx-server`'s public
//! API only: the sockets, channels and control routes `conformance-tests/` drives.

mod channels;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use phx_server::cluster::{PhoenixPubSub, RedisAdapter};
use phx_server::{
    status_response, Body, CheckOrigin, Connect, ConnectInfo, Connected, Endpoint, HttpHandler,
    Params, Refusal, SocketConfig, Transport,
};
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(about = "phx-server conformance server (docs/conformance.md)")]
struct Args {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 4010)]
    port: u16,
    /// WebSocket idle timeout in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 60_000)]
    timeout_ms: u64,
    /// Long-poll window in milliseconds (§7.3; sessions end after 1.5 windows without
    /// a poll). Optional in docs/conformance.md: it lets the suite test the window quickly.
    #[arg(long = "longpoll-window-ms", default_value_t = 10_000)]
    longpoll_window_ms: u64,
    /// Join a cluster through this Redis (`redis://127.0.0.1:6379`); unset: one node.
    #[arg(long = "redis-url")]
    redis_url: Option<String>,
    /// This node's name in the cluster.
    #[arg(long = "node-name")]
    node_name: Option<String>,
    /// Also share broadcasts with the Phoenix nodes of an Elixir app that uses
    /// Phoenix.PubSub.Redis on the same Redis: its PubSub name (`MyApp.PubSub`). Needs
    /// --redis-url and --phoenix-node (docs/cluster.md, "Beside a Phoenix cluster").
    #[arg(long = "phoenix-pubsub", env = "PHOENIX_PUBSUB")]
    phoenix_pubsub: Option<String>,
    /// This node's name among the Phoenix nodes (`phx_rs@10.0.0.8`), unique among them.
    #[arg(long = "phoenix-node", env = "PHOENIX_NODE")]
    phoenix_node: Option<String>,
    /// zlib level (0 = none, to 9) of the messages published for the Phoenix nodes.
    #[arg(
        long = "phoenix-compression-level",
        env = "PHOENIX_COMPRESSION_LEVEL",
        default_value_t = 0
    )]
    phoenix_compression_level: u32,
    /// Cluster heartbeat period in milliseconds (default 1500).
    #[arg(long = "cluster-heartbeat-ms", default_value_t = 1_500)]
    cluster_heartbeat_ms: u64,
    /// Milliseconds of silence after which another node is declared down (default 5000).
    #[arg(long = "cluster-down-ms", default_value_t = 5_000)]
    cluster_down_ms: u64,
    /// Count in Prometheus form and serve GET /metrics.
    #[arg(long)]
    metrics: bool,
    /// Sockets closed per drain batch on SIGTERM/SIGINT.
    #[arg(long = "drain-batch", default_value_t = 10_000)]
    drain_batch: usize,
    /// Milliseconds between drain batches.
    #[arg(long = "drain-interval-ms", default_value_t = 2_000)]
    drain_interval_ms: u64,
    /// TCP connections held at once (HTTP 503 past it). Unset: 90 % of the open-file
    /// limit.
    #[arg(long = "max-connections", env = "MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// TCP connections per client address (HTTP 429 past it). Unset: the total, since
    /// every suite client comes from 127.0.0.1.
    #[arg(
        long = "max-connections-per-address",
        env = "MAX_CONNECTIONS_PER_ADDRESS"
    )]
    max_connections_per_address: Option<usize>,
    /// Bytes of outbound frames all WebSockets hold at once.
    #[arg(long = "outbound-bytes-total", env = "OUTBOUND_BYTES_TOTAL",
          default_value_t = phx_server::DEFAULT_OUTBOUND_BYTES_TOTAL)]
    outbound_bytes_total: usize,
    /// Serve https:// and wss:// with this PEM certificate chain (needs --tls-key);
    /// SIGHUP reloads it.
    #[arg(long = "tls-cert", env = "TLS_CERT_FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long = "tls-key", env = "TLS_KEY_FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

/// The connect hook of every mount.
struct TestConnect;

impl Connect for TestConnect {
    type Assigns = channels::Client;

    async fn connect(
        &self,
        params: &Params,
        info: &ConnectInfo,
    ) -> Result<Connected<channels::Client>, Refusal> {
        if params.get_str("reject") == Some("true") {
            return Err(Refusal::forbidden());
        }
        if params.get_str("ratelimit") == Some("true") {
            return Err(match info.transport {
                Transport::LongPoll => Refusal::forbidden(),
                _ => Refusal::with_status(StatusCode::TOO_MANY_REQUESTS),
            });
        }
        let user_id = params.get_str("user_id").map(str::to_owned);
        let mut connected = Connected::new(channels::Client {
            user_id: user_id.clone(),
            auth_token: info.auth_token.clone(),
        });
        if let Some(user_id) = user_id {
            connected = connected.with_id(format!("user_sockets:{user_id}"));
        }
        Ok(connected)
    }
}

fn socket(timeout: Duration, window: Duration) -> SocketConfig<channels::Client> {
    SocketConfig::new(TestConnect)
        .timeout(timeout)
        .longpoll_window(window)
        .check_origin(CheckOrigin::Allowed(vec!["//example.com".into()]))
        .channel("room:*", channels::Room::default)
        .channel("custom:*", channels::Custom::default)
        .channel("presence:*", channels::PresenceRoom::default)
}

/// `POST /test/disconnect` and `POST /test/broadcast`.
struct Control;

fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    Params::from_query(req.uri().query().unwrap_or(""))
        .ok()?
        .get_str(key)
        .map(str::to_owned)
}

impl HttpHandler for Control {
    async fn call(&self, req: Request<Incoming>, endpoint: &Endpoint) -> Response<Body> {
        if req.method() != Method::POST {
            return status_response(StatusCode::NOT_FOUND, "");
        }
        match req.uri().path() {
            "/test/disconnect" => {
                let Some(id) = query_param(&req, "id") else {
                    return status_response(StatusCode::BAD_REQUEST, "id missing");
                };
                endpoint.disconnect(&id);
                status_response(StatusCode::NO_CONTENT, "")
            }
            "/test/broadcast" => {
                let (Some(topic), Some(event)) =
                    (query_param(&req, "topic"), query_param(&req, "event"))
                else {
                    return status_response(StatusCode::BAD_REQUEST, "topic and event required");
                };
                let body: Bytes = match req.into_body().collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => return status_response(StatusCode::BAD_REQUEST, "unreadable body"),
                };
                let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
                    return status_response(StatusCode::BAD_REQUEST, "body must be JSON");
                };
                match endpoint.broadcast(&topic, &event, payload) {
                    Ok(()) => status_response(StatusCode::NO_CONTENT, ""),
                    Err(_) => {
                        status_response(StatusCode::BAD_REQUEST, "payload must be a JSON object")
                    }
                }
            }
            _ => status_response(StatusCode::NOT_FOUND, ""),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    phx_server::log_panics();
    let args = Args::parse();
    let timeout = Duration::from_millis(args.timeout_ms);
    let window = Duration::from_millis(args.longpoll_window_ms);
    let mut builder = Endpoint::builder()
        .metrics(args.metrics)
        .health(true)
        .drain(phx_server::Drain::new(
            args.drain_batch,
            Duration::from_millis(args.drain_interval_ms),
            Duration::from_secs(30),
        ))
        // Every suite client comes from 127.0.0.1, and the long-poll run holds 200 of
        // them at once (plus sessions of earlier tests still expiring): one address
        // here stands for many users.
        .longpoll_max_sessions_per_address(phx_server::DEFAULT_LONGPOLL_MAX_SESSIONS)
        .outbound_bytes_total(args.outbound_bytes_total)
        .socket("/ws", socket(timeout, window))
        .socket("/ws/limited", socket(timeout, window).max_channels(1))
        .socket(
            "/ws/open",
            socket(timeout, window).check_origin(CheckOrigin::Disabled),
        )
        .http(Control);
    if args.phoenix_pubsub.is_some() && args.redis_url.is_none() {
        anyhow::bail!(
            "--phoenix-pubsub needs --redis-url: Phoenix nodes are reached through Redis"
        );
    }
    if let Some(url) = &args.redis_url {
        let mut adapter = RedisAdapter::new(url, "phx-conformance").context("--redis-url")?;
        if let Some(pubsub) = &args.phoenix_pubsub {
            let node = args.phoenix_node.as_deref().context(
                "--phoenix-pubsub needs --phoenix-node (this node's name among the Phoenix nodes)",
            )?;
            let phoenix = PhoenixPubSub::new(pubsub, node)
                .and_then(|p| p.compression_level(args.phoenix_compression_level))
                .context("--phoenix-pubsub")?;
            adapter = adapter.phoenix(phoenix);
        }
        builder = builder
            .cluster(adapter)
            .cluster_heartbeat(Duration::from_millis(args.cluster_heartbeat_ms))
            .cluster_down_after(Duration::from_millis(args.cluster_down_ms));
        if let Some(name) = &args.node_name {
            builder = builder.node_name(name.clone());
        }
    }
    if let Some(max) = args.max_connections {
        builder = builder.max_connections(max);
    }
    // Like the long-poll sessions: one address stands for many users here, unless the
    // caller asks for a per-address cap (the abuse suite does).
    builder =
        builder.max_connections_per_address(args.max_connections_per_address.unwrap_or(usize::MAX));
    let scheme = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            builder = builder
                .tls(phx_server::Tls::from_pem_files(cert, key).context("--tls-cert/--tls-key")?);
            "wss"
        }
        _ => "ws",
    };
    let endpoint = builder.build();
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = phx_server::listen(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    println!("conformance-server listening on {scheme}://{local}");
    let shutdown = endpoint.clone();
    tokio::spawn(async move {
        phx_server::shutdown_signal().await;
        shutdown.shutdown();
    });
    endpoint.serve(listener).await?;
    Ok(())
}
