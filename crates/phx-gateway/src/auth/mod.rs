//! Authenticating a socket (docs/gateway.md, "Authentication"): the connect hook, a
//! Phoenix.Token, a JWT, or nobody. Each gives the socket its assigns and maybe an id.

pub mod jwks;
pub mod jwt;

use std::sync::Arc;

use hyper::StatusCode;
use phx_server::phoenix_token::{Token, VerifyOptions};
use phx_server::{Connect, ConnectInfo, Connected, Params, Refusal, Transport};
use serde_json::{Map, Value};

use crate::backend::notify::Notifier;
use crate::backend::{request_id, Backend, HookKind};
use crate::config::{self, TokenSource};
use crate::protocol::{ConnectAnswer, ConnectRequest, Peer, Status};
use crate::template::Template;
use crate::vars::Vars;
use jwt::JwtVerifier;

/// What every channel of a gateway socket knows about it: the socket's assigns type.
#[derive(Debug)]
pub struct SocketState {
    pub mount: Arc<str>,
    pub transport: &'static str,
    pub socket_id: Option<String>,
    pub assigns: Map<String, Value>,
    /// Set when `notify_disconnect` is on: dropping the state (the socket ended)
    /// queues the disconnect notification.
    pub notifier: Option<Notifier>,
}

impl Drop for SocketState {
    fn drop(&mut self) {
        if let Some(notifier) = &self.notifier {
            notifier.send(serde_json::json!({
                "type": "disconnect",
                "at": crate::unix_millis(),
                "mount": &*self.mount,
                "transport": self.transport,
                "socket_id": self.socket_id,
                "assigns": self.assigns,
            }));
        }
    }
}

/// Phoenix's name for a transport, as the hooks see it.
pub fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::WebSocket => "websocket",
        Transport::LongPoll => "longpoll",
        Transport::Test => "test",
    }
}

/// How one socket authenticates.
pub enum Method {
    None,
    Hook {
        backend: Arc<Backend>,
        headers: Vec<hyper::header::HeaderName>,
    },
    PhoenixToken {
        token: Token,
        salt: String,
        max_age: std::time::Duration,
        source: TokenSource,
        assign: String,
        socket_id: Option<Template>,
    },
    Jwt(Box<JwtVerifier>),
}

/// The connect hook of one gateway socket.
pub struct GatewayConnect {
    pub mount: Arc<str>,
    pub method: Method,
    pub notifier: Option<Notifier>,
}

impl Method {
    /// The method of `auth`, with what it needs at run time.
    pub fn new(auth: config::Auth, backend: Option<&Arc<Backend>>) -> anyhow::Result<Self> {
        Ok(match auth {
            config::Auth::None => Self::None,
            config::Auth::Hook { headers } => Self::Hook {
                backend: backend
                    .ok_or_else(|| anyhow::anyhow!("a connect hook needs [backend] url"))?
                    .clone(),
                headers,
            },
            config::Auth::PhoenixToken {
                secret_key_base,
                salt,
                max_age,
                token,
                assign,
                socket_id,
            } => Self::PhoenixToken {
                token: Token::new(secret_key_base),
                salt,
                max_age,
                source: token,
                assign,
                socket_id,
            },
            config::Auth::Jwt(config) => Self::Jwt(Box::new(JwtVerifier::new(*config)?)),
        })
    }
}

fn token<'a>(source: &TokenSource, params: &'a Params, info: &'a ConnectInfo) -> Option<&'a str> {
    match source {
        TokenSource::Param(name) => params.get_str(name),
        TokenSource::AuthToken => info.auth_token.as_deref(),
    }
}

/// The socket id from a template over the assigns; `Err` refuses the connection.
fn socket_id(
    template: Option<&Template>,
    assigns: &Map<String, Value>,
    transport: &str,
) -> Result<Option<String>, Refusal> {
    let Some(template) = template else {
        return Ok(None);
    };
    let vars = Vars {
        assigns: Some(assigns),
        transport: Some(transport),
        ..Vars::default()
    };
    template.render(&vars).map(Some).map_err(|error| {
        tracing::info!(%error, "refused socket: its socket id template cannot be filled");
        Refusal::forbidden()
    })
}

impl Connect for GatewayConnect {
    type Assigns = SocketState;

    async fn connect(
        &self,
        params: &Params,
        info: &ConnectInfo,
    ) -> Result<Connected<SocketState>, Refusal> {
        let transport = transport_name(info.transport);
        let (assigns, id) = match &self.method {
            Method::None => (Map::new(), None),
            Method::Hook { backend, headers } => {
                hook(backend, headers, &self.mount, transport, params, info).await?
            }
            Method::PhoenixToken {
                token: tokens,
                salt,
                max_age,
                source,
                assign,
                socket_id: template,
            } => {
                let options = VerifyOptions::default().max_age(*max_age);
                let data = tokens
                    .verify(salt, token(source, params, info), options)
                    .map_err(|error| {
                        tracing::info!(%error, mount = %self.mount, "refused socket: Phoenix.Token");
                        Refusal::forbidden()
                    })?;
                let assigns = match data {
                    Value::Object(map) => map,
                    other => {
                        let mut map = Map::new();
                        map.insert(assign.clone(), other);
                        map
                    }
                };
                let id = socket_id(template.as_ref(), &assigns, transport)?;
                (assigns, id)
            }
            Method::Jwt(verifier) => {
                let claims = verifier
                    .verify(token(verifier.token_source(), params, info))
                    .await
                    .map_err(|error| {
                        tracing::info!(%error, mount = %self.mount, "refused socket: JWT");
                        Refusal::forbidden()
                    })?;
                let id = socket_id(verifier.socket_id(), &claims, transport)?;
                (claims, id)
            }
        };
        let state = SocketState {
            mount: self.mount.clone(),
            transport,
            socket_id: id.clone(),
            assigns,
            notifier: self.notifier.clone(),
        };
        let mut connected = Connected::new(state);
        if let Some(id) = id {
            connected = connected.with_id(id);
        }
        Ok(connected)
    }
}

/// The connect hook.
async fn hook(
    backend: &Backend,
    wanted: &[hyper::header::HeaderName],
    mount: &str,
    transport: &'static str,
    params: &Params,
    info: &ConnectInfo,
) -> Result<(Map<String, Value>, Option<String>), Refusal> {
    let mut headers = Map::new();
    for name in wanted {
        if let Some(value) = info.headers.get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(name.as_str().to_owned(), Value::String(value.to_owned()));
        }
    }
    let request = ConnectRequest {
        mount,
        transport,
        params: params.as_map(),
        auth_token: info.auth_token.as_deref(),
        headers,
        origin: info
            .headers
            .get(hyper::header::ORIGIN)
            .and_then(|v| v.to_str().ok()),
        peer: info.peer_addr.map(|addr| Peer {
            address: addr.ip().to_string(),
            port: addr.port(),
        }),
    };
    let id = request_id();
    let answer: ConnectAnswer = backend
        .call(HookKind::Connect, &request, &id)
        .await
        .map_err(|_| Refusal::with_status(StatusCode::SERVICE_UNAVAILABLE))?;
    match answer.status {
        // An empty id names no socket (it would make `disconnect("")` meaningful).
        Status::Ok => Ok((
            answer.assigns.unwrap_or_default(),
            answer.socket_id.filter(|id| !id.is_empty()),
        )),
        Status::Error => {
            let status = answer
                .http_status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::FORBIDDEN);
            tracing::debug!(request_id = %id, status = status.as_u16(), "connect refused by the backend");
            Err(Refusal::with_status(status))
        }
    }
}
