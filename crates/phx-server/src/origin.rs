//! `check_origin` (§1.5): which `Origin` headers may open a socket.

use std::fmt;
use std::sync::Arc;

/// A parsed `Origin` (or allowed-origin pattern): scheme, host and port, each optional.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `http`, `https`, … (`None` for `//host` patterns).
    pub scheme: Option<String>,
    /// Host, lower-cased. `None` for `null`, `file://` and the like.
    pub host: Option<String>,
    /// Explicit port, or the scheme's default port.
    pub port: Option<u16>,
}

impl Origin {
    /// Parses `scheme://host[:port][/…]` or `//host[:port]`. Never fails: what cannot be
    /// parsed has no host (and is therefore refused unless a custom check says otherwise).
    pub fn parse(text: &str) -> Self {
        let (scheme, rest) = match text.split_once("//") {
            Some((s, rest)) => {
                let s = s.strip_suffix(':').unwrap_or(s);
                (
                    if s.is_empty() {
                        None
                    } else {
                        Some(s.to_ascii_lowercase())
                    },
                    rest,
                )
            }
            None => (None, ""),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
                Ok(port) => (h, Some(port)),
                Err(_) => (authority, None),
            },
            _ => (authority, None),
        };
        let port = port.or(match scheme.as_deref() {
            Some("http") | Some("ws") => Some(80),
            Some("https") | Some("wss") => Some(443),
            _ => None,
        });
        let host = (!host.is_empty()).then(|| host.to_ascii_lowercase());
        Self { scheme, host, port }
    }
}

/// How a socket checks the `Origin` header. A request without `Origin` always passes.
#[derive(Clone, Default)]
pub enum CheckOrigin {
    /// No check.
    Disabled,
    /// Phoenix's default (`check_origin: true`): the origin's host must equal the
    /// endpoint's configured host, or, when none is configured, the request's `Host`.
    /// Scheme and port are ignored.
    #[default]
    Host,
    /// Allowed origins such as `"//example.com"`, `"https://example.com"`,
    /// `"//*.example.com"`, `"//port.com:81"` (§1.5).
    Allowed(Vec<String>),
    /// `:conn`: scheme, host and port must equal the request's own.
    Conn,
    /// A custom predicate over the parsed origin (Phoenix's MFA).
    Custom(Arc<dyn Fn(&Origin) -> bool + Send + Sync>),
}

impl fmt::Debug for CheckOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disabled => f.write_str("Disabled"),
            Self::Host => f.write_str("Host"),
            Self::Allowed(list) => f.debug_tuple("Allowed").field(list).finish(),
            Self::Conn => f.write_str("Conn"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// What the request itself says about where it was sent to (for `Host` and `Conn`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestTarget<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) host_header: Option<&'a str>,
    pub(crate) endpoint_host: Option<&'a str>,
}

impl CheckOrigin {
    /// Whether `origin` (the raw header, if any) may connect.
    pub(crate) fn allows(&self, origin: Option<&str>, target: RequestTarget<'_>) -> bool {
        let Some(raw) = origin else { return true };
        if let Self::Disabled = self {
            return true;
        }
        let origin = Origin::parse(raw);
        if let Self::Custom(check) = self {
            return check(&origin);
        }
        let Some(host) = origin.host.as_deref() else {
            return false;
        };
        match self {
            Self::Disabled | Self::Custom(_) => true,
            Self::Host => {
                let expected = target.endpoint_host.map(str::to_owned).or_else(|| {
                    target
                        .host_header
                        .and_then(|h| Origin::parse(&format!("//{h}")).host)
                });
                expected.is_some_and(|e| e.eq_ignore_ascii_case(host))
            }
            Self::Allowed(list) => list.iter().any(|pattern| {
                let allowed = Origin::parse(pattern);
                let scheme_ok = allowed.scheme.is_none() || allowed.scheme == origin.scheme;
                let port_ok = allowed.port.is_none() || allowed.port == origin.port;
                scheme_ok && port_ok && host_matches(allowed.host.as_deref(), host)
            }),
            Self::Conn => {
                let Some(request) = target.host_header else {
                    return false;
                };
                let mine = Origin::parse(&format!("{}://{request}", target.scheme));
                mine == origin
            }
        }
    }
}

fn host_matches(pattern: Option<&str>, host: &str) -> bool {
    match pattern {
        None => false,
        Some(p) => match p.strip_prefix("*.") {
            Some(base) => host == base || host.strip_suffix(base).is_some_and(|s| s.ends_with('.')),
            None => p == host,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> RequestTarget<'static> {
        RequestTarget {
            scheme: "http",
            host_header: Some("localhost:4000"),
            endpoint_host: None,
        }
    }

    fn allowed(list: &[&str], origin: &str) -> bool {
        CheckOrigin::Allowed(list.iter().map(|s| s.to_string()).collect())
            .allows(Some(origin), target())
    }

    #[test]
    fn no_origin_header_passes() {
        assert!(CheckOrigin::Allowed(vec!["//example.com".into()]).allows(None, target()));
    }

    #[test]
    fn scheme_relative_entry_allows_any_scheme_and_port() {
        assert!(allowed(&["//example.com"], "http://example.com"));
        assert!(allowed(&["//example.com"], "https://example.com:8080"));
        assert!(!allowed(&["//example.com"], "http://sub.example.com"));
        assert!(!allowed(&["//example.com"], "http://evil.com"));
    }

    #[test]
    fn entry_with_scheme_has_its_default_port() {
        assert!(allowed(&["http://scheme.com"], "http://scheme.com"));
        assert!(!allowed(&["http://scheme.com"], "http://scheme.com:8080"));
        assert!(!allowed(&["http://scheme.com"], "https://scheme.com"));
        assert!(allowed(&["//port.com:81"], "https://port.com:81"));
        assert!(!allowed(&["//port.com:81"], "https://port.com"));
    }

    #[test]
    fn wildcard_matches_base_and_any_depth_but_not_prefixes() {
        assert!(allowed(&["//*.example.com"], "http://example.com"));
        assert!(allowed(&["//*.example.com"], "http://a.b.example.com"));
        assert!(!allowed(&["//*.example.com"], "http://prefix-example.com"));
    }

    #[test]
    fn hostless_origins_are_refused() {
        assert!(!allowed(&["//example.com"], "null"));
        assert!(!allowed(&["//example.com"], "file://"));
        assert!(!CheckOrigin::Host.allows(Some("null"), target()));
    }

    #[test]
    fn host_mode_compares_with_endpoint_or_request_host() {
        assert!(CheckOrigin::Host.allows(Some("https://localhost"), target()));
        assert!(!CheckOrigin::Host.allows(Some("http://evil.com"), target()));
        let t = RequestTarget {
            endpoint_host: Some("chat.example.org"),
            ..target()
        };
        assert!(CheckOrigin::Host.allows(Some("https://chat.example.org"), t));
        assert!(!CheckOrigin::Host.allows(Some("http://localhost:4000"), t));
    }

    #[test]
    fn conn_mode_needs_same_scheme_host_port() {
        assert!(CheckOrigin::Conn.allows(Some("http://localhost:4000"), target()));
        assert!(!CheckOrigin::Conn.allows(Some("https://localhost:4000"), target()));
        assert!(!CheckOrigin::Conn.allows(Some("ws://localhost:4000"), target()));
    }
}
