//! The HTTP response type the endpoint, its transports and an app's own routes share.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// Response body type used by the endpoint and HTTP handlers: the whole body in one
/// buffer.
///
/// ```
/// use phx_server::hyper::Response;
/// use phx_server::Body;
///
/// let page: Response<Body> = Response::new(Body::from("<h1>hello</h1>"));
/// let bytes: Response<Body> = Response::new(Body::from(vec![1u8, 2, 3]));
/// # let _ = (page, bytes);
/// ```
pub type Body = Full<Bytes>;

/// The TCP peer of a request, in the extensions of every request an
/// [`HttpHandler`](crate::HttpHandler) receives from a served endpoint (e.g. to rate-limit
/// logins per client address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The scheme a request came in with (Plug's `conn.scheme`): `Https` when the endpoint
/// serves TLS itself ([`EndpointBuilder::tls`](crate::EndpointBuilder::tls)). In the
/// extensions of every request an [`HttpHandler`](crate::HttpHandler) receives from a
/// served endpoint; the origin check ([`CheckOrigin::Conn`](crate::CheckOrigin::Conn))
/// compares with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (`http://`, `ws://`).
    Http,
    /// TLS served by the endpoint (`https://`, `wss://`).
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// A response with a status and a text body.
///
/// ```
/// use phx_server::status_response;
/// let resp = status_response(hyper::StatusCode::NOT_FOUND, "no such page");
/// assert_eq!(resp.status(), 404);
/// ```
pub fn status_response(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp
}
