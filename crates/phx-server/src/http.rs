//! The HTTP response type the endpoint, its transports and an app's own routes share.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// Response body type used by the endpoint and HTTP handlers.
pub type Body = Full<Bytes>;

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
