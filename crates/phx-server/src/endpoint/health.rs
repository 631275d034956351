//! `GET /healthz` (the process is alive) and `GET /readyz` (it should get traffic:
//! listening, not draining, cluster link up when clustered, and the app's own checks),
//! for load balancers and orchestrators.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::Endpoint;
use crate::http::Body;
use crate::socket::CallbackFuture;

/// How long one readiness check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// An app's readiness check: `Ok(())` when its dependency is usable, `Err(why)` else.
pub(crate) type ReadyCheckFn =
    Box<dyn Fn() -> CallbackFuture<'static, Result<(), String>> + Send + Sync>;

/// Boxes a check closure.
pub(crate) fn ready_check<F, Fut>(check: F) -> ReadyCheckFn
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Box::new(move || Box::pin(check()))
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

impl Endpoint {
    /// `/healthz`: alive, whatever else.
    pub(crate) fn healthz(&self) -> Response<Body> {
        json_response(StatusCode::OK, &json!({"status": "ok"}))
    }

    /// `/readyz`: 200 when every condition holds, else 503 naming what is down.
    pub(crate) async fn readyz(&self) -> Response<Body> {
        let mut down = Map::new();
        if !self.shared.listening.load(Ordering::Acquire) {
            down.insert("listening".into(), "not accepting connections".into());
        }
        if self.shared.draining.load(Ordering::Acquire) {
            down.insert("drain".into(), "shutting down".into());
        }
        if let Some(adapter) = self.pubsub().adapter() {
            if !adapter.is_up() {
                down.insert("cluster".into(), "link to the cluster is down".into());
            }
        }
        for (name, check) in &self.shared.ready_checks {
            match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    down.insert(name.clone(), Value::String(why));
                }
                Err(_) => {
                    down.insert(name.clone(), "check timed out".into());
                }
            }
        }
        if down.is_empty() {
            json_response(StatusCode::OK, &json!({"status": "ready"}))
        } else {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "unavailable", "down": down}),
            )
        }
    }
}
