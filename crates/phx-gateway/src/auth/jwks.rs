//! A JWKS key set fetched from a URL and cached (docs/gateway.md, `jwks_url`): used for
//! `jwks_refresh`, fetched again at once for a `kid` it lacks (a key rotation), but
//! never more often than `jwks_min_interval`, so made-up `kid`s cannot turn each
//! connection attempt into a fetch. One fetch at a time; the others wait for it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::jwt::usable;
use crate::backend::client::{self, HttpClient, PoolSettings};
use crate::metrics;

/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

struct Cached {
    set: JwkSet,
    fetched_at: Instant,
}

/// The key set of one socket's `jwks_url`.
pub struct Jwks {
    url: Uri,
    refresh: Duration,
    min_interval: Duration,
    client: HttpClient,
    current: RwLock<Option<Arc<Cached>>>,
    /// Held while fetching; holds the time of the last attempt.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(url: Uri, refresh: Duration, min_interval: Duration) -> anyhow::Result<Self> {
        let client = client::build(PoolSettings {
            idle_timeout: Duration::from_secs(30),
            max_idle_per_host: 2,
            http2_only: false,
        })?;
        Ok(Self {
            url,
            refresh,
            min_interval,
            client,
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
        })
    }

    fn snapshot(&self) -> Option<Arc<Cached>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The first fetch, at start.
    pub async fn prefetch(&self) {
        let mut last = self.fetching.lock().await;
        *last = Some(Instant::now());
        self.fetch().await;
    }

    /// The key for `kid` usable with `alg`, fetching the set when it is stale or lacks
    /// the key (within the limits above).
    pub async fn key(
        &self,
        kid: Option<&str>,
        family: AlgorithmFamily,
        alg: Algorithm,
    ) -> Option<Arc<DecodingKey>> {
        let now = Instant::now();
        if let Some(cached) = self.snapshot() {
            if now.duration_since(cached.fetched_at) < self.refresh {
                if let Some(key) = find(&cached.set, kid, family, alg) {
                    return Some(key);
                }
            }
        }
        // Stale, empty, or no such key: one task fetches, the others wait and look
        // at what it got.
        let mut last = self.fetching.lock().await;
        let now = Instant::now();
        let cached = self.snapshot();
        let fresh = cached
            .as_ref()
            .is_some_and(|c| now.duration_since(c.fetched_at) < self.refresh);
        if let Some(key) = cached
            .as_ref()
            .filter(|_| fresh)
            .and_then(|c| find(&c.set, kid, family, alg))
        {
            return Some(key);
        }
        let may_fetch = last.is_none_or(|at| now.duration_since(at) >= self.min_interval);
        if may_fetch {
            *last = Some(now);
            self.fetch().await;
        } else {
            tracing::debug!(
                ?kid,
                "jwks: key not found; not fetching again before the minimum interval"
            );
        }
        drop(last);
        // A stale set still serves the keys it has while the URL fails.
        self.snapshot().and_then(|c| find(&c.set, kid, family, alg))
    }

    async fn fetch(&self) {
        match self.get().await {
            Ok(set) => {
                metrics::jwks_fetch("ok");
                tracing::info!(url = %self.url, keys = set.keys.len(), "jwks fetched");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Cached {
                    set,
                    fetched_at: Instant::now(),
                }));
            }
            Err(error) => {
                metrics::jwks_fetch("error");
                tracing::warn!(url = %self.url, %error, "jwks fetch failed");
            }
        }
    }

    async fn get(&self) -> Result<JwkSet, String> {
        let request = hyper::Request::get(self.url.clone())
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| format!("timed out after {FETCH_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status().as_u16()));
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(response.into_body(), MAX_JWKS_BYTES).collect(),
        )
        .await
        .map_err(|_| "body timed out".to_owned())?
        .map_err(|e| e.to_string())?
        .to_bytes();
        serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))
    }
}

/// The key `kid` names, or the only usable key when the token names none.
fn find(
    set: &JwkSet,
    kid: Option<&str>,
    family: AlgorithmFamily,
    alg: Algorithm,
) -> Option<Arc<DecodingKey>> {
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid))
            .find_map(|k| usable(k, family, alg))
            .map(Arc::new),
        None => {
            let mut keys = set.keys.iter().filter_map(|k| usable(k, family, alg));
            let only = keys.next()?;
            keys.next().is_none().then(|| Arc::new(only))
        }
    }
}
