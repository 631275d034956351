//! `chat-app`: wiring only (configuration, store, endpoint, signals).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use chat_app::config::{describe_policy, Config};
use chat_app::directory::RoomDirectory;
use chat_app::limit::RateLimit;
use chat_app::room::RoomChannel;
use chat_app::store::{
    MemoryStore, MeteredStore, PostgresStore, Store, TimeoutStore, WriterConfig,
};
use chat_app::uploads::files::Files;
use chat_app::uploads::http::UploadsHttp;
use chat_app::uploads::signed::UrlSigner;
use chat_app::uploads::store::UploadStore;
use chat_app::web::Web;
use clap::Parser;
use phx_server::cluster::RedisAdapter;
use phx_server::{Endpoint, SocketConfig};

/// The Redis channel prefix of chat-app nodes: every node of one cluster uses it. Redis
/// pub/sub ignores the database number, so two chat clusters need two Redis servers.
const CLUSTER_PREFIX: &str = "phx-chat";

/// An ordinary configuration or start-up error: one line on stderr, exit 1, no
/// backtrace (clap's own usage errors exit 2 the same way).
fn main() -> ExitCode {
    let config = Config::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("starting the runtime: {e}")),
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("chat-app: error: {message}");
    ExitCode::FAILURE
}

async fn run(config: Config) -> Result<(), String> {
    let started = Instant::now();
    init_logs(&config)?;
    phx_server::log_panics();

    let static_dir = config.static_dir()?;
    let web = Web::new(&static_dir);
    if !static_dir.join("index.html").is_file() {
        return Err(format!(
            "{} has no index.html: STATIC_DIR / --static-dir must name the js-client/ directory",
            static_dir.display()
        ));
    }
    if !web.phoenix_module().is_file() {
        return Err(format!(
            "{} is missing: run `npm ci --omit=dev` in {} (scripts/run-chat.sh does)",
            web.phoenix_module().display(),
            static_dir.display()
        ));
    }

    // Checked before connecting to anything: a cluster whose nodes would disagree (own
    // history, own session secret) is refused outright.
    let cluster = config.cluster_settings().map_err(|e| e.to_string())?;

    // Every store call is bounded, whichever store: see `TimeoutStore`.
    let timeout = config.limits.store_timeout();
    let (store, counts, database): (Arc<dyn Store>, _, String) = match config.database_url() {
        Some(url) => {
            let described = chat_app::store::split_sslmode(url)
                .ok()
                .and_then(|(url, mode)| {
                    let config = url.parse::<tokio_postgres::Config>().ok()?;
                    Some(format!(
                        "{} tls={mode:?}",
                        chat_app::store::describe_pg(&config)
                    ))
                })
                .unwrap_or_default();
            // A batch's statement gets the same deadline as a store call, so a writer
            // stuck behind a partition lets go when its senders do.
            let writer = WriterConfig {
                deadline: timeout,
                ..WriterConfig::default()
            };
            let store = PostgresStore::connect_with(url, config.pool_size, writer)
                .await
                .map_err(|e| format!("DATABASE_URL: {e}"))?;
            let store = MeteredStore::new(TimeoutStore::new(store, timeout));
            let counts = store.counts();
            (Arc::new(store), counts, described)
        }
        None => {
            tracing::warn!(
                "DATABASE_URL is not set: history is kept in memory and is NOT persisted"
            );
            let store = MeteredStore::new(TimeoutStore::new(MemoryStore::new(), timeout));
            let counts = store.counts();
            (Arc::new(store), counts, "memory (not persisted)".to_owned())
        }
    };

    // Bind first: the origin policy names the port, which `PORT=0` only tells now.
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = phx_server::listen(addr)
        .map_err(|e| format!("cannot listen on {addr} (--bind/--port): {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("listening socket: {e}"))?;
    let origin_policy = config.origin_policy(local.port());

    let room_store = store.clone();
    let rooms = Arc::new(RoomDirectory::new(
        store.clone(),
        config.limits.room_creation(),
    ));
    let typing = Arc::new(RateLimit::new(config.limits.typing()));
    let searches = Arc::new(RateLimit::new(chat_app::search::default_rate()));
    tracing::info!(
        store_timeout_ms = config.limits.store_timeout_ms,
        room_creation_burst = config.limits.room_creation_burst,
        room_creation_refill_ms = config.limits.room_creation_refill_ms,
        typing_interval_ms = config.limits.typing_interval_ms,
        rate_limit = config.limits.rate_limit,
        rate_limit_burst = config.limits.rate_limit_burst,
        join_rate_limit = config.limits.join_rate_limit,
        invite_cooldown_secs = config.accounts.invite_cooldown_secs,
        "chat limits in force (SECURITY.md)"
    );
    // Accounts: sessions signed with the endpoint's secret (configured, else kept in
    // the database, else random for this process).
    let chat_app::accounts::wiring::Accounts {
        store: accounts,
        secret,
        secret_source,
    } = chat_app::accounts::wiring::accounts(
        config.database_url(),
        config.pool_size,
        timeout,
        cluster.is_some(),
        config.secret_key_base.as_deref(),
    )
    .await
    .map_err(|e| format!("{e:#}"))?;
    let sessions = chat_app::accounts::session::Sessions::new(&secret, accounts.clone());
    let connect = chat_app::connect::SessionConnect::new(sessions.clone());
    let user_channel = chat_app::accounts::wiring::user_channel_with(
        &accounts,
        &store,
        &rooms,
        config.accounts.invite_limits(),
    );
    // A guest name is one guest's at a time (docs/chat.md, "Guest names").
    let guest_names = Arc::new(
        chat_app::accounts::guest_names::GuestNames::new(chat_app::accounts::guest_names::HOLD)
            .in_cluster(cluster.is_some()),
    );
    let mut socket = SocketConfig::new(connect).check_origin(origin_policy.clone());
    if let Some(limit) = config.limits.inbound_limit() {
        socket = socket.rate_limit(limit);
    }
    // Uploads: files on disk under UPLOAD_DIR, fetched only through URLs signed with the
    // secret. The files are also the room channel's `Attachments` (a message's
    // attachments must be its author's uploads; a deleted message's files go with it).
    let upload_limits = config.uploads.limits()?;
    let upload_store = Arc::new(UploadStore::open(&config.uploads.upload_dir).map_err(|e| {
        format!(
            "UPLOAD_DIR / --upload-dir {}: {e}",
            config.uploads.upload_dir.display()
        )
    })?);
    let uploads = Arc::new(Files::new(
        upload_store,
        upload_limits.quota_bytes,
        UrlSigner::new(&secret, config.uploads.url_ttl()),
        config.uploads.unposted_ttl(),
    ));
    uploads.spawn_sweeper();
    tracing::info!(
        upload_dir = %uploads.store().dir().display(),
        upload_max_bytes = upload_limits.max_bytes,
        upload_quota_bytes = upload_limits.quota_bytes,
        upload_burst = config.uploads.upload_burst,
        upload_refill_ms = config.uploads.upload_refill_ms,
        upload_user_at_once = config.uploads.upload_user_at_once,
        upload_address_at_once = config.uploads.upload_address_at_once,
        upload_at_once = config.uploads.upload_at_once,
        upload_buffer_bytes = config.uploads.upload_buffer_bytes,
        upload_min_rate = config.uploads.upload_min_rate,
        upload_url_ttl_secs = config.uploads.upload_url_ttl_secs,
        upload_unposted_ttl_secs = config.uploads.upload_unposted_ttl_secs,
        "uploads are stored in {} (a cluster's nodes must share it)",
        uploads.store().dir().display()
    );
    let room_accounts = accounts.clone();
    let attachments: Arc<dyn chat_app::uploads::Attachments> = uploads.clone();
    let socket = socket
        .channel("room:*", move || {
            RoomChannel::new(room_store.clone(), rooms.clone(), typing.clone())
                .with_accounts(room_accounts.clone())
                .with_attachments(attachments.clone())
                .with_guest_names(guest_names.clone())
                .with_search_limit(searches.clone())
        })
        .channel("user:*", user_channel);
    let limits = config.accounts.api_limits();
    tracing::info!(
        login_address_burst = config.accounts.login_address_burst,
        register_burst = config.accounts.register_burst,
        register_attempt_burst = config.accounts.register_attempt_burst,
        password_hashes = limits.hashing.permits,
        login_queue = limits.hashing.queue,
        login_queue_per_address = limits.hashing.queue_per_group,
        "account limits in force (SECURITY.md): at most {} MiB of Argon2 memory",
        limits.hashing.permits * chat_app::accounts::password::ARGON2_MIB
    );
    let web = chat_app::accounts::api::AccountsHttp::with_limits(sessions.clone(), web, limits);
    let web = UploadsHttp::new(web, sessions, uploads.clone(), upload_limits);
    let mut builder = Endpoint::builder().socket("/socket", socket).http(web);
    if let Some(host) = &config.host {
        builder = builder.host(host.clone());
    }
    builder = builder.secret_key_base(secret);
    let cluster_line = match &cluster {
        Some(settings) => {
            // No connection is made here: the adapter connects in the background and
            // retries with backoff, so an unreachable Redis delays nothing and this node
            // serves its own sockets meanwhile (logged by phx-server until the link is up).
            let mut adapter = RedisAdapter::new(&settings.redis_url, CLUSTER_PREFIX)
                .map_err(|e| format!("REDIS_URL: {e}"))?;
            if let Some(phoenix) = &settings.phoenix {
                adapter = adapter.phoenix(phoenix.clone());
            }
            let node = settings.node_name(local.port());
            tracing::info!(
                redis = %settings.redis_address(),
                node = %node,
                heartbeat_ms = config.cluster.cluster_heartbeat_ms,
                down_ms = config.cluster.cluster_down_ms,
                "cluster on: broadcasts, presence, typing and disconnects span every node \
                 of this Redis; until Redis answers, this node serves its own sockets and retries"
            );
            builder = builder
                .cluster(adapter)
                .node_name(node.clone())
                .cluster_heartbeat(settings.heartbeat)
                .cluster_down_after(settings.down_after);
            format!("on (node {node}, redis {})", settings.redis_address())
        }
        None => {
            tracing::info!("cluster off: a single node (set REDIS_URL to join a cluster)");
            "off".to_owned()
        }
    };
    let scheme = match (&config.connections.tls_cert, &config.connections.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = phx_server::Tls::from_pem_files(cert, key)
                .map_err(|e| format!("TLS_CERT_FILE / TLS_KEY_FILE: {e}"))?
                .handshake_timeout(std::time::Duration::from_millis(
                    config.connections.tls_handshake_timeout_ms,
                ));
            builder = builder.tls(tls);
            "https"
        }
        _ => "http",
    };
    builder = chat_app::ops::switch_on(builder, &config, store.clone());
    let endpoint = builder.build();
    chat_app::ops::spawn_pool_gauges(store.clone());

    let drain = config.ops.drain();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %local,
        database = %database,
        cluster = %cluster_line,
        pool_size = config.pool_size,
        static_dir = %static_dir.display(),
        origin = %describe_policy(&origin_policy),
        host = config.host.as_deref().unwrap_or("-"),
        secret_key_base = secret_source.describe(),
        api = if config.ops.api_key().is_some() { "on (key set)" } else { "off" },
        metrics = config.ops.metrics,
        drain = %format!("{} every {:?} within {:?}", drain.batch_size, drain.batch_interval, drain.budget),
        max_connections = endpoint.max_connections(),
        max_connections_per_address = config.connections.max_connections_per_address,
        outbound_bytes_total = config.connections.outbound_bytes_total,
        log_format = %config.logs.log_format,
        tls = %config.connections.tls_cert.as_ref().map_or("off".to_owned(), |cert| format!("on ({}; SIGHUP reloads it)", cert.display())),
        "chat-app listening on {scheme}://{local}"
    );

    let shutdown = endpoint.clone();
    tokio::spawn(async move {
        phx_server::shutdown_signal().await;
        tracing::info!(
            sockets = shutdown.socket_count(),
            "signal received: draining (closing sockets with 1012)"
        );
        shutdown.shutdown();
    });
    endpoint
        .serve(listener)
        .await
        .map_err(|e| format!("serving: {e}"))?;
    tracing::info!(
        uptime_s = started.elapsed().as_secs(),
        store_calls = counts.calls.load(Ordering::Relaxed),
        store_errors = counts.errors.load(Ordering::Relaxed),
        messages_stored = counts.stored.load(Ordering::Relaxed),
        "chat-app stopped"
    );
    Ok(())
}

/// Text (coloured on a terminal) or JSON lines on stderr; the filter from `--log`,
/// else `RUST_LOG`, else `info` (see `LogFlags::filter`).
fn init_logs(config: &Config) -> Result<(), String> {
    let filter = config.logs.filter()?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.logs.log_format == "json" {
        builder.json().init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    Ok(())
}
