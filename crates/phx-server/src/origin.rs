//! `check_origin` (§1.5): which `Origin` headers may open a socket.
//!
//! An origin is trusted only when it names a host the server was configured for. The
//! request's own `Host` header is never the reference for [`CheckOrigin::Host`]: a
//! DNS-rebinding page (`http://evil.test:4000` resolved to this server) sends
//! `Host: evil.test:4000` and `Origin: http://evil.test:4000`, which agree with each
//! other and prove nothing.

use std::fmt;
use std::net::Ipv6Addr;
use std::sync::Arc;

/// The host [`CheckOrigin::Host`] compares with when the endpoint has none configured
/// (Phoenix's default `url: [host: "localhost"]`).
pub(crate) const DEFAULT_HOST: &str = "localhost";

/// A parsed `Origin` (or allowed-origin pattern): scheme, host and port, each optional.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `http`, `https`, … lower-cased (`None` for `//host` patterns).
    pub scheme: Option<String>,
    /// Host, lower-cased; an IPv6 address without its brackets, in its canonical form
    /// (`::1`). `None` for `null` and anything that is not an origin.
    pub host: Option<String>,
    /// Explicit port, or the scheme's default port.
    pub port: Option<u16>,
}

impl Origin {
    /// Parses a serialized origin, `scheme://host[:port]` (what browsers send, RFC 6454
    /// §6.2), or the pattern form `//host[:port]`; one trailing `/` is tolerated. Never
    /// fails: anything else (`null`, userinfo, a path, a backslash, whitespace, a port
    /// out of range, an empty host…) parses with no scheme, host or port, and is
    /// therefore refused unless a custom check says otherwise.
    ///
    /// ```
    /// use phx_server::Origin;
    ///
    /// let origin = Origin::parse("https://Chat.Example.org");
    /// assert_eq!(origin.host.as_deref(), Some("chat.example.org"));
    /// assert_eq!(origin.port, Some(443));
    /// // A backslash is a path delimiter for a browser: this is not 127.0.0.1.
    /// assert_eq!(Origin::parse(r"http://evil.test\@127.0.0.1").host, None);
    /// ```
    pub fn parse(text: &str) -> Self {
        parse(text, false).unwrap_or(Self::NONE)
    }

    /// Like [`Origin::parse`], and the host may also be `*.` followed by a host (a
    /// pattern of [`CheckOrigin::Allowed`]). `None` when it has no host.
    fn parse_pattern(text: &str) -> Option<Self> {
        parse(text, true)
    }

    const NONE: Self = Self {
        scheme: None,
        host: None,
        port: None,
    };
}

fn parse(text: &str, wildcard: bool) -> Option<Origin> {
    let (scheme, rest) = match text.strip_prefix("//") {
        Some(rest) => (None, rest),
        None => {
            let (scheme, rest) = text.split_once("://")?;
            (Some(parse_scheme(scheme)?), rest)
        }
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = split_port(authority)?;
    let host = parse_host(host, wildcard)?;
    let port = port.or(match scheme.as_deref() {
        Some("http" | "ws") => Some(80),
        Some("https" | "wss") => Some(443),
        _ => None,
    });
    Some(Origin {
        scheme,
        host: Some(host),
        port,
    })
}

/// RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn parse_scheme(text: &str) -> Option<String> {
    let mut chars = text.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then(|| text.to_ascii_lowercase())
}

/// `host[:port]` → host and explicit port; `None` when the port is not 1–5 digits
/// within `u16`.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    // An IPv6 host holds colons of its own: the port, if any, follows its `]`.
    let host_end = if authority.starts_with('[') {
        authority
            .find(']')
            .map_or(authority.len(), |close| close + 1)
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    if rest.is_empty() {
        return Some((host, None));
    }
    let digits = rest.strip_prefix(':')?;
    // `u16::from_str` accepts a leading `+`: only digits are a port.
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host, Some(digits.parse().ok()?)))
}

/// A registered name (letters, digits, `-`, `_`, dot-separated, one trailing dot
/// allowed and kept: `localhost.` is another host) or a bracketed IPv6 address.
fn parse_host(host: &str, wildcard: bool) -> Option<String> {
    if let Some(inner) = host.strip_prefix('[') {
        let address: Ipv6Addr = inner.strip_suffix(']')?.parse().ok()?;
        return Some(address.to_string());
    }
    let name = match host.strip_prefix("*.") {
        Some(base) if wildcard => base,
        _ => host,
    };
    let labels = name.strip_suffix('.').unwrap_or(name);
    let valid = !labels.is_empty()
        && labels.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then(|| host.to_ascii_lowercase())
}

/// A [`CheckOrigin::Allowed`] pattern that has no host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid allowed origin {0:?}: expected an origin with a host, such as \
     \"https://example.com\", \"//example.com\", \"//*.example.com\" or \"//example.com:8080\""
)]
pub struct InvalidOriginPattern(pub String);

/// How a socket checks the `Origin` header. A request without `Origin` always passes
/// (it does not come from a browser page); one whose `Origin` is not valid ASCII is
/// refused by every policy but [`CheckOrigin::Disabled`].
#[derive(Clone, Default)]
pub enum CheckOrigin {
    /// No check.
    Disabled,
    /// Phoenix's default (`check_origin: true`): the origin's host must equal the
    /// endpoint's configured host ([`crate::EndpointBuilder::host`]), `localhost` when
    /// none is configured. Scheme and port are ignored. The request's `Host` header is
    /// never used.
    #[default]
    Host,
    /// Allowed origins such as `"//example.com"`, `"https://example.com"`,
    /// `"//*.example.com"`, `"//port.com:81"` (§1.5). A pattern with a scheme has that
    /// scheme's default port unless it names one. [`CheckOrigin::allowed`] builds this
    /// and refuses patterns that could never match.
    Allowed(Vec<String>),
    /// `:conn`: scheme, host and port must equal the request's own (its `Host` header,
    /// as Phoenix's `conn.host`/`conn.port`). Use it only where something in front
    /// guarantees the `Host` header (a proxy that routes by host), since it trusts it.
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

/// What the request itself says about where it was sent to (for `Conn`), and the
/// endpoint's configured host (for `Host`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestTarget<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) host_header: Option<&'a str>,
    pub(crate) endpoint_host: Option<&'a str>,
}

impl CheckOrigin {
    /// [`CheckOrigin::Allowed`] from `patterns`, each checked as Phoenix checks its
    /// `check_origin` list at start-up: one without a host is an error.
    ///
    /// ```
    /// use phx_server::CheckOrigin;
    ///
    /// assert!(CheckOrigin::allowed(["//example.com", "https://*.example.org"]).is_ok());
    /// assert!(CheckOrigin::allowed(["example.com"]).is_err());
    /// ```
    pub fn allowed<I, S>(patterns: I) -> Result<Self, InvalidOriginPattern>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let list = patterns
            .into_iter()
            .map(|pattern| {
                let pattern = pattern.into();
                match Origin::parse_pattern(&pattern) {
                    Some(_) => Ok(pattern),
                    None => Err(InvalidOriginPattern(pattern)),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Allowed(list))
    }

    /// Whether `origin` (the raw header bytes, if any) may connect.
    pub(crate) fn allows(&self, origin: Option<&[u8]>, target: RequestTarget<'_>) -> bool {
        let Some(raw) = origin else { return true };
        if let Self::Disabled = self {
            return true;
        }
        // Bytes that are not ASCII are no origin a browser sends: present, and refused,
        // never mistaken for an absent header.
        let Some(raw) = std::str::from_utf8(raw).ok().filter(|s| s.is_ascii()) else {
            return false;
        };
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
                let configured = target.endpoint_host.unwrap_or(DEFAULT_HOST);
                let expected = Origin::parse(&format!("//{configured}"))
                    .host
                    .unwrap_or_else(|| configured.to_ascii_lowercase());
                expected == host
            }
            Self::Allowed(list) => list.iter().any(|pattern| {
                let Some(allowed) = Origin::parse_pattern(pattern) else {
                    return false;
                };
                let scheme_ok = allowed.scheme.is_none() || allowed.scheme == origin.scheme;
                let port_ok = allowed.port.is_none() || allowed.port == origin.port;
                scheme_ok && port_ok && host_matches(allowed.host.as_deref(), host)
            }),
            Self::Conn => {
                let Some(request) = target.host_header else {
                    return false;
                };
                let mine = Origin::parse(&format!("{}://{request}", target.scheme));
                mine.host.is_some() && mine == origin
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
            .allows(Some(origin.as_bytes()), target())
    }

    fn host_of(text: &str) -> Option<String> {
        Origin::parse(text).host
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
    fn a_wildcard_is_only_a_pattern_never_an_origin_host() {
        assert_eq!(host_of("http://*.example.com"), None);
        assert_eq!(host_of("//*"), None);
        assert_eq!(Origin::parse_pattern("//*"), None);
        assert_eq!(Origin::parse_pattern("//a.*.com"), None);
    }

    #[test]
    fn hostless_origins_are_refused() {
        assert!(!allowed(&["//example.com"], "null"));
        assert!(!allowed(&["//example.com"], "file://"));
        assert!(!CheckOrigin::Host.allows(Some(b"null"), target()));
    }

    #[test]
    fn host_mode_compares_with_the_configured_host_or_localhost() {
        assert!(CheckOrigin::Host.allows(Some(b"https://localhost"), target()));
        assert!(CheckOrigin::Host.allows(Some(b"http://localhost:4000"), target()));
        assert!(!CheckOrigin::Host.allows(Some(b"http://evil.com"), target()));
        let t = RequestTarget {
            endpoint_host: Some("chat.example.org"),
            ..target()
        };
        assert!(CheckOrigin::Host.allows(Some(b"https://chat.example.org"), t));
        assert!(!CheckOrigin::Host.allows(Some(b"http://localhost:4000"), t));
    }

    #[test]
    fn host_mode_never_trusts_the_host_header() {
        // DNS rebinding: the page's host, the Host header and the Origin all agree.
        let rebound = RequestTarget {
            host_header: Some("evil.test:4000"),
            ..target()
        };
        assert!(!CheckOrigin::Host.allows(Some(b"http://evil.test:4000"), rebound));
        assert!(!CheckOrigin::Host.allows(Some(b"http://evil.test"), rebound));
        let configured = RequestTarget {
            endpoint_host: Some("chat.example.org"),
            ..rebound
        };
        assert!(!CheckOrigin::Host.allows(Some(b"http://evil.test:4000"), configured));
    }

    #[test]
    fn host_mode_normalises_a_configured_ipv6_or_uppercase_host() {
        let t = RequestTarget {
            endpoint_host: Some("[::1]"),
            ..target()
        };
        assert!(CheckOrigin::Host.allows(Some(b"http://[::1]:4000"), t));
        let t = RequestTarget {
            endpoint_host: Some("Chat.Example.ORG"),
            ..target()
        };
        assert!(CheckOrigin::Host.allows(Some(b"https://chat.example.org"), t));
    }

    #[test]
    fn conn_mode_needs_same_scheme_host_port() {
        assert!(CheckOrigin::Conn.allows(Some(b"http://localhost:4000"), target()));
        assert!(!CheckOrigin::Conn.allows(Some(b"https://localhost:4000"), target()));
        assert!(!CheckOrigin::Conn.allows(Some(b"ws://localhost:4000"), target()));
        let garbled = RequestTarget {
            host_header: Some("bad host"),
            ..target()
        };
        assert!(!CheckOrigin::Conn.allows(Some(b"null"), garbled));
    }

    #[test]
    fn invalid_bytes_are_a_present_origin_and_refused() {
        let latin1 = b"http://localhost\xe9";
        assert!(!CheckOrigin::Host.allows(Some(latin1), target()));
        assert!(!CheckOrigin::Allowed(vec!["//localhost".into()]).allows(Some(latin1), target()));
        assert!(!CheckOrigin::Conn.allows(Some(latin1), target()));
        assert!(!CheckOrigin::Custom(Arc::new(|_| true)).allows(Some(latin1), target()));
        assert!(!CheckOrigin::Host.allows(Some(b"http://local\x01host"), target()));
        assert!(CheckOrigin::Disabled.allows(Some(latin1), target()));
    }

    #[test]
    fn parses_what_browsers_send() {
        let o = Origin::parse("http://localhost:4000");
        assert_eq!(o.scheme.as_deref(), Some("http"));
        assert_eq!(o.host.as_deref(), Some("localhost"));
        assert_eq!(o.port, Some(4000));
        assert_eq!(Origin::parse("https://example.com").port, Some(443));
        assert_eq!(Origin::parse("ws://example.com").port, Some(80));
        assert_eq!(Origin::parse("chrome-extension://abcdef").port, None);
        assert_eq!(
            host_of("chrome-extension://abcdef").as_deref(),
            Some("abcdef")
        );
        assert_eq!(
            host_of("https://example.com/").as_deref(),
            Some("example.com")
        );
    }

    #[test]
    fn pattern_form_has_no_scheme() {
        let o = Origin::parse("//example.com:8080");
        assert_eq!(o.scheme, None);
        assert_eq!(o.host.as_deref(), Some("example.com"));
        assert_eq!(o.port, Some(8080));
        assert_eq!(Origin::parse("//example.com").port, None);
    }

    #[test]
    fn userinfo_has_no_place_in_an_origin() {
        assert_eq!(host_of("http://evil.test@127.0.0.1"), None);
        assert_eq!(host_of("http://user:pass@localhost"), None);
        assert_eq!(host_of("http://@localhost"), None);
    }

    #[test]
    fn a_backslash_does_not_hide_the_real_host() {
        assert_eq!(host_of(r"http://evil.test\@127.0.0.1"), None);
        assert_eq!(host_of(r"http://127.0.0.1\evil.test"), None);
        assert!(!CheckOrigin::Host.allows(Some(br"http://evil.test\@localhost"), target()));
    }

    #[test]
    fn paths_queries_and_fragments_are_refused() {
        assert_eq!(host_of("http://localhost/path"), None);
        assert_eq!(host_of("http://localhost?x"), None);
        assert_eq!(host_of("http://localhost#x"), None);
        assert_eq!(host_of("http://localhost//"), None);
    }

    #[test]
    fn whitespace_is_refused() {
        assert_eq!(host_of(" http://localhost"), None);
        assert_eq!(host_of("http://localhost "), None);
        assert_eq!(host_of("http://local host"), None);
        assert_eq!(host_of("http://localhost\t"), None);
        assert_eq!(host_of("http ://localhost"), None);
    }

    #[test]
    fn a_trailing_dot_is_kept_and_is_another_host() {
        assert_eq!(host_of("http://localhost.").as_deref(), Some("localhost."));
        assert!(!CheckOrigin::Host.allows(Some(b"http://localhost."), target()));
        assert_eq!(host_of("http://a..b"), None);
        assert_eq!(host_of("http://.a"), None);
        assert_eq!(host_of("http://."), None);
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets_and_keep_their_port() {
        let o = Origin::parse("http://[::1]:4000");
        assert_eq!(o.host.as_deref(), Some("::1"));
        assert_eq!(o.port, Some(4000));
        assert_eq!(Origin::parse("http://[::1]").port, Some(80));
        assert_eq!(
            host_of("http://[0:0:0:0:0:0:0:1]:4000").as_deref(),
            Some("::1")
        );
        assert_eq!(host_of("http://[::1"), None);
        assert_eq!(host_of("http://::1:4000"), None);
        assert_eq!(host_of("http://[::1]x"), None);
        assert_eq!(host_of("http://[not-v6]"), None);
        assert!(allowed(&["//[::1]:4000"], "http://[::1]:4000"));
        assert!(!allowed(&["//[::1]:4000"], "http://[::1]:4001"));
    }

    #[test]
    fn uppercase_is_lowered() {
        let o = Origin::parse("HTTP://LocalHost:4000");
        assert_eq!(o.scheme.as_deref(), Some("http"));
        assert_eq!(o.host.as_deref(), Some("localhost"));
        assert!(CheckOrigin::Host.allows(Some(b"HTTPS://LOCALHOST"), target()));
    }

    #[test]
    fn ports_must_be_digits_within_range() {
        assert_eq!(Origin::parse("http://a.com:65535").port, Some(65535));
        assert_eq!(Origin::parse("http://a.com:0").port, Some(0));
        assert_eq!(host_of("http://a.com:65536"), None);
        assert_eq!(host_of("http://a.com:99999999999"), None);
        assert_eq!(host_of("http://a.com:"), None);
        assert_eq!(host_of("http://a.com:+80"), None);
        assert_eq!(host_of("http://a.com:-1"), None);
        assert_eq!(host_of("http://a.com:80:80"), None);
        assert_eq!(host_of("http://a.com:8o"), None);
        // More than five digits is never a port a browser sends, whatever its value.
        assert_eq!(host_of("http://a.com:000080"), None);
    }

    #[test]
    fn empty_hosts_and_schemes_are_refused() {
        assert_eq!(host_of("http://"), None);
        assert_eq!(host_of("http://:80"), None);
        assert_eq!(host_of("//"), None);
        assert_eq!(host_of("://localhost"), None);
        assert_eq!(host_of("1http://localhost"), None);
        assert_eq!(host_of("localhost"), None);
        assert_eq!(host_of("localhost:4000"), None);
        assert_eq!(host_of(""), None);
    }

    #[test]
    fn non_ascii_hosts_are_refused() {
        // Browsers send IDNs in punycode.
        assert_eq!(host_of("http://exämple.com"), None);
        assert_eq!(
            host_of("http://xn--exmple-cua.com").as_deref(),
            Some("xn--exmple-cua.com")
        );
    }

    #[test]
    fn allowed_constructor_refuses_patterns_without_a_host() {
        for bad in [
            "example.com",
            "*",
            "yes",
            "1",
            "//",
            "https://",
            "//a.com/x",
            "//*",
        ] {
            assert_eq!(
                CheckOrigin::allowed([bad]).unwrap_err(),
                InvalidOriginPattern(bad.to_owned()),
                "{bad}"
            );
        }
        let good = CheckOrigin::allowed(["//a.com", "https://b.io", "//*.c.org", "//d.net:8080"]);
        assert!(matches!(good, Ok(CheckOrigin::Allowed(list)) if list.len() == 4));
    }
}
