//! `chat-app`: wiring only (configuration, store, endpoint, signals).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use chat_app::config::{describe_policy, Config};
use chat_app::directory::RoomDirectory;
use chat_app::limit::RateLimit;
use chat_app::room::RoomChannel;
use chat_app::store::{MemoryStore, PostgresStore, Store, TimeoutStore};
use chat_app::web::Web;
use clap::Parser;
use phx_server::{Endpoint, SocketConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    phx_server::log_panics();

    // Every store call is bounded, whichever store: see `TimeoutStore`.
    let timeout = config.store_timeout();
    let store: Arc<dyn Store> = match &config.database_url {
        Some(url) => {
            let store = PostgresStore::connect(url, config.pool_size)
                .await
                .context("connecting to PostgreSQL (DATABASE_URL)")?;
            tracing::info!(
                pool_size = config.pool_size,
                "history is stored in PostgreSQL"
            );
            Arc::new(TimeoutStore::new(store, timeout))
        }
        None => {
            tracing::warn!(
                "DATABASE_URL is not set: history is kept in memory and is NOT persisted"
            );
            Arc::new(TimeoutStore::new(MemoryStore::new(), timeout))
        }
    };

    let web = Web::new(&config.static_dir);
    if !web.phoenix_module().exists() {
        tracing::error!(
            path = %web.phoenix_module().display(),
            "phoenix.js not found: run `npm ci` in js-client/ (the README's run command does)"
        );
    }

    // Bind first: the origin policy names the port, which `PORT=0` only tells now.
    let addr: SocketAddr = format!("{}:{}", config.bind, config.port)
        .parse()
        .context("--bind/--port")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let origin_policy = config.origin_policy(local.port());
    tracing::info!("origin check: {}", describe_policy(&origin_policy));

    let room_store = store.clone();
    let rooms = Arc::new(RoomDirectory::new(store.clone(), config.room_creation()));
    let typing = Arc::new(RateLimit::new(config.typing()));
    tracing::info!(
        store_timeout_ms = config.store_timeout_ms,
        room_creation_burst = config.room_creation_burst,
        room_creation_refill_ms = config.room_creation_refill_ms,
        typing_interval_ms = config.typing_interval_ms,
        rate_limit = config.rate_limit,
        rate_limit_burst = config.rate_limit_burst,
        join_rate_limit = config.join_rate_limit,
        "chat limits in force (SECURITY.md)"
    );
    // Accounts (issue 14): sessions signed with the endpoint's secret.
    let secret = chat_app::accounts::wiring::secret(config.secret_key_base.as_deref());
    let accounts = chat_app::accounts::wiring::account_store(
        config.database_url.as_deref(),
        config.pool_size,
        timeout,
    )
    .await?;
    let sessions = chat_app::accounts::session::Sessions::new(&secret, accounts.clone());
    let connect = chat_app::accounts::session::SessionConnect::new(sessions.clone());
    let user_channel = chat_app::accounts::wiring::user_channel(&accounts, &store, &rooms);
    let mut socket = SocketConfig::new(connect).check_origin(origin_policy);
    if let Some(limit) = config.inbound_limit() {
        socket = socket.rate_limit(limit);
    }
    let room_accounts = accounts.clone();
    let socket = socket
        .channel("room:*", move || {
            RoomChannel::new(room_store.clone(), rooms.clone(), typing.clone())
                .with_accounts(room_accounts.clone())
        })
        .channel("user:*", user_channel);
    let limits =
        chat_app::accounts::wiring::limits(config.register_burst, config.login_address_burst);
    let web = chat_app::accounts::api::AccountsHttp::with_limits(sessions, web, limits);
    let mut builder = Endpoint::builder().socket("/socket", socket).http(web);
    if let Some(host) = &config.host {
        builder = builder.host(host.clone());
    }
    builder = builder.secret_key_base(secret);
    let endpoint = builder.build();
    tracing::info!(
        "chat-app listening on http://{local} (store: {})",
        store.describe()
    );

    let shutdown = endpoint.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: closing sockets with 1012");
        shutdown.shutdown();
    });
    endpoint.serve(listener).await?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
