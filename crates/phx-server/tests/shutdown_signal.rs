//! `phx_server::shutdown_signal()` resolves on SIGTERM, what systemd, Docker and
//! Kubernetes send to stop a process, so a server that awaits it drains instead of dying.
//!
//! This file is a test binary of its own: the SIGTERM it sends itself reaches no other
//! test.

#![cfg(unix)]

use std::time::Duration;

#[tokio::test]
async fn sigterm_resolves_the_shutdown_signal_instead_of_killing_the_process() {
    let mut signal = Box::pin(phx_server::shutdown_signal());
    // Poll it once, so its SIGTERM handler is installed before the signal is sent.
    let pending = tokio::time::timeout(Duration::from_millis(50), &mut signal).await;
    assert!(pending.is_err(), "resolved before any signal was sent");

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("runs kill(1)");
    assert!(status.success(), "kill -TERM failed: {status}");

    // Without the handler SIGTERM would have ended this process before this line.
    tokio::time::timeout(Duration::from_secs(30), signal)
        .await
        .expect("shutdown_signal resolves on SIGTERM");
}
