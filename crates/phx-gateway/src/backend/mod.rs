//! The backend link (docs/gateway.md, "The hook protocol" and "When the backend
//! fails"): signed JSON POSTs through a pooled client, one concurrency cap and bounded
//! queue per hook, a timeout over the whole call, retries only where they are safe, a
//! circuit breaker in front of it all, and a request id in every log line.

pub mod breaker;
pub mod client;
pub mod notify;
pub mod signature;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;

use breaker::{Admission, Breaker};
use client::HttpClient;

use crate::config;
use crate::metrics;

/// The four hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    Connect,
    Join,
    Event,
    Notify,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Join => "join",
            Self::Event => "event",
            Self::Notify => "notify",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a hook call failed. Every variant reaches the client the same way (see the
/// docs' table); the variants are for the log and the `outcome` label.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("breaker open: failing fast")]
    Open,
    #[error("hook queue full")]
    Overloaded,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Unreachable(String),
    #[error("status {status}{hint}", status = .0, hint = status_hint(*.0))]
    Status(u16),
    #[error("answer over {0} bytes")]
    TooLarge(usize),
    #[error("invalid answer: {0}")]
    Invalid(String),
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => ": the backend refused the signature, check backend.secret",
        404 => ": no such route on the backend, check the hook's path",
        _ => "",
    }
}

impl HookError {
    /// The `outcome` label of `phx_gateway_hook_duration_seconds`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Overloaded => "overloaded",
            Self::Timeout(_) => "timeout",
            Self::Unreachable(_) => "unavailable",
            Self::Status(_) => "error",
            Self::TooLarge(_) | Self::Invalid(_) => "invalid",
        }
    }

    /// Whether the backend itself is failing (what the breaker counts): unreachable,
    /// too slow, or answering 5xx. A 4xx or a malformed answer is the application's
    /// bug about one request, not an outage.
    fn counts_against_backend(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Unreachable(_) => true,
            Self::Status(s) => *s >= 500,
            _ => false,
        }
    }

    /// Whether another attempt may help.
    fn retryable(&self, policy: Retry) -> bool {
        match policy {
            Retry::Never => false,
            // A join is retried only when the request surely did not run: the
            // connection failed, or a proxy said the backend is not there.
            Retry::Join => matches!(self, Self::Unreachable(_) | Self::Status(502..=504)),
            // Notifications are delivered at least once: retried on anything but a
            // refusal of the request itself.
            Retry::Notify => !matches!(
                self,
                Self::Status(400..=499) | Self::Invalid(_) | Self::TooLarge(_)
            ),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Retry {
    Never,
    Join,
    Notify,
}

/// A hook's URL, limits and bookkeeping.
struct HookLink {
    kind: HookKind,
    url: Uri,
    settings: config::Hook,
    slots: Semaphore,
    waiting: AtomicUsize,
}

/// The link to the backend, shared by every socket.
pub struct Backend {
    client: HttpClient,
    secret: Vec<u8>,
    max_answer: usize,
    breaker: Breaker,
    hooks: Vec<HookLink>,
    health: Option<Uri>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("breaker_open", &self.breaker.is_open())
            .finish_non_exhaustive()
    }
}

/// A fresh request id: `gw-` and 16 hex digits.
pub fn request_id() -> String {
    format!("gw-{:016x}", rand::random::<u64>())
}

impl Backend {
    /// The link for `config` (its `url` must be set).
    pub fn new(config: &config::Backend, url: &Uri) -> anyhow::Result<Self> {
        let client = client::build(client::PoolSettings {
            idle_timeout: config.pool_idle_timeout,
            max_idle_per_host: config.pool_max_idle,
            http2_only: config.http2,
        })?;
        let hooks = [
            (HookKind::Connect, &config.connect),
            (HookKind::Join, &config.join),
            (HookKind::Event, &config.event),
            (HookKind::Notify, &config.notify),
        ]
        .into_iter()
        .map(|(kind, settings)| {
            let url = config::join_url(url, &settings.path).ok_or_else(|| {
                anyhow::anyhow!("backend url + {} path is not a URL", kind.name())
            })?;
            Ok(HookLink {
                kind,
                url,
                slots: Semaphore::new(settings.concurrency),
                waiting: AtomicUsize::new(0),
                settings: settings.clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            client,
            secret: config.secret.clone(),
            max_answer: config.max_answer_bytes,
            breaker: Breaker::new(config.breaker),
            hooks,
            health: config.health.clone(),
        })
    }

    fn link(&self, kind: HookKind) -> &HookLink {
        &self.hooks[kind.index()]
    }

    /// The hook's settings.
    pub fn settings(&self, kind: HookKind) -> &config::Hook {
        &self.link(kind).settings
    }

    /// Whether calls fail fast now.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Calls `kind` with `body`; the answer parsed as `T`. Never takes longer than the
    /// hook's timeout (notifications: per attempt).
    pub async fn call<T: DeserializeOwned>(
        &self,
        kind: HookKind,
        body: &impl Serialize,
        request_id: &str,
    ) -> Result<T, HookError> {
        self.call_with(kind, body, request_id, |bytes| {
            serde_json::from_slice::<T>(bytes).map_err(|e| e.to_string())
        })
        .await
    }

    /// As [`Backend::call`], the answer read by `read` (notifications ignore it).
    pub async fn call_with<T>(
        &self,
        kind: HookKind,
        body: &impl Serialize,
        request_id: &str,
        read: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, HookError> {
        let started = Instant::now();
        let link = self.link(kind);
        let result = match serde_json::to_vec(body) {
            Ok(bytes) => self.call_bytes(link, Bytes::from(bytes), request_id).await,
            Err(e) => Err(HookError::Invalid(format!("request not serializable: {e}"))),
        };
        let result = result.and_then(|bytes| read(&bytes).map_err(HookError::Invalid));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        metrics::hook_duration(kind.name(), outcome, started.elapsed());
        match &result {
            Ok(_) => tracing::debug!(
                hook = kind.name(),
                request_id,
                ms = started.elapsed().as_millis() as u64,
                "hook answered"
            ),
            Err(error) => tracing::warn!(
                hook = kind.name(),
                request_id,
                url = %link.url,
                ms = started.elapsed().as_millis() as u64,
                %error,
                "hook failed"
            ),
        }
        result
    }

    /// Queue, breaker, attempts: the answer's bytes.
    async fn call_bytes(
        &self,
        link: &HookLink,
        body: Bytes,
        request_id: &str,
    ) -> Result<Bytes, HookError> {
        let timeout = link.settings.timeout;
        let policy = match link.kind {
            HookKind::Join if link.settings.retries > 0 => Retry::Join,
            HookKind::Notify if link.settings.retries > 0 => Retry::Notify,
            _ => Retry::Never,
        };
        // The bounded queue: a call that would wait behind `queue` others fails now.
        let waiting = link.waiting.fetch_add(1, Ordering::AcqRel) + 1;
        let queued = QueueGuard {
            link,
            counted: true,
        };
        if waiting > link.settings.queue && link.slots.available_permits() == 0 {
            return Err(HookError::Overloaded);
        }
        metrics::hook_queue(link.kind.name(), link.waiting.load(Ordering::Acquire));
        let deadline = tokio::time::Instant::now() + timeout;
        let permit = match tokio::time::timeout_at(deadline, link.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(HookError::Unreachable("backend link closed".into())),
            Err(_) => return Err(HookError::Timeout(timeout)),
        };
        drop(queued);
        let _in_flight = InFlight::new(link.kind.name());
        let mut attempt = 0u32;
        loop {
            let attempt_deadline = match policy {
                // Each notification attempt gets the whole timeout.
                Retry::Notify => tokio::time::Instant::now() + timeout,
                _ => deadline,
            };
            let result = self
                .attempt(link, &body, request_id, attempt_deadline, timeout)
                .await;
            let retry = match &result {
                Err(e) if attempt < link.settings.retries && e.retryable(policy) => {
                    let backoff = match policy {
                        Retry::Join => Duration::from_millis(50 * 4u64.pow(attempt.min(4))),
                        _ => Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6)))
                            .min(Duration::from_secs(5)),
                    };
                    let fits = match policy {
                        Retry::Join => tokio::time::Instant::now() + backoff < deadline,
                        _ => true,
                    };
                    fits.then_some(backoff)
                }
                _ => None,
            };
            match retry {
                Some(backoff) => {
                    if let Err(e) = &result {
                        tracing::info!(hook = link.kind.name(), request_id, attempt, error = %e, backoff_ms = backoff.as_millis() as u64, "retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                None => {
                    drop(permit);
                    return result;
                }
            }
        }
    }

    /// One request, through the breaker.
    async fn attempt(
        &self,
        link: &HookLink,
        body: &Bytes,
        request_id: &str,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<Bytes, HookError> {
        let Some(admission) = self.breaker.admit(Instant::now()) else {
            metrics::breaker_open(true);
            return Err(HookError::Open);
        };
        let probe = ProbeGuard {
            breaker: &self.breaker,
            armed: admission == Admission::Probe,
        };
        let result =
            match tokio::time::timeout_at(deadline, self.send(link, body, request_id)).await {
                Ok(result) => result,
                Err(_) => Err(HookError::Timeout(timeout)),
            };
        probe.disarm();
        match &result {
            Ok(_) => self.breaker.success(),
            Err(e) if e.counts_against_backend() => self.breaker.failure(Instant::now()),
            // The backend answered: it is up, whatever it said.
            Err(_) => self.breaker.success(),
        }
        metrics::breaker_open(self.breaker.is_open());
        result
    }

    async fn send(
        &self,
        link: &HookLink,
        body: &Bytes,
        request_id: &str,
    ) -> Result<Bytes, HookError> {
        let request = self.signed(Method::POST, &link.url, body.clone(), request_id)?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| HookError::Unreachable(describe(&e)))?;
        let status = response.status();
        // A hook answers 200; `notify` takes any 2xx.
        let accepted =
            status == StatusCode::OK || (link.kind == HookKind::Notify && status.is_success());
        if !accepted {
            return Err(HookError::Status(status.as_u16()));
        }
        match Limited::new(response.into_body(), self.max_answer)
            .collect()
            .await
        {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Err(HookError::TooLarge(self.max_answer))
            }
            Err(e) => Err(HookError::Unreachable(format!("answer cut short: {e}"))),
        }
    }

    /// A request with the signature, request id and JSON headers.
    fn signed(
        &self,
        method: Method,
        url: &Uri,
        body: Bytes,
        request_id: &str,
    ) -> Result<Request<Full<Bytes>>, HookError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = signature::sign(&self.secret, now, &body);
        Request::builder()
            .method(method)
            .uri(url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static("phx-gateway"))
            .header(signature::HEADER, signature)
            .header("x-request-id", request_id)
            .body(Full::new(body))
            .map_err(|e| HookError::Invalid(format!("request not buildable: {e}")))
    }

    /// `/readyz`'s backend check: the health URL answers 2xx within 2 s.
    pub async fn health(&self) -> Result<(), String> {
        let Some(url) = &self.health else {
            return Ok(());
        };
        let request = self
            .signed(Method::GET, url, Bytes::new(), &request_id())
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(2), self.client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(format!("status {}", response.status().as_u16())),
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err("timed out after 2s".into()),
        }
    }
}

/// Keeps the `waiting` count honest however the call ends.
struct QueueGuard<'a> {
    link: &'a HookLink,
    counted: bool,
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        if self.counted {
            let left = self.link.waiting.fetch_sub(1, Ordering::AcqRel) - 1;
            metrics::hook_queue(self.link.kind.name(), left);
        }
    }
}

/// The in-flight gauge, decremented however the call ends.
struct InFlight(&'static str);

impl InFlight {
    fn new(hook: &'static str) -> Self {
        metrics::hook_in_flight(hook, 1.0);
        Self(hook)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::hook_in_flight(self.0, -1.0);
    }
}

/// A probe whose call is dropped before it ends (the socket went away) gives the
/// breaker back, so the next call probes instead of the breaker staying half-open.
struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl ProbeGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.abandon_probe(Instant::now());
        }
    }
}

/// A client error with its cause chain (hyper-util's top-level message is generic).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
