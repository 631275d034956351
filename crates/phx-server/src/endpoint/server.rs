//! Serving HTTP: the accept loop, one hyper connection per client, and routing a request
//! to a socket's transport or the app's HTTP handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::accept::AcceptBackoff;
use super::Endpoint;
use crate::address_limit::HeldConnection;
use crate::http::{status_response, Body, PeerAddr, Scheme};
use crate::tls::Tls;
use crate::transport::{longpoll, websocket};

impl Endpoint {
    /// Serves HTTP on `listener` until [`Endpoint::shutdown`]; then drains the sockets
    /// (close 1012, in batches, see [`Drain`](crate::Drain)) and returns once they are
    /// gone, within the drain's budget.
    ///
    /// [`listen`](crate::listen) makes a listener whose backlog holds a burst of
    /// connections (tokio's `TcpListener::bind` queues only 128).
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        let mut backoff = AcceptBackoff::default();
        let stop = &self.shared.stop_accepting;
        if let Some(tls) = &self.shared.tls {
            reload_on_sighup(tls, stop.clone());
        }
        self.shared.listening.store(true, Ordering::Release);
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
                            () = stop.cancelled() => break,
                        }
                        continue;
                    }
                },
                () = stop.cancelled() => break,
            };
            if let Some(recovered) = backoff.succeeded(Instant::now()) {
                tracing::info!(
                    failures = recovered.failures,
                    lasted_ms = recovered.lasted.as_millis() as u64,
                    "accepting again"
                );
            }
            // The caps come first: a refused connection costs a counter update, and an
            // answer only while few others are being answered.
            let slot = match self.shared.connections.acquire(peer.ip()) {
                Ok(slot) => HeldConnection(Arc::new(slot)),
                Err(why) => {
                    tracing::debug!(%peer, %why, "connection refused");
                    self.shared
                        .refusals
                        .refuse(stream, why, self.shared.tls.is_some());
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let endpoint = self.clone();
            self.shared.services.tasks.spawn(async move {
                match endpoint.shared.tls.clone() {
                    None => {
                        endpoint
                            .serve_connection(stream, peer, slot, Scheme::Http)
                            .await
                    }
                    Some(tls) => {
                        // The handshake holds the connection's slot, for at most the
                        // handshake timeout: a client that never finishes one (or sends
                        // garbage instead of a ClientHello) cannot hold it longer.
                        let handshake = tls.acceptor().accept(stream);
                        match tokio::time::timeout(tls.timeout(), handshake).await {
                            Ok(Ok(stream)) => {
                                endpoint
                                    .serve_connection(stream, peer, slot, Scheme::Https)
                                    .await
                            }
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            });
        }
        self.shared.listening.store(false, Ordering::Release);
        drop(listener);
        let started = tokio::time::Instant::now();
        let deadline = started + self.shared.drain.budget;
        let drained = self.drain_sockets(deadline).await;
        // What is left (the budget ran out, or HTTP requests in flight) ends now.
        self.shared.services.shutdown.cancel();
        self.shared.services.tasks.close();
        let _ = tokio::time::timeout_at(
            deadline.max(tokio::time::Instant::now() + Duration::from_secs(1)),
            self.shared.services.tasks.wait(),
        )
        .await;
        tracing::info!(
            closed = drained.closed,
            batches = drained.batches,
            closed_at_once = drained.left,
            took_ms = started.elapsed().as_millis() as u64,
            "endpoint stopped"
        );
        Ok(())
    }

    async fn serve_connection<I>(
        self,
        stream: I,
        peer: SocketAddr,
        slot: HeldConnection,
        scheme: Scheme,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let endpoint = self.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let endpoint = endpoint.clone();
            // An upgraded WebSocket outlives this HTTP connection: it takes a clone of
            // the slot with its request, so the connection counts until it is closed.
            req.extensions_mut().insert(slot.clone());
            req.extensions_mut().insert(scheme);
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
        match path.as_str() {
            "/healthz" if self.shared.health => return self.healthz(),
            "/readyz" if self.shared.health => return self.readyz().await,
            "/metrics" => {
                if let Some(prometheus) = &self.shared.prometheus {
                    prometheus.run_upkeep();
                    let mut resp = Response::new(Body::from(prometheus.render()));
                    resp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(
                            "text/plain; version=0.0.4; charset=utf-8",
                        ),
                    );
                    return resp;
                }
            }
            _ => {}
        }
        let req = match &self.shared.api {
            Some(api) if path.starts_with("/api/") => match self.server_api(api, req).await {
                Ok(resp) => return resp,
                Err(req) => req,
            },
            _ => req,
        };
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
        let mut req = req;
        req.extensions_mut().insert(PeerAddr(peer));
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

/// Reloads the certificate on every SIGHUP until the endpoint stops accepting, when the
/// TLS settings ask for it (see [`Tls::reload_on_sighup`]).
fn reload_on_sighup(tls: &Tls, stop: tokio_util::sync::CancellationToken) {
    #[cfg(unix)]
    {
        if !tls.reloads_on_sighup() {
            return;
        }
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(error) => {
                tracing::warn!(%error, "TLS: no SIGHUP handler; the certificate is not reloaded on SIGHUP");
                return;
            }
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    received = hangup.recv() => if received.is_none() { return },
                    () = stop.cancelled() => return,
                }
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        cert = %tls.cert_path().display(),
                        "TLS: certificate reloaded (SIGHUP); new handshakes use it"
                    ),
                    Err(error) => tracing::error!(
                        %error,
                        "TLS: reload failed (SIGHUP); the current certificate stays"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (tls, stop);
}
