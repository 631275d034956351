//! What operators get from the chat app (docs/operating.md): metrics, health, the
//! server API and the drain, switched on in the endpoint from the configuration, plus
//! the chat's own series.

use std::sync::Arc;
use std::time::Duration;

use phx_server::{EndpointBuilder, ServerApi};

use crate::config::Config;
use crate::store::Store;

/// How often the `chat_pg_pool_*` gauges are refreshed.
pub const POOL_GAUGE_PERIOD: Duration = Duration::from_secs(1);

/// Switches on what the configuration asks for: `/metrics` (unless `--metrics false`),
/// `/healthz` and `/readyz` with a `store` check, the server API when a key is set, the
/// drain plan, and the connection and outbound-memory caps.
///
/// Readiness of a Redis cluster link comes from `phx-server` itself once the endpoint
/// is clustered (`EndpointBuilder::cluster`): `/readyz` reports `cluster` down and
/// `phx_cluster_link_up` shows it, so nothing is added here for it.
pub fn switch_on(
    builder: EndpointBuilder,
    config: &Config,
    store: Arc<dyn Store>,
) -> EndpointBuilder {
    let mut builder = builder
        .metrics(config.ops.metrics)
        .drain(config.ops.drain())
        .max_connections_per_address(config.connections.max_connections_per_address)
        .outbound_bytes_total(config.connections.outbound_bytes_total)
        .body_timeout(Duration::from_millis(config.connections.body_timeout_ms))
        .ready_check("store", move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        });
    if let Some(max) = config.connections.max_connections {
        builder = builder.max_connections(max);
    }
    match config.ops.api_key() {
        Some(key) => {
            builder = builder.server_api(ServerApi::new(key));
            tracing::info!(
                "server API on: /api/broadcast, /api/disconnect, /api/presence (bearer API_KEY)"
            );
        }
        None => tracing::info!("server API off: set API_KEY or --api-key to serve /api/*"),
    }
    builder
}

/// Keeps `chat_pg_pool_size`, `chat_pg_pool_available` and `chat_pg_pool_waiting`
/// current while the app runs (a store without a pool has none of them).
pub fn spawn_pool_gauges(store: Arc<dyn Store>) {
    if store.pool_status().is_none() {
        return;
    }
    let size = metrics::gauge!("chat_pg_pool_size");
    let available = metrics::gauge!("chat_pg_pool_available");
    let waiting = metrics::gauge!("chat_pg_pool_waiting");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POOL_GAUGE_PERIOD);
        loop {
            tick.tick().await;
            if let Some(status) = store.pool_status() {
                size.set(status.size as f64);
                available.set(status.available as f64);
                waiting.set(status.waiting as f64);
            }
        }
    });
}
