//! The long-poll transport (`<mount>/longpoll`, §7).
//!
//! A session is a [`Socket`] driven by HTTP: `POST` feeds it client messages (ndjson,
//! §7.4) and waits until they were processed; `GET` takes what it wrote, or waits up to
//! the window for something to arrive (§7.3). Sessions are named by signed tokens
//! ([`crate::token`]), end after 1.5 windows without a GET (§7.5), and buffer at most
//! `longpoll_max_buffered` messages and `outbound_bytes` bytes between polls: a client
//! that stops polling while traffic keeps coming has its session ended (its next GET gets
//! a new session, 410, and phoenix.js rejoins) instead of growing memory without bound.
//!
//! How many sessions live at once is capped too ([`limit`]): a GET that
//! would open one more than the endpoint or its client address may hold is answered 503
//! or 429 before any origin or connect work.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use dashmap::DashMap;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use phx_protocol::Message;
use tokio::sync::{mpsc, oneshot};

use crate::address_limit::{AddressLimit, LimitError, Slot};
use crate::config::SocketOptions;
use crate::connect::Transport;
use crate::http::{status_response, Body};
use crate::outbox::Outbox;
use crate::params::Params;
use crate::socket::{Driver, Flow};
use crate::telemetry::CloseReason;
use crate::transport::{authorize, origin_allowed, Authorized, Services};
use token::Signer;

/// Lines of one POST that are used; the rest are ignored (§7.4, Phoenix ≥ 1.8.9).
const MAX_BATCH: usize = 100;
/// POST bodies above this are refused with HTTP 400 (Plug's ~8 MB).
const MAX_BODY: usize = 8_000_000;
/// Longest base64 line accepted.
const MAX_BASE64: usize = 10_000_000;
const TOKEN_HEADER: &str = "x-phoenix-longpoll-token";
const AUTH_TOKEN_HEADER: &str = "x-phoenix-authtoken";

pub(crate) mod limit;
mod token;

use crate::outbox::LongPollBuffer;

/// One batch of POSTed lines and where to say they were processed.
struct Dispatch {
    lines: Vec<Line>,
    done: oneshot::Sender<()>,
}

enum Line {
    Text(Bytes),
    Binary(Vec<u8>),
}

struct Session {
    buffer: Arc<LongPollBuffer>,
    dispatch: mpsc::Sender<Dispatch>,
    /// Milliseconds since `epoch` of the last GET.
    last_poll: AtomicU64,
    epoch: Instant,
}

impl Session {
    fn touch(&self) {
        self.last_poll
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_poll.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// All long-poll sessions of the endpoint.
pub(crate) struct Sessions {
    signer: Signer,
    live: DashMap<u64, Arc<Session>>,
    limit: Arc<AddressLimit>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("live", &self.live.len())
            .field("limit", &self.limit)
            .finish()
    }
}

impl Sessions {
    pub(crate) fn new(secret: &[u8], max_sessions: usize, max_per_address: usize) -> Self {
        Self {
            signer: Signer::new(secret),
            live: DashMap::new(),
            limit: AddressLimit::new(max_sessions, max_per_address),
        }
    }

    /// Sessions alive now, those still in their connect hook included.
    pub(crate) fn count(&self) -> usize {
        self.limit.live()
    }

    fn find(&self, token: Option<&str>) -> Option<Arc<Session>> {
        let id = self.signer.verify(token?)?;
        self.live
            .get(&id)
            .map(|s| s.clone())
            .filter(|s| !s.buffer.ended().is_cancelled())
    }
}

/// A session's registration: dropped when its task ends, however it ends (a panic
/// included), it forgets the session and gives its slot back.
struct Registration {
    services: Arc<Services>,
    id: u64,
    _slot: Slot,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.services.longpoll_sessions().live.remove(&self.id);
    }
}

fn json_response(body: String) -> Response<Body> {
    let mut resp = Response::new(Body::new(Bytes::from(body)));
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    resp
}

fn status_json(status: u16) -> Response<Body> {
    json_response(format!(r#"{{"status":{status}}}"#))
}

/// A new session refused by a cap: 503 when the endpoint is full, 429 when the client's
/// address is. The status travels in the HTTP status line only, with an empty body:
/// phoenix.js reads a long-poll answer's status from its JSON body, and a JSON status it
/// does not know (503, 429) makes it throw and stall for good, whereas a body that is
/// not JSON counts as a network error, after which it reconnects with its backoff
/// (10 ms growing to 5 s).
fn session_refused(error: LimitError) -> Response<Body> {
    let status = match error {
        LimitError::Endpoint => StatusCode::SERVICE_UNAVAILABLE,
        LimitError::Address => StatusCode::TOO_MANY_REQUESTS,
    };
    let mut resp = status_response(status, "");
    let headers = resp.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    // Slots come free as idle sessions expire (1.5 to 3 windows, §7.5); phoenix.js
    // ignores this and uses its own backoff, other clients may not.
    headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

fn messages_json(status: u16, token: &str, messages: &[Bytes]) -> Response<Body> {
    let mut body = format!(
        r#"{{"status":{status},"token":{},"messages":["#,
        serde_json::Value::from(token)
    );
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        // Frames are serializer text output, hence UTF-8; each travels as a JSON string.
        let text = String::from_utf8_lossy(message);
        body.push_str(&serde_json::Value::from(text.as_ref()).to_string());
    }
    body.push_str("]}");
    json_response(body)
}

/// Answers `<mount>/longpoll`.
pub(crate) async fn handle(
    services: &Arc<Services>,
    config: &Arc<SocketOptions>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let params = match Params::from_query(req.uri().query().unwrap_or("")) {
        Ok(params) => params,
        Err(error) => return crate::transport::params_refused(&error),
    };
    let token = req
        .headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| params.get_str("token").map(str::to_owned));
    match *req.method() {
        Method::OPTIONS => {
            if let Some(refused) = origin_refused(services, config, &req) {
                return refused;
            }
            let mut resp = status_response(StatusCode::OK, "");
            let requested = req
                .headers()
                .get_all("access-control-request-headers")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            let headers = resp.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&requested) {
                headers.insert("access-control-allow-headers", value);
            }
            headers.insert(
                "access-control-allow-methods",
                HeaderValue::from_static("get, post, options"),
            );
            headers.insert("access-control-max-age", HeaderValue::from_static("3600"));
            headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
            resp
        }
        Method::GET => match services.longpoll_sessions().find(token.as_deref()) {
            Some(session) => {
                if let Some(refused) = origin_refused(services, config, &req) {
                    return refused;
                }
                poll(
                    services,
                    config,
                    session,
                    token.as_deref().unwrap_or_default(),
                )
                .await
            }
            None => {
                // The caps come first: a flood of token-less GETs costs a counter update
                // each, not an origin check and a connect hook.
                let slot = match services.longpoll_sessions().limit.acquire(peer.ip()) {
                    Ok(slot) => slot,
                    Err(error) => {
                        tracing::debug!(%error, %peer, "long-poll session refused");
                        return session_refused(error);
                    }
                };
                if let Some(refused) = origin_refused(services, config, &req) {
                    return refused;
                }
                new_session(services, config, req, peer, &params, slot).await
            }
        },
        Method::POST => {
            if let Some(refused) = origin_refused(services, config, &req) {
                return refused;
            }
            match services.longpoll_sessions().find(token.as_deref()) {
                Some(session) => publish(config, session, req, services.body_timeout).await,
                None => status_json(410),
            }
        }
        _ => status_response(StatusCode::BAD_REQUEST, ""),
    }
}

fn origin_refused(
    services: &Arc<Services>,
    config: &SocketOptions,
    req: &Request<Incoming>,
) -> Option<Response<Body>> {
    (!origin_allowed(services, config, req.headers(), req.extensions())).then(|| status_json(403))
}

/// First GET (or a GET whose session is gone): connect and answer 410 with a token.
async fn new_session(
    services: &Arc<Services>,
    config: &Arc<SocketOptions>,
    req: Request<Incoming>,
    peer: SocketAddr,
    params: &Params,
    slot: Slot,
) -> Response<Body> {
    let auth_token = config
        .auth_token_enabled()
        .then(|| {
            req.headers()
                .get(AUTH_TOKEN_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .flatten();
    let (head, _body) = req.into_parts();
    let Ok(accepted) = authorize(
        services,
        config,
        &head,
        peer,
        Transport::LongPoll,
        auth_token,
        params,
    )
    .await
    else {
        return status_json(403);
    };
    let buffer = Arc::new(LongPollBuffer::bounded(
        config.max_buffered(),
        config.outbound_byte_limit(),
    ));
    let (dispatch, dispatch_rx) = mpsc::channel(4);
    let session = Arc::new(Session {
        buffer: buffer.clone(),
        dispatch,
        last_poll: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let sessions = services.longpoll_sessions();
    let mut id: u64 = rand::random();
    while sessions.live.contains_key(&id) {
        id = rand::random();
    }
    sessions.live.insert(id, session.clone());
    let registration = Registration {
        services: services.clone(),
        id,
        _slot: slot,
    };
    let token = sessions.signer.sign(id);
    let task_services = services.clone();
    let config = config.clone();
    services.tasks().spawn(async move {
        let _registration = registration;
        run_session(task_services, config, accepted, session, dispatch_rx).await;
    });
    messages_json(410, &token, &[])
}

/// §7.3: buffered messages at once, else wait up to the window, else 204.
async fn poll(
    services: &Arc<Services>,
    config: &SocketOptions,
    session: Arc<Session>,
    token: &str,
) -> Response<Body> {
    session.touch();
    let deadline = tokio::time::Instant::now() + config.window();
    loop {
        let notified = session.buffer.notified();
        let messages = session.buffer.take();
        if !messages.is_empty() {
            session.touch();
            return messages_json(200, token, &messages);
        }
        tokio::select! {
            () = notified => {}
            () = session.buffer.ended().cancelled() => {
                // Deliver what the session wrote before it ended, then it is gone.
                let messages = session.buffer.take();
                if !messages.is_empty() {
                    return messages_json(200, token, &messages);
                }
                return messages_json(410, token, &[]);
            }
            () = services.shutdown_token().cancelled() => return messages_json(410, token, &[]),
            () = tokio::time::sleep_until(deadline) => {
                session.touch();
                return messages_json(204, token, &[]);
            }
        }
    }
}

/// §7.4: ndjson (≤ 100 lines, base64 lines are binary frames) or one text message.
async fn publish(
    config: &SocketOptions,
    session: Arc<Session>,
    req: Request<Incoming>,
    body_timeout: Duration,
) -> Response<Body> {
    let ndjson = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "application/x-ndjson");
    let body = match crate::read_body(req.into_body(), MAX_BODY, body_timeout).await {
        Ok(body) => body,
        // A body that does not arrive in time: 408, and hyper closes the connection
        // (the rest of the body was never read). Anything else keeps Phoenix's 400.
        Err(e @ crate::BodyError::TimedOut { .. }) => return status_response(e.status(), ""),
        Err(_) => return status_response(StatusCode::BAD_REQUEST, ""),
    };
    let lines = if ndjson {
        let mut lines = Vec::new();
        for part in body.split(|b| *b == b'\n').take(MAX_BATCH) {
            let part = part.strip_suffix(b"\r").unwrap_or(part);
            if part.iter().all(u8::is_ascii_whitespace) {
                continue; // §11.2: blank lines are skipped
            }
            if part.first() == Some(&b'[') {
                lines.push(Line::Text(body.slice_ref(part)));
            } else if part.len() > MAX_BASE64 {
                return status_response(StatusCode::BAD_REQUEST, "");
            } else {
                match STANDARD.decode(part) {
                    Ok(bytes) => lines.push(Line::Binary(bytes)),
                    // Phoenix's session crashes on undecodable base64; the POST then
                    // reports a dispatch timeout.
                    Err(_) => {
                        session.buffer.end();
                        return status_json(408);
                    }
                }
            }
        }
        lines
    } else {
        vec![Line::Text(body)]
    };
    let (done, processed) = oneshot::channel();
    if session
        .dispatch
        .send(Dispatch { lines, done })
        .await
        .is_err()
    {
        return status_json(410);
    }
    match tokio::time::timeout(config.window(), processed).await {
        Ok(Ok(())) => status_json(200),
        // The session ended while processing (e.g. a malformed message, §2.6).
        Ok(Err(_)) => status_json(408),
        Err(_) => status_json(408),
    }
}

async fn run_session(
    services: Arc<Services>,
    config: Arc<SocketOptions>,
    accepted: Authorized,
    session: Arc<Session>,
    mut dispatch: mpsc::Receiver<Dispatch>,
) {
    let outbox = Outbox::LongPoll(session.buffer.clone());
    let socket_id = accepted.connected.id.clone().unwrap_or_default();
    let (socket, inbox) = accepted.into_socket(&services, &config, outbox);
    let mut driver = Driver::new(socket, inbox, config.inbound_limit());
    let telemetry = services.hub.telemetry.clone();
    telemetry.socket_opened(Transport::LongPoll);
    telemetry.longpoll_sessions.increment(1.0);
    let registration = services
        .sockets
        .register(Outbox::LongPoll(session.buffer.clone()));
    // §7.5: no GET for 1.5 windows ends the session (checked every 1.5 windows).
    let inactivity = config.window().mul_f32(1.5);
    let mut check = tokio::time::interval(inactivity);
    check.tick().await;
    session.touch();
    let ended = session.buffer.ended().clone();
    // POSTed lines not yet handed to the driver, and where to say they were processed.
    let mut lines: VecDeque<Line> = VecDeque::new();
    let mut waiting: Option<oneshot::Sender<()>> = None;
    loop {
        // A POST is answered once all its lines were taken by the driver (heartbeats are
        // answered at once, other messages run in order, see `Driver`).
        while driver.accepts() {
            let Some(line) = lines.pop_front() else {
                break;
            };
            let decoded: Result<Message, _> = match &line {
                Line::Text(text) => driver.serializer().decode_text(text),
                Line::Binary(bytes) => driver.serializer().decode_binary(bytes),
            };
            let flow = match decoded {
                Ok(message) => driver.receive(message, Instant::now()),
                Err(error) => {
                    tracing::info!(%error, "malformed long-poll message: ending the session");
                    Flow::Close(0)
                }
            };
            if let Flow::Close(_) = flow {
                lines.clear();
                waiting = None;
                session.buffer.end();
                break;
            }
        }
        if lines.is_empty() {
            if let Some(done) = waiting.take() {
                let _ = done.send(());
            }
        }
        tokio::select! {
            biased;
            () = ended.cancelled() => break,
            () = services.shutdown_token().cancelled() => break,
            batch = dispatch.recv(), if waiting.is_none() => {
                let Some(Dispatch { lines: batch, done }) = batch else { break };
                lines.extend(batch);
                waiting = Some(done);
            }
            flow = driver.step(true) => {
                if let Flow::Close(_) = flow {
                    break;
                }
            }
            _ = check.tick() => {
                if session.idle_for() > inactivity {
                    tracing::debug!("long-poll session inactive: ending it");
                    break;
                }
            }
        }
    }
    drop(waiting);
    driver.close().await;
    telemetry.longpoll_sessions.decrement(1.0);
    tracing::debug!(socket_id, "DISCONNECTED (long poll)");
    telemetry.socket_closed(Transport::LongPoll, CloseReason::Client);
    drop(registration);
    session.buffer.end();
}
