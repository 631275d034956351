//! `phx-gateway`: Phoenix Channels for a backend in any language (docs/gateway.md).
//!
//! phoenix.js clients connect to the gateway; the application answers a few signed
//! HTTP hooks (connect, join, event, notify) and publishes through the server API.
//! Everything else (channels, presence, long poll, the cluster, metrics, drain) is
//! phx-server, configured from one TOML file.
//!
//! Module map: `config` (the file: reading, checking, every error with its line),
//! `vars`/`template`/`expr` (what rules and templates can name), `protocol` (the
//! hooks' JSON), `backend` (the signed, bounded, breaker-guarded HTTP link and the
//! notification queue), `auth` (connect: hook, Phoenix.Token, JWT with JWKS),
//! `channel` (the channel type behind every route), `static_files` (`[[static]]`, read
//! at start, served from memory), `metrics`, and this file (the command line and the
//! wiring).

mod auth;
mod backend;
mod channel;
mod config;
mod expr;
mod metrics;
mod protocol;
mod static_files;
mod template;
mod vars;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use phx_server::cluster::RedisAdapter;
use phx_server::{Endpoint, ServerApi, SocketConfig};

use auth::{GatewayConnect, Method};
use backend::notify::Notifier;
use backend::Backend;
use channel::{GatewayChannel, Route};
use config::{Config, Problem};

#[derive(Parser, Debug)]
#[command(
    name = "phx-gateway",
    about = "Phoenix Channels for a backend in any language: phoenix.js connects here, your backend answers signed HTTP hooks (docs/gateway.md)"
)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, env = "PHX_GATEWAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the configuration file: print every problem with its key and line, exit 1
    /// if there is one.
    Check,
}

/// Milliseconds since the Unix epoch (notifications' `at`).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Some(path) = cli.config.clone() else {
        eprintln!("phx-gateway: no configuration: pass --config FILE or set PHX_GATEWAY_CONFIG");
        return std::process::ExitCode::from(2);
    };
    let source = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", path.display());
            return std::process::ExitCode::from(2);
        }
    };
    let env = |name: &str| std::env::var(name).ok();
    let base = path.parent().unwrap_or(Path::new("."));
    let config = match Config::parse(&source, &env, base) {
        Ok(config) => config,
        Err(problems) => {
            print_problems(&path, &problems);
            return std::process::ExitCode::from(1);
        }
    };
    if matches!(cli.command, Some(Command::Check)) {
        println!("ok: {}", config.summary());
        return std::process::ExitCode::SUCCESS;
    }
    init_logging();
    phx_server::log_panics();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("phx-gateway: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("phx-gateway: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn print_problems(path: &Path, problems: &[Problem]) {
    for p in problems {
        if p.key.is_empty() {
            eprintln!("{}:{}: {}", path.display(), p.line, p.message);
        } else {
            eprintln!("{}:{}: {}: {}", path.display(), p.line, p.key, p.message);
        }
    }
    eprintln!(
        "{}: {} problem{}",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,phx_server=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn run(config: Config) -> anyhow::Result<()> {
    let Config {
        server,
        tls,
        cluster,
        backend: backend_config,
        sockets,
        static_files,
    } = config;
    let backend = match &backend_config.url {
        Some(url) => Some(Arc::new(Backend::new(&backend_config, url)?)),
        None => None,
    };
    let notifies = sockets
        .iter()
        .any(|s| s.notify_disconnect || s.channels.iter().any(|c| c.notify_leave));
    let notifier = match (&backend, notifies) {
        (Some(b), true) => Some(Notifier::start(
            b.clone(),
            backend_config.notify_batch,
            backend_config.notify_flush,
        )),
        _ => None,
    };

    let mut builder = Endpoint::builder()
        .metrics(server.metrics)
        .health(server.health)
        .drain(server.drain);
    if let Some(host) = &server.host {
        builder = builder.host(host.clone());
    }
    if let Some(secret) = &server.secret_key_base {
        builder = builder.secret_key_base(secret.clone());
    }
    if let Some(n) = server.max_request_line {
        builder = builder.max_request_line(n);
    }
    if let Some(n) = server.max_header_bytes {
        builder = builder.max_header_bytes(n);
    }
    if let Some(n) = server.longpoll_max_sessions {
        builder = builder.longpoll_max_sessions(n);
    }
    if let Some(n) = server.longpoll_max_sessions_per_address {
        builder = builder.longpoll_max_sessions_per_address(n);
    }
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    if let Some(tls) = tls {
        // https:// and wss://; SIGHUP reads the certificate files again (phx-server's Tls).
        builder = builder.tls(tls);
    }
    if !static_files.is_empty() {
        // [[static]]: a page served from the gateway's own origin.
        builder = builder.http(static_files);
    }
    if let Some(api) = &server.api {
        builder = builder.server_api(ServerApi::new(api.key.clone()).body_limit(api.body_limit));
    }
    if let Some(c) = &cluster {
        let mut redis = RedisAdapter::new(&c.redis_url, &c.name).context("[cluster] redis_url")?;
        if let Some(phoenix) = &c.phoenix {
            // Beside a Phoenix cluster: broadcasts also cross phx:Elixir.<PubSub>.Adapter.
            redis = redis.phoenix(phoenix.clone());
        }
        builder = builder
            .cluster(redis)
            .cluster_heartbeat(c.heartbeat)
            .cluster_down_after(c.down_after);
    }
    if let Some(name) = &server.node_name {
        builder = builder.node_name(name.clone());
    }
    if let Some(b) = &backend {
        if backend_config.health.is_some() {
            let b = b.clone();
            builder = builder.ready_check("backend", move || {
                let b = b.clone();
                async move { b.health().await }
            });
        }
        let b = b.clone();
        builder = builder.ready_check("backend_breaker", move || {
            let open = b.breaker_open();
            async move {
                if open {
                    Err("open: hooks fail fast".to_owned())
                } else {
                    Ok(())
                }
            }
        });
    }

    for socket in sockets {
        let mount: Arc<str> = Arc::from(socket.path.as_str());
        let method = Method::new(socket.auth, backend.as_ref())
            .with_context(|| format!("socket {}", socket.path))?;
        if let Method::Jwt(verifier) = &method {
            verifier.warm_up().await;
        }
        let connect = GatewayConnect {
            mount: mount.clone(),
            method,
            notifier: notifier.clone().filter(|_| socket.notify_disconnect),
        };
        let mut config = SocketConfig::new(connect)
            .websocket(socket.websocket)
            .longpoll(socket.longpoll)
            .check_origin(socket.check_origin);
        if let Some(t) = socket.idle_timeout {
            config = config.timeout(t);
        }
        if let Some(w) = socket.longpoll_window {
            config = config.longpoll_window(w);
        }
        if let Some(n) = socket.max_channels {
            config = config.max_channels(n);
        }
        if let Some(n) = socket.max_frame_size {
            config = config.max_frame_size(n);
        }
        if let Some(n) = socket.outbound_bytes {
            config = config.outbound_bytes(n);
        }
        if let Some(limit) = socket.rate_limit {
            config = config.rate_limit(limit);
        }
        for spec in socket.channels {
            let pattern = spec.topic.clone();
            let notifier = notifier.clone().filter(|_| spec.notify_leave);
            let route = Arc::new(Route::new(spec, backend.clone(), notifier));
            config = config.channel(&pattern, move || GatewayChannel::new(route.clone()));
        }
        builder = builder.socket(&socket.path, config);
        tracing::info!(mount = %mount, "socket mounted");
    }
    let endpoint = builder.build();
    metrics::describe();

    let listener =
        phx_server::listen(server.listen).with_context(|| format!("binding {}", server.listen))?;
    let local = listener.local_addr()?;
    println!("phx-gateway listening on {scheme}://{local}");
    let stopper = endpoint.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: draining");
        stopper.shutdown();
    });
    endpoint.serve(listener).await?;
    tracing::info!("stopped");
    // Give queued notifications a moment to leave (the drain closed every socket).
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// SIGTERM (what a deploy sends) or SIGINT.
async fn wait_for_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
