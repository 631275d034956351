//! The JSON account API under `/api/`, in front of the page's handler:
//!
//! - `POST /api/register` `{"username", "password"}` → 201 `{"token", "user": {"id", "username"}}`,
//!   or 422 `{"error"}` (name taken, also after case and confusable folding; password
//!   too short, too long or too common). Only a registration that creates an account
//!   spends the address's registration budget; every attempt spends the (larger)
//!   attempt budget, which stops floods of refused ones.
//! - `POST /api/login` `{"username", "password"}` → 200 as above, or 401
//!   `{"error": "invalid username or password"}`, the same for an unknown user and a
//!   wrong password (an unknown user is checked against a dummy hash, so it takes as
//!   long), or 429 when the attempts of that client address or that username are spent.
//!   A name that no account can have (`validate::username`) is refused before any
//!   budget is spent, and a username's budget is spent only by attempts that its
//!   address's budget let through, so one address cannot lock other users out.
//!
//! Every 429 says when to retry, in the `Retry-After` header (seconds) and in the text:
//! `{"error": "too many attempts: try again in 42 s", "retry_after": 42}`.
//! - `POST /api/logout` `{"token"}` → 200 `{}`: ends every session of the user and
//!   closes every socket of `user_socket:<id>` (1001).
//! - `GET /api/rooms` → `{"rooms": [{"room", "members", "online"}]}`: the public room
//!   directory (at most [`DIRECTORY_MAX`]), most online first.
//! - `POST /api/session` `{"token"}` → 200 `{"user"}` while the session lasts, else 401;
//!   503 when the account store cannot say (an outage must not sign anyone out).
//!
//! Bodies over [`MAX_BODY`] bytes are refused (413). Hashing goes through a
//! [`HashQueue`]: a few at a time on the blocking pool, a bounded queue served fairly
//! across client addresses, 429 with `Retry-After` when it is full.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use phx_server::{Body, BodyError, Endpoint, HttpHandler, PeerAddr};
use serde::Deserialize;
use serde_json::{json, Value};

use super::hash_queue::{retry_secs, HashLimits, HashQueue, HashRefused};
use super::session::Sessions;
use super::{names, password, User};
use crate::limit::{address_key, Rate, RateLimit};
use crate::validate;

/// Most rooms `GET /api/rooms` lists.
pub const DIRECTORY_MAX: usize = 100;
/// Largest request body of the API, in bytes.
pub const MAX_BODY: usize = 4096;
/// Password hashes computed at once (Argon2id takes 19 MiB and tens of ms each).
pub const MAX_HASHING: usize = super::hash_queue::DEFAULT_PERMITS;
/// Login attempts per username: 5 at once, then one per minute.
pub const LOGIN_PER_USERNAME: Rate = Rate {
    burst: 5,
    period: Duration::from_secs(60),
};
/// Login attempts per client address (IPv6: per /64): 20 at once, then one per 3 s.
pub const LOGIN_PER_ADDRESS: Rate = Rate {
    burst: 20,
    period: Duration::from_secs(3),
};
/// Registrations (accounts created) per client address: 5 at once, then one per minute.
pub const REGISTER_PER_ADDRESS: Rate = Rate {
    burst: 5,
    period: Duration::from_secs(60),
};
/// Registration attempts per client address, refused ones included (a taken name, a
/// weak password): 20 at once, then one per 3 s.
pub const REGISTER_ATTEMPTS_PER_ADDRESS: Rate = Rate {
    burst: 20,
    period: Duration::from_secs(3),
};

const INVALID_LOGIN: &str = "invalid username or password";

/// Login and registration limits (defaults above).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// Login attempts per username.
    pub login_per_username: Rate,
    /// Login attempts per client address.
    pub login_per_address: Rate,
    /// Registrations (accounts created) per client address.
    pub register_per_address: Rate,
    /// Registration attempts per client address, refused ones included.
    pub register_attempts_per_address: Rate,
    /// Password hashes at once and the queue in front of them.
    pub hashing: HashLimits,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            login_per_username: LOGIN_PER_USERNAME,
            login_per_address: LOGIN_PER_ADDRESS,
            register_per_address: REGISTER_PER_ADDRESS,
            register_attempts_per_address: REGISTER_ATTEMPTS_PER_ADDRESS,
            hashing: HashLimits::default(),
        }
    }
}

/// The key a username's login budget is kept under: 16 bytes of SHA-256 of its folded
/// form, so every entry of the table has the same small size whatever the name.
pub fn username_key(fold: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(fold.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The account API wrapped around another handler (the page), which gets every request
/// not under `/api/`.
pub struct AccountsHttp<H> {
    inner: H,
    sessions: Sessions,
    login_by_name: RateLimit<[u8; 16]>,
    login_by_addr: RateLimit<IpAddr>,
    register_by_addr: RateLimit<IpAddr>,
    register_attempts_by_addr: RateLimit<IpAddr>,
    hashes: HashQueue,
}

#[derive(Deserialize)]
struct Credentials {
    username: Option<Value>,
    password: Option<Value>,
}

fn json_response(status: StatusCode, body: Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        "application/json; charset=utf-8"
            .parse()
            .expect("static header"),
    );
    resp
}

fn error(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    json_response(status, json!({ "error": text.into() }))
}

/// 429 with the time to retry in `Retry-After` and in words: `"{what}: try again in N s"`.
fn too_many(what: &str, wait: Duration) -> Response<Body> {
    let secs = retry_secs(wait);
    let mut resp = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        json!({ "error": format!("{what}: try again in {secs} s"), "retry_after": secs }),
    );
    resp.headers_mut().insert(RETRY_AFTER, secs.into());
    resp
}

/// The answer to a hash that was not computed.
fn not_hashed(refused: HashRefused) -> Response<Body> {
    match refused {
        HashRefused::Busy { retry_after } => too_many("too many sign-ins in progress", retry_after),
        HashRefused::Failed => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

const TOO_MANY_ATTEMPTS: &str = "too many attempts";

impl<H: HttpHandler> AccountsHttp<H> {
    /// The API with the default limits, in front of `inner`.
    pub fn new(sessions: Sessions, inner: H) -> Self {
        Self::with_limits(sessions, inner, ApiLimits::default())
    }

    /// The same with other limits (tests).
    pub fn with_limits(sessions: Sessions, inner: H, limits: ApiLimits) -> Self {
        Self {
            inner,
            sessions,
            login_by_name: RateLimit::new(limits.login_per_username),
            login_by_addr: RateLimit::new(limits.login_per_address),
            register_by_addr: RateLimit::new(limits.register_per_address),
            register_attempts_by_addr: RateLimit::new(limits.register_attempts_per_address),
            hashes: HashQueue::new(limits.hashing),
        }
    }

    /// The queue every password hash goes through (its gauges: running, peak, waiting).
    pub fn hash_queue(&self) -> &HashQueue {
        &self.hashes
    }

    async fn session_reply(&self, status: StatusCode, user: &User) -> Response<Body> {
        match self.sessions.create(user).await {
            Ok(token) => json_response(
                status,
                json!({ "token": token, "user": { "id": user.id, "username": user.username } }),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "session: store unavailable");
                error(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        }
    }

    async fn register(&self, peer: IpAddr, body: Bytes) -> Response<Body> {
        let Some((name, pass)) = credentials(&body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "expected {\"username\", \"password\"}",
            );
        };
        let address = address_key(peer);
        let now = Instant::now();
        // Every attempt, refused or not, spends the attempt budget (floods); only an
        // account created spends the registration budget (below).
        if let Err(wait) = self.register_attempts_by_addr.acquire(&address, now) {
            return too_many(TOO_MANY_ATTEMPTS, wait);
        }
        let name = match validate::username(&name) {
            Ok(name) => name,
            Err(why) => return error(StatusCode::UNPROCESSABLE_ENTITY, why),
        };
        if let Err(why) = password::check(&pass, &name) {
            return error(StatusCode::UNPROCESSABLE_ENTITY, why);
        }
        let fold = names::fold(&name);
        let store = self.sessions.store();
        match store.user_by_fold(&fold).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "this username is taken")
            }
            Err(e) => {
                tracing::warn!(error = %e, "register: store unavailable");
                return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
            }
        }
        // Spent before the work, so that concurrent registrations cannot pass the
        // budget together; given back whenever no account results.
        if let Err(wait) = self.register_by_addr.acquire(&address, now) {
            return too_many("too many new accounts from this address", wait);
        }
        let phc = match self
            .hashes
            .run(peer, move |memory| password::hash_in(memory, &pass))
            .await
        {
            Ok(phc) => phc,
            Err(refused) => {
                self.register_by_addr.refund(&address);
                return not_hashed(refused);
            }
        };
        match store.create_user(&name, &fold, &phc).await {
            Ok(Some(user)) => {
                tracing::info!(user_id = user.id, "account registered");
                self.session_reply(StatusCode::CREATED, &user).await
            }
            Ok(None) => {
                self.register_by_addr.refund(&address);
                error(StatusCode::UNPROCESSABLE_ENTITY, "this username is taken")
            }
            Err(e) => {
                self.register_by_addr.refund(&address);
                tracing::warn!(error = %e, "register: store unavailable");
                error(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        }
    }

    async fn login(&self, peer: IpAddr, body: Bytes) -> Response<Body> {
        let Some((name, pass)) = credentials(&body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "expected {\"username\", \"password\"}",
            );
        };
        // A name no account can have, or a password no account can have, fails before
        // any budget, table entry or hash: refusing it costs nothing, and it must not
        // cost a real user their budget either.
        let Ok(name) = validate::username(&name) else {
            return error(StatusCode::UNAUTHORIZED, INVALID_LOGIN);
        };
        if pass.len() > password::PASSWORD_MAX_BYTES {
            return error(StatusCode::UNAUTHORIZED, INVALID_LOGIN);
        }
        let now = Instant::now();
        let address = address_key(peer);
        // The address's budget first: a username's budget is spent only by attempts
        // their address was allowed, so one address cannot spend everyone's.
        if let Err(wait) = self.login_by_addr.acquire(&address, now) {
            return too_many(TOO_MANY_ATTEMPTS, wait);
        }
        let fold = names::fold(&name);
        let name_key = username_key(&fold);
        if let Err(wait) = self.login_by_name.acquire(&name_key, now) {
            return too_many(TOO_MANY_ATTEMPTS, wait);
        }
        let user = match self.sessions.store().user_by_fold(&fold).await {
            Ok(user) => user,
            Err(e) => {
                tracing::warn!(error = %e, "login: store unavailable");
                return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
            }
        };
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self
            .hashes
            .run(peer, move |memory| match phc {
                Some(phc) => password::verify_in(memory, &pass, &phc),
                None => {
                    // As long as a wrong password: no telling unknown users apart.
                    password::verify_in(memory, &pass, password::dummy_hash());
                    false
                }
            })
            .await;
        match (verified, user) {
            (Ok(true), Some(user)) => self.session_reply(StatusCode::OK, &user).await,
            (Ok(_), _) => error(StatusCode::UNAUTHORIZED, INVALID_LOGIN),
            (Err(refused), _) => {
                // Not a guess: neither budget pays for a hash that did not happen.
                self.login_by_addr.refund(&address);
                self.login_by_name.refund(&name_key);
                not_hashed(refused)
            }
        }
    }

    async fn logout(&self, body: Bytes, endpoint: &Endpoint) -> Response<Body> {
        let token = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned));
        let user = match self.sessions.check(token.as_deref()).await {
            Ok(Some(user)) => user,
            Ok(None) => return error(StatusCode::UNAUTHORIZED, "not signed in"),
            Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        if let Err(e) = self.sessions.store().delete_sessions(user.id).await {
            tracing::warn!(error = %e, "logout: store unavailable");
            return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        }
        endpoint.disconnect(&format!("user_socket:{}", user.id));
        json_response(StatusCode::OK, json!({}))
    }
}

impl<H: HttpHandler> AccountsHttp<H> {
    /// The public room directory: member and online counts, most online first.
    async fn directory(&self, endpoint: &Endpoint) -> Response<Body> {
        let rooms = match self.sessions.store().public_rooms(DIRECTORY_MAX).await {
            Ok(rooms) => rooms,
            Err(e) => {
                tracing::warn!(error = %e, "directory: store unavailable");
                return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
            }
        };
        let mut list: Vec<Value> = rooms
            .into_iter()
            .map(|(room, members)| {
                let online = endpoint
                    .presence_list(&format!("room:{room}"))
                    .parse::<serde_json::Map<String, Value>>()
                    .map_or(0, |m| m.len());
                json!({ "room": room, "members": members, "online": online })
            })
            .collect();
        list.sort_by_key(|r| std::cmp::Reverse(r["online"].as_u64().unwrap_or(0)));
        json_response(StatusCode::OK, json!({ "rooms": list }))
    }

    /// Whether a token is still a session: the page asks after its socket closed.
    async fn session(&self, body: Bytes) -> Response<Body> {
        let token = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned));
        match self.sessions.check(token.as_deref()).await {
            Ok(Some(user)) => json_response(
                StatusCode::OK,
                json!({ "user": { "id": user.id, "username": user.username } }),
            ),
            Ok(None) => error(StatusCode::UNAUTHORIZED, "not signed in"),
            // The page signs a person out on 401 only: an outage is not the end of a session.
            Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

fn credentials(body: &[u8]) -> Option<(String, String)> {
    let c: Credentials = serde_json::from_slice(body).ok()?;
    match (c.username?, c.password?) {
        (Value::String(u), Value::String(p)) => Some((u, p)),
        _ => None,
    }
}

impl<H: HttpHandler> HttpHandler for AccountsHttp<H> {
    async fn call(&self, req: Request<Incoming>, endpoint: &Endpoint) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let Some(route) = path.strip_prefix("/api/") else {
            return self.inner.call(req, endpoint).await;
        };
        if route == "rooms" && req.method() == Method::GET {
            return self.directory(endpoint).await;
        }
        if req.method() != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        }
        let peer = req
            .extensions()
            .get::<PeerAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| {
                p.0.ip().to_canonical()
            });
        let body =
            match phx_server::read_body(req.into_body(), MAX_BODY, endpoint.body_timeout()).await {
                Ok(body) => body,
                Err(e @ BodyError::TooLarge { .. }) => {
                    return error(e.status(), "request body too large")
                }
                Err(e) => return error(e.status(), e.to_string()),
            };
        match route {
            "register" => self.register(peer, body).await,
            "login" => self.login(peer, body).await,
            "logout" => self.logout(body, endpoint).await,
            "session" => self.session(body).await,
            _ => error(StatusCode::NOT_FOUND, "no such API"),
        }
    }
}
