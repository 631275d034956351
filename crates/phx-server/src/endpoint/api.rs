//! The server API: broadcast, disconnect and presence over HTTP, for backends in any
//! language (Rails, Django, Phoenix itself) that cannot link phx-server.
//!
//! ```text
//! POST /api/broadcast   {"topic": "room:lobby", "event": "new_msg", "payload": {...}}
//! POST /api/broadcast?topic=room:lobby&event=blob   (Content-Type: application/octet-stream: a binary payload)
//! POST /api/disconnect  {"socket_id": "user_socket:42"}
//! GET  /api/presence?topic=room:lobby
//! ```
//!
//! Every request carries `Authorization: Bearer <key>` (compared in constant time).
//! Errors answer a status and `{"error": "..."}`: 401 without a key, 403 with a wrong one,
//! 400 for a body that is not what the route takes (unknown fields included), 413 for a
//! body over the limit, 404 for another `/api/` path under these, 405 for a wrong method.
//! In a cluster, broadcast and disconnect reach every node, and presence lists the whole
//! cluster's.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use super::health::json_response;
use super::Endpoint;
use crate::http::Body;
use crate::params::Params;

/// Default largest request body of the server API: 1 MiB.
pub const DEFAULT_API_BODY_LIMIT: usize = 1024 * 1024;

/// The server API's settings (see the module docs).
#[derive(Clone)]
pub struct ServerApi {
    key: Vec<u8>,
    body_limit: usize,
}

impl std::fmt::Debug for ServerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerApi")
            .field("key", &"***")
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

impl ServerApi {
    /// The API, answering requests that carry `Authorization: Bearer <key>`.
    ///
    /// ```
    /// use phx_server::{Endpoint, ServerApi};
    /// let endpoint = Endpoint::builder()
    ///     .server_api(ServerApi::new("a long random key from the environment"))
    ///     .build();
    /// # let _ = endpoint;
    /// ```
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into().into_bytes(),
            body_limit: DEFAULT_API_BODY_LIMIT,
        }
    }

    /// Largest request body accepted (default [`DEFAULT_API_BODY_LIMIT`]); larger gets 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Whether the request carries the key: 401 without one, 403 with another.
    fn authorize<B>(&self, req: &Request<B>) -> Result<(), ApiError> {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(given) = given else {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <key>",
            ));
        };
        // Constant time over the key: a timing attack learns nothing about it. (The
        // length comparison leaks only the key's length.)
        if bool::from(given.as_bytes().ct_eq(&self.key)) {
            Ok(())
        } else {
            Err(error(StatusCode::FORBIDDEN, "wrong API key"))
        }
    }
}

/// A refused request: its status and the message of its `{"error": ...}` body.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn into_response(self) -> Response<Body> {
        json_response(self.status, &json!({ "error": self.message }))
    }
}

fn error(status: StatusCode, message: &str) -> ApiError {
    ApiError {
        status,
        message: message.to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    topic: String,
    event: String,
    payload: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    socket_id: String,
}

/// The request's body within the limit (413 past it) and the endpoint's body timeout
/// (408 past it).
async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    crate::read_body(req.into_body(), limit, timeout)
        .await
        .map_err(|e| error(e.status(), &e.to_string()))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
}

fn query(req: &Request<Incoming>) -> Option<Params> {
    Params::from_query(req.uri().query().unwrap_or("")).ok()
}

impl Endpoint {
    /// Answers `/api/broadcast`, `/api/disconnect` and `/api/presence`; gives any other
    /// request back (the app's own routes).
    pub(crate) async fn server_api(
        &self,
        api: &ServerApi,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Request<Incoming>> {
        let route = match req.uri().path() {
            "/api/broadcast" => Route::Broadcast,
            "/api/disconnect" => Route::Disconnect,
            "/api/presence" => Route::Presence,
            _ => return Err(req),
        };
        if let Err(refused) = api.authorize(&req) {
            return Ok(refused.into_response());
        }
        let expected = match route {
            Route::Presence => Method::GET,
            Route::Broadcast | Route::Disconnect => Method::POST,
        };
        if req.method() != expected {
            return Ok(error(StatusCode::METHOD_NOT_ALLOWED, "wrong method").into_response());
        }
        Ok(match route {
            Route::Broadcast => self.api_broadcast(api, req).await,
            Route::Disconnect => self.api_disconnect(api, req).await,
            Route::Presence => self.api_presence(&req),
        }
        .unwrap_or_else(ApiError::into_response))
    }

    async fn api_broadcast(
        &self,
        api: &ServerApi,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let binary = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/octet-stream"));
        if binary {
            let params = query(&req).unwrap_or_default();
            let (Some(topic), Some(event)) = (
                params.get_str("topic").map(str::to_owned),
                params.get_str("event").map(str::to_owned),
            ) else {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "a binary broadcast takes ?topic=…&event=…",
                ));
            };
            let body = read_body(req, api.body_limit, self.body_timeout()).await?;
            let _ = self.broadcast(&topic, &event, body);
        } else {
            let body = read_body(req, api.body_limit, self.body_timeout()).await?;
            let BroadcastBody {
                topic,
                event,
                payload,
            } = parse(&body)?;
            if topic.is_empty() || event.is_empty() {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "topic and event may not be empty",
                ));
            }
            let _ = self.broadcast(&topic, &event, payload);
        }
        Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
    }

    async fn api_disconnect(
        &self,
        api: &ServerApi,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let body = read_body(req, api.body_limit, self.body_timeout()).await?;
        let DisconnectBody { socket_id } = parse(&body)?;
        if socket_id.is_empty() {
            return Err(error(StatusCode::BAD_REQUEST, "socket_id may not be empty"));
        }
        self.disconnect(&socket_id);
        Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
    }

    fn api_presence(&self, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let topic = query(req)
            .and_then(|p| p.get_str("topic").map(str::to_owned))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, "GET /api/presence?topic=…"))?;
        let list = self.presence_list(&topic);
        let mut resp = Response::new(Body::from(list.as_json().unwrap_or("{}").to_owned()));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }
}

#[derive(Clone, Copy)]
enum Route {
    Broadcast,
    Disconnect,
    Presence,
}
