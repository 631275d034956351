//! The signal that asks a server to stop, as deploy tools send it.

/// Resolves when the process is asked to stop: on SIGTERM or on Ctrl-C (SIGINT).
///
/// SIGTERM is what systemd (`systemctl stop`, a restart), Docker (`docker stop`) and
/// Kubernetes (a pod deleted or rolled) send before they kill a process, and Ctrl-C is
/// what a developer sends. Waiting on both and then calling [`Endpoint::shutdown`] gives
/// the graceful drain under all of them: the endpoint turns unready, stops accepting,
/// closes its sockets with 1012 (service restart) in batches, which phoenix.js answers
/// by reconnecting (to another instance, behind a load balancer), and
/// [`Endpoint::serve`] returns once they are gone (see [`EndpointBuilder::drain`]).
///
/// ```no_run
/// # async fn run(endpoint: phx_server::Endpoint) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:4000").await?;
/// let stopper = endpoint.clone();
/// tokio::spawn(async move {
///     phx_server::shutdown_signal().await;
///     stopper.shutdown();
/// });
/// endpoint.serve(listener).await
/// # }
/// ```
///
/// Kubernetes waits `terminationGracePeriodSeconds` (30 s by default) after SIGTERM
/// before it kills the pod, and Docker 10 s (`docker stop --time`): give the drain a
/// budget within that ([`Drain::budget`](crate::Drain::budget)).
///
/// If the process cannot listen for a signal (no signal handling in the runtime, which
/// tokio logs as an error), that signal is logged at `warn` and never resolves this
/// future: a server keeps serving rather than stopping at once. On systems without
/// SIGTERM, only Ctrl-C counts.
///
/// [`Endpoint::shutdown`]: crate::Endpoint::shutdown
/// [`Endpoint::serve`]: crate::Endpoint::serve
/// [`EndpointBuilder::drain`]: crate::EndpointBuilder::drain
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => tracing::info!("SIGTERM received: shutting down"),
                    () = ctrl_c() => tracing::info!("Ctrl-C received: shutting down"),
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM: only Ctrl-C stops the server");
            }
        }
    }
    ctrl_c().await;
    tracing::info!("Ctrl-C received: shutting down");
}

/// Ctrl-C, or never when it cannot be listened for.
async fn ctrl_c() {
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::warn!(%error, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
}
