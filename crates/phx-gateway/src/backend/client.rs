//! The HTTP client the gateway talks to the backend and JWKS URLs with: hyper-util's
//! pooled client over rustls (ring provider, Mozilla roots), HTTP/1.1 keep-alive, and
//! HTTP/2 when ALPN agrees or when told to use it without negotiation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A pooled client sending full bodies.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How the pool behaves.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
    /// Speak HTTP/2 on every connection without negotiating (h2c for `http://`).
    pub http2_only: bool,
}

/// A client with these settings.
pub fn build(settings: PoolSettings) -> anyhow::Result<HttpClient> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)?
        .https_or_http();
    let connector = if settings.http2_only {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.enable_http1().enable_http2().wrap_connector(http)
    };
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(settings.idle_timeout)
        .pool_max_idle_per_host(settings.max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(settings.http2_only)
        .build(connector))
}
