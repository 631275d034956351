//! A refused origin, explained once (§1.5).
//!
//! The usual cause of a refusal is not an attack but a page served from another name
//! than the one the server was configured for: `http://127.0.0.1:4000` against the
//! default host `localhost`. Phoenix answers that with a log message naming the origin
//! and how to allow it; so does this module, once per origin and socket, at `warn`. The
//! origins already explained are remembered in a bounded set, so random origins sent by
//! a client cannot grow memory or flood the log: past the bound, refusals are logged at
//! `debug` only.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::origin::{CheckOrigin, Origin, RequestTarget, DEFAULT_HOST};

/// Distinct refused origins explained at `warn`, per socket.
pub(crate) const EXPLAINED_ORIGINS: usize = 64;

/// Longest origin kept and logged; longer ones are cut (an `Origin` header may be as
/// long as the request head allows).
pub(crate) const ORIGIN_LOG_BYTES: usize = 256;

/// What a socket has already said about refused origins.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    explained: Mutex<HashSet<String>>,
}

/// Whether a refusal is worth a `warn` line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// Never explained: explain it.
    First,
    /// Explained before.
    Again,
    /// The set is full and this is the origin that found it full first: say so once.
    Overflow,
    /// The set is full, and that was said.
    Quiet,
}

impl RefusalLog {
    /// Records a refusal of `origin` (already cut to [`ORIGIN_LOG_BYTES`]).
    pub(crate) fn note(&self, origin: &str) -> Note {
        let Ok(mut explained) = self.explained.lock() else {
            return Note::Quiet;
        };
        if explained.contains(origin) {
            Note::Again
        } else if explained.len() < EXPLAINED_ORIGINS {
            explained.insert(origin.to_owned());
            Note::First
        } else if explained.len() == EXPLAINED_ORIGINS {
            // One slot past the bound marks that the overflow was reported; it holds
            // no origin a client could match.
            explained.insert(String::from("\0overflow"));
            Note::Overflow
        } else {
            Note::Quiet
        }
    }
}

/// The `Origin` header as logged: lossy text, at most [`ORIGIN_LOG_BYTES`].
pub(crate) fn origin_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut end = text.len().min(ORIGIN_LOG_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Logs the refusal of `origin` by `policy`: at `warn` with what is allowed and how to
/// allow it the first time, at `debug` afterwards.
pub(crate) fn log_refusal(
    log: &RefusalLog,
    mount: &str,
    policy: &CheckOrigin,
    target: RequestTarget<'_>,
    raw: &[u8],
) {
    let origin = origin_text(raw);
    match log.note(&origin) {
        Note::First => tracing::warn!(
            socket = %mount,
            origin = %origin,
            allowed = %allowed(policy, target),
            "origin refused by check_origin: {}",
            explain(policy, target, &origin)
        ),
        Note::Overflow => tracing::warn!(
            socket = %mount,
            origin = %origin,
            "origin refused by check_origin; {EXPLAINED_ORIGINS} other origins were refused \
             and explained before, so further new ones are logged at debug only"
        ),
        Note::Again | Note::Quiet => {
            tracing::debug!(socket = %mount, origin = %origin, "origin refused by check_origin")
        }
    }
}

/// What `policy` lets through, for the log.
pub(crate) fn allowed(policy: &CheckOrigin, target: RequestTarget<'_>) -> String {
    match policy {
        CheckOrigin::Disabled => "any origin".to_owned(),
        CheckOrigin::Host => format!(
            "pages from host {} (the endpoint's host; any scheme and port)",
            target.endpoint_host.unwrap_or(DEFAULT_HOST)
        ),
        CheckOrigin::Allowed(list) => list.join(", "),
        CheckOrigin::Conn => match target.host_header {
            Some(host) => format!(
                "pages from {}://{host} (the request's own host)",
                target.scheme
            ),
            None => {
                "pages from the request's own host (this request has no Host header)".to_owned()
            }
        },
        CheckOrigin::Custom(_) => "what the socket's custom check accepts".to_owned(),
    }
}

/// Why `origin` was refused and how to allow it, in the manner of Phoenix's message.
fn explain(policy: &CheckOrigin, target: RequestTarget<'_>, origin: &str) -> String {
    let parsed = Origin::parse(origin);
    let Some(host) = parsed.host.as_deref() else {
        return format!(
            "{origin:?} is not an origin a browser sends (scheme://host[:port]), so no \
             policy but CheckOrigin::Disabled lets it through"
        );
    };
    // The pattern that would allow exactly this page: `//host:port`.
    let shown_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let pattern = match parsed.port {
        Some(port) => format!("//{shown_host}:{port}"),
        None => format!("//{shown_host}"),
    };
    match policy {
        CheckOrigin::Host => {
            let configured = target.endpoint_host.unwrap_or(DEFAULT_HOST);
            // The usual case: a page opened as 127.0.0.1 against the default host.
            let loopback = configured == DEFAULT_HOST && matches!(host, "127.0.0.1" | "::1");
            let note = if loopback {
                " (the page was opened by its address, not as localhost)"
            } else {
                ""
            };
            format!(
                "the page at {origin} is not from the endpoint's host {configured:?}{note}. \
                 If the page is yours, open it as http://{configured}:<port>/, set the \
                 endpoint's host to the page's (EndpointBuilder::host({shown_host:?})), or \
                 list the origins allowed: \
                 SocketConfig::check_origin(CheckOrigin::allowed([{pattern:?}]))"
            )
        }
        CheckOrigin::Allowed(_) => format!(
            "the page at {origin} matches none of the allowed origins. If the page is \
             yours, add {pattern:?} to the socket's CheckOrigin::allowed list"
        ),
        CheckOrigin::Conn => format!(
            "the page at {origin} is not on the request's own scheme, host and port \
             (CheckOrigin::Conn). If the page is yours, serve it from the host the socket \
             is reached at, or list the origins allowed: \
             SocketConfig::check_origin(CheckOrigin::allowed([{pattern:?}]))"
        ),
        CheckOrigin::Custom(_) => {
            format!("the socket's custom check (CheckOrigin::Custom) refused the page at {origin}")
        }
        CheckOrigin::Disabled => "no check refuses anything".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(endpoint_host: Option<&'static str>) -> RequestTarget<'static> {
        RequestTarget {
            scheme: "http",
            host_header: Some("localhost:4000"),
            endpoint_host,
        }
    }

    #[test]
    fn an_origin_is_explained_once() {
        let log = RefusalLog::default();
        assert_eq!(log.note("http://127.0.0.1:4000"), Note::First);
        assert_eq!(log.note("http://127.0.0.1:4000"), Note::Again);
        assert_eq!(log.note("http://127.0.0.1:4001"), Note::First);
    }

    #[test]
    fn past_the_bound_one_line_says_so_and_nothing_more_is_kept() {
        let log = RefusalLog::default();
        for i in 0..EXPLAINED_ORIGINS {
            assert_eq!(log.note(&format!("http://a{i}.test")), Note::First);
        }
        assert_eq!(log.note("http://late.test"), Note::Overflow);
        for i in 0..1000 {
            assert_eq!(log.note(&format!("http://b{i}.test")), Note::Quiet);
        }
        // Explained origins are still recognised.
        assert_eq!(log.note("http://a0.test"), Note::Again);
        let kept = log.explained.lock().unwrap().len();
        assert_eq!(kept, EXPLAINED_ORIGINS + 1);
    }

    #[test]
    fn long_origins_are_cut_on_a_character_boundary() {
        let long = format!("http://{}.test", "é".repeat(400));
        let text = origin_text(long.as_bytes());
        assert!(text.len() <= ORIGIN_LOG_BYTES && text.len() >= ORIGIN_LOG_BYTES - 1);
        assert!(long.starts_with(&text));
        assert_eq!(origin_text(b"http://a\xff"), "http://a\u{fffd}");
    }

    #[test]
    fn the_host_policy_names_the_host_and_three_ways_to_allow_the_page() {
        let why = explain(&CheckOrigin::Host, target(None), "http://127.0.0.1:4000");
        assert!(why.contains("\"localhost\""), "{why}");
        assert!(
            why.contains("EndpointBuilder::host(\"127.0.0.1\")"),
            "{why}"
        );
        assert!(
            why.contains("CheckOrigin::allowed([\"//127.0.0.1:4000\"])"),
            "{why}"
        );
        assert_eq!(
            allowed(&CheckOrigin::Host, target(Some("chat.example.org"))),
            "pages from host chat.example.org (the endpoint's host; any scheme and port)"
        );
    }

    #[test]
    fn an_ipv6_page_gets_a_bracketed_pattern() {
        let why = explain(&CheckOrigin::Host, target(None), "http://[::1]:4000");
        assert!(why.contains("[\"//[::1]:4000\"]"), "{why}");
    }

    #[test]
    fn a_list_policy_names_the_list_and_the_entry_to_add() {
        let policy = CheckOrigin::Allowed(vec!["//a.com".into(), "https://b.io".into()]);
        let why = explain(&policy, target(None), "https://c.org");
        assert!(why.contains("add \"//c.org:443\""), "{why}");
        assert_eq!(allowed(&policy, target(None)), "//a.com, https://b.io");
    }

    #[test]
    fn something_that_is_no_origin_is_said_to_be_none() {
        let why = explain(&CheckOrigin::Host, target(None), "null");
        assert!(why.contains("not an origin a browser sends"), "{why}");
    }
}
