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
