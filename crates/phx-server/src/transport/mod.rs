//! Transports: they turn a connection into decoded messages for a [`crate::socket`] and
//! its outbox into bytes. Both share the connect-time checks below.

pub(crate) mod websocket;

use std::net::SocketAddr;

use hyper::header::{HOST, ORIGIN};
use hyper::http::request::Parts;
use hyper::{HeaderMap, Response, StatusCode};
use phx_protocol::Serializer;

use crate::connect::{ConnectInfo, Connected, Refusal, Transport};
use crate::endpoint::{status_response, Body, Endpoint, SocketConfig};
use crate::origin::RequestTarget;
use crate::params::{Params, ParamsError};

/// A connection that passed origin check, vsn negotiation and the app's connect.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) serializer: Serializer,
    pub(crate) connected: Connected,
}

/// The answer to a socket request whose query is not acceptable connect params (§1.2):
/// 400, as Phoenix answers a query Plug refuses, before origin check and connect.
pub(crate) fn params_refused(error: &ParamsError) -> Response<Body> {
    tracing::debug!(%error, "connect params refused");
    let body = match error {
        ParamsError::TooDeep { .. } => "connect params nested too deeply",
    };
    status_response(StatusCode::BAD_REQUEST, body)
}

/// §1.5 for any request to a socket route (WebSocket, long-poll GET/POST/OPTIONS).
pub(crate) fn origin_allowed(
    endpoint: &Endpoint,
    config: &SocketConfig,
    headers: &HeaderMap,
) -> bool {
    // Raw bytes: a value that is not valid text is a present origin, never an absent one.
    let origin = headers.get(ORIGIN);
    let target = RequestTarget {
        scheme: "http",
        host_header: headers.get(HOST).and_then(|v| v.to_str().ok()),
        endpoint_host: endpoint.host(),
    };
    let allowed = config
        .origin_policy()
        .allows(origin.map(|v| v.as_bytes()), target);
    if !allowed {
        tracing::warn!(?origin, "origin refused by check_origin");
    }
    allowed
}

/// §1.3–§1.5 in Phoenix's order: origin, then `vsn`, then the app's connect hook.
pub(crate) async fn authorize(
    endpoint: &Endpoint,
    config: &SocketConfig,
    head: &Parts,
    peer: SocketAddr,
    transport: Transport,
    auth_token: Option<String>,
    params: &Params,
) -> Result<Accepted, Refusal> {
    if !origin_allowed(endpoint, config, &head.headers) {
        return Err(Refusal::forbidden());
    }
    let vsn = match params.get("vsn") {
        None => None,
        Some(serde_json::Value::String(v)) => Some(v.as_str()),
        Some(_) => return Err(Refusal::forbidden()),
    };
    let serializer = Serializer::from_vsn(vsn).map_err(|_| Refusal::forbidden())?;
    let info = ConnectInfo {
        peer_addr: Some(peer),
        uri: head.uri.clone(),
        headers: head.headers.clone(),
        auth_token,
        transport,
    };
    let connected = config.connect_hook().connect(params, &info).await?;
    Ok(Accepted {
        serializer,
        connected,
    })
}
