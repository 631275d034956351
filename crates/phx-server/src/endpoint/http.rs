//! The app's own HTTP routes: whatever no socket route matches.

use hyper::body::Incoming;
use hyper::{Request, Response};
use std::future::Future;

use super::Endpoint;
use crate::http::Body;
use crate::socket::CallbackFuture;

/// Routes the endpoint serves besides sockets: pages, assets, APIs (what a Phoenix app's
/// router does next to its sockets).
///
/// ```
/// use phx_server::{status_response, Body, Endpoint, HttpHandler};
/// use hyper::{body::Incoming, Request, Response, StatusCode};
///
/// struct Pages;
///
/// impl HttpHandler for Pages {
///     async fn call(&self, req: Request<Incoming>, _endpoint: &Endpoint) -> Response<Body> {
///         match req.uri().path() {
///             "/" => status_response(StatusCode::OK, "hello"),
///             _ => status_response(StatusCode::NOT_FOUND, "not found"),
///         }
///     }
/// }
///
/// let endpoint = Endpoint::builder().http(Pages).build();
/// # let _ = endpoint;
/// ```
pub trait HttpHandler: Send + Sync + 'static {
    /// Answers a request no socket route matched.
    fn call(
        &self,
        req: Request<Incoming>,
        endpoint: &Endpoint,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// The handler as the server calls it, behind a pointer.
pub(crate) trait ErasedHttp: Send + Sync {
    fn call<'a>(
        &'a self,
        req: Request<Incoming>,
        endpoint: &'a Endpoint,
    ) -> CallbackFuture<'a, Response<Body>>;
}

pub(crate) struct HttpAdapter<H>(pub(crate) H);

impl<H: HttpHandler> ErasedHttp for HttpAdapter<H> {
    fn call<'a>(
        &'a self,
        req: Request<Incoming>,
        endpoint: &'a Endpoint,
    ) -> CallbackFuture<'a, Response<Body>> {
        Box::pin(self.0.call(req, endpoint))
    }
}
