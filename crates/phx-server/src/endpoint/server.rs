//! Serving HTTP: the accept loop, one hyper connection per client, and routing a request
//! to a socket's transport or the app's HTTP handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::accept::AcceptBackoff;
use super::Endpoint;
use crate::http::{status_response, Body};
use crate::transport::{longpoll, websocket};

impl Endpoint {
    /// Serves HTTP on `listener` until [`Endpoint::shutdown`]; then drains sockets
    /// (close 1012) and returns once they are gone (at most 30 s).
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        let mut backoff = AcceptBackoff::default();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning, and log the
                        // episode, not every retry.
                        let retry = backoff.failed(Instant::now());
                        if retry.episode_started {
                            tracing::warn!(%error, "accept failing; backing off until it works again");
                        }
                        tokio::select! {
                            () = tokio::time::sleep(retry.after) => {}
                            () = self.shared.services.shutdown.cancelled() => break,
                        }
                        continue;
                    }
                },
                () = self.shared.services.shutdown.cancelled() => break,
            };
            if let Some(recovered) = backoff.succeeded(Instant::now()) {
                tracing::info!(
                    failures = recovered.failures,
                    lasted_ms = recovered.lasted.as_millis() as u64,
                    "accepting again"
                );
            }
            let _ = stream.set_nodelay(true);
            let endpoint = self.clone();
            self.shared
                .services
                .tasks
                .spawn(async move { endpoint.serve_connection(stream, peer).await });
        }
        self.shared.services.tasks.close();
        let _ =
            tokio::time::timeout(Duration::from_secs(30), self.shared.services.tasks.wait()).await;
        Ok(())
    }

    async fn serve_connection(self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let endpoint = self.clone();
        let service = service_fn(move |req| {
            let endpoint = endpoint.clone();
            async move { Ok::<_, Infallible>(endpoint.handle(req, peer).await) }
        });
        let conn = http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .max_header_size(self.shared.max_header_bytes)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "http connection error");
                }
            }
            () = self.shared.services.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        // Before any routing or query decoding, as Cowboy and Bandit refuse it while
        // parsing the request line.
        if request_line_len(&req) > self.shared.max_request_line {
            return status_response(StatusCode::URI_TOO_LONG, "request line too long");
        }
        let path = req.uri().path().to_owned();
        for (mount, config) in &self.shared.mounts {
            let Some(rest) = path.strip_prefix(mount.as_str()) else {
                continue;
            };
            match rest {
                "/websocket" if config.websocket_enabled() => {
                    return websocket::handle(&self.shared.services, config, req, peer).await
                }
                "/longpoll" if config.longpoll_enabled() => {
                    return longpoll::handle(&self.shared.services, config, req, peer).await
                }
                _ => {}
            }
        }
        match &self.shared.http {
            Some(handler) => handler.call(req, self).await,
            None => status_response(StatusCode::NOT_FOUND, ""),
        }
    }
}

/// The length of the request line hyper parsed: `METHOD SP request-target SP HTTP/1.1`.
fn request_line_len<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.scheme_str().map_or(0, |s| s.len() + "://".len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    req.method().as_str().len() + " ".len() + target + " HTTP/1.1".len()
}
