//! How many TCP connections the endpoint holds at once, in all and per client address
//! (counted like long-poll sessions, by [`crate::address_limit`]), and how a connection
//! past a cap is refused: at accept, before hyper or TLS allocate anything for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::address_limit::LimitError;

/// Default cap on the TCP connections one client address holds at once (see
/// [`crate::EndpointBuilder::max_connections_per_address`]; an IPv6 client counts per
/// /64 prefix).
///
/// Why this number: a browser tab holds one socket and a page load a handful of HTTP
/// connections, so one person rarely holds more than a dozen; 1 000 leaves room for a
/// few hundred people behind one NAT address (an office, a school, a mobile carrier's
/// NAT), while an address needs a thousand sockets before it is refused anything. Raise
/// it to the total ([`crate::EndpointBuilder::max_connections`]) behind a reverse proxy,
/// where every client has the proxy's address.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 1_000;

/// The default total cap when the open-file limit cannot be read (see
/// [`crate::EndpointBuilder::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS_FALLBACK: usize = 10_000;

/// The default total cap: 90 % of the process's open-file limit (the soft
/// `RLIMIT_NOFILE`, from `/proc/self/limits`), so that a flood is answered 503 while the
/// process still has descriptors for its own files, database and cluster links (past
/// the limit `accept` itself fails and clients wait in the kernel's backlog); never
/// below 1. [`DEFAULT_MAX_CONNECTIONS_FALLBACK`] where the limit cannot be read.
pub(crate) fn default_max_connections() -> usize {
    open_file_limit().map_or(DEFAULT_MAX_CONNECTIONS_FALLBACK, |limit| {
        (limit - limit / 10).max(1)
    })
}

/// The soft open-file limit, `None` when unknown or unlimited.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

fn parse_open_file_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

/// Refused connections answered at once; past this many, a refused connection is closed
/// without an answer (a flood of them must not cost a task each). Each answer is a small
/// task with a 1 KiB buffer living at most [`REFUSAL_LINGER`]: 256 of them are well
/// under a megabyte.
const MAX_REFUSALS_IN_FLIGHT: usize = 256;

/// How long a refusal waits for the client to take its answer and close.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Answers refused connections.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    in_flight: Arc<AtomicUsize>,
}

impl Refusals {
    /// Refuses `stream`: an HTTP 503 (the endpoint is full) or 429 (this address is),
    /// with `Retry-After`, then a close; a TLS connection (`tls`) or one refused while
    /// many others are being refused is just closed.
    ///
    /// The answer is written before the request is read (HTTP/1.1 allows it) and the
    /// request is then read and dropped until the client closes, for at most a second:
    /// closing a TCP connection with unread bytes resets it, which could destroy the
    /// answer on its way.
    pub(crate) fn refuse(&self, stream: TcpStream, why: LimitError, tls: bool) {
        if tls {
            return; // no TLS session yet: a plain close is the only answer
        }
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_REFUSALS_IN_FLIGHT).then_some(n + 1)
            });
        if taken.is_err() {
            return;
        }
        let in_flight = self.in_flight.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REFUSAL_LINGER, answer(stream, why)).await;
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

async fn answer(mut stream: TcpStream, why: LimitError) {
    let status = match why {
        LimitError::Endpoint => "503 Service Unavailable",
        LimitError::Address => "429 Too Many Requests",
    };
    // An empty body, as for refused long-poll sessions: phoenix.js counts an answer that
    // is not JSON as a network error and reconnects with its backoff.
    let head = format!(
        "HTTP/1.1 {status}\r\nretry-after: 5\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_file_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            20000                524288               files     \n";
        assert_eq!(parse_open_file_limit(limits), Some(20_000));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_open_file_limit(unlimited), None);
    }

    #[test]
    fn the_default_total_leaves_a_tenth_of_the_descriptors_to_the_app() {
        let limit = open_file_limit().expect("Linux has /proc/self/limits");
        assert_eq!(default_max_connections(), limit - limit / 10);
    }
}
