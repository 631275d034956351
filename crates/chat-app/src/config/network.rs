//! Where the app listens and who may connect: the address to bind, the origin check
//! and the public host (flags of [`Config`] itself, parsed here), connection caps and
//! TLS ([`ConnectionFlags`]).

use std::path::PathBuf;

use clap::Args;
use phx_server::{CheckOrigin, Origin};

use super::Config;

/// Connection caps (SECURITY.md) and native TLS (docs/operating.md).
#[derive(Args, Debug, Clone)]
pub struct ConnectionFlags {
    /// TCP connections held at once; past it a new one gets HTTP 503 at accept. Unset:
    /// 90 % of the open-file limit (`ulimit -n`), logged at start.
    #[arg(long, env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// TCP connections one client address (IPv6: its /64) holds at once; past it a new
    /// one gets HTTP 429. Behind a reverse proxy every client has the proxy's address:
    /// set it to MAX_CONNECTIONS there.
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS",
          default_value_t = phx_server::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)]
    pub max_connections_per_address: usize,

    /// Bytes of outbound frames all WebSockets hold at once (each frame once); past it
    /// the sockets holding the most without reading are closed with 1013.
    #[arg(long, env = "OUTBOUND_BYTES_TOTAL",
          default_value_t = phx_server::DEFAULT_OUTBOUND_BYTES_TOTAL)]
    pub outbound_bytes_total: usize,

    /// Milliseconds a request body read whole (sign-in, registration, a long-poll POST,
    /// the server API) may take to arrive; past it: HTTP 408 and the connection closes.
    /// Uploads have their own (UPLOAD_BODY_TIMEOUT_MS).
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,

    // --- TLS (docs/operating.md) ---
    /// Serve https:// and wss:// with this PEM certificate chain (the server's
    /// certificate first, then intermediates). Needs --tls-key. SIGHUP reloads both files.
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Milliseconds a client gets to finish its TLS handshake; past it the connection
    /// is closed (it holds a connection slot until then).
    #[arg(long, env = "TLS_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_handshake_timeout_ms: u64,
}

pub(super) fn parse_bind(value: &str) -> Result<std::net::IpAddr, String> {
    if value == "localhost" {
        return Ok(std::net::Ipv4Addr::LOCALHOST.into());
    }
    value
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            format!(
                "{value:?} is not an address to bind: expected an IPv4 or IPv6 address \
                 (`0.0.0.0`, `127.0.0.1`, `::`, `::1`) or `localhost`; the port is `--port`"
            )
        })
}

/// What `--check-origin` / `CHECK_ORIGIN` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginSetting {
    /// `true`: the hosts the app is configured for (see [`Config::origin_policy`]).
    ConfiguredHosts,
    /// `false`: no check.
    Off,
    /// Exactly these origins (each one checked to have a host).
    Allowed(Vec<String>),
}

const ACCEPTED_FORMS: &str = "expected `true`, `false`, or a comma-separated list of \
    origins such as `//a.com`, `https://b.io`, `//*.c.org`, `//d.net:8080`";

/// Refuses at start-up what would otherwise start a server that refuses every browser
/// (or, for a typo of `false`, one that checks nothing the operator meant it to).
pub(super) fn parse_check_origin(value: &str) -> Result<OriginSetting, String> {
    match value {
        "true" => return Ok(OriginSetting::ConfiguredHosts),
        "false" => return Ok(OriginSetting::Off),
        _ => {}
    }
    let list: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    match CheckOrigin::allowed(list.clone()) {
        Ok(_) => Ok(OriginSetting::Allowed(list)),
        Err(invalid) if list.len() > 1 => Err(format!(
            "{:?} is not an origin; {ACCEPTED_FORMS}",
            invalid.0
        )),
        Err(_) => Err(ACCEPTED_FORMS.to_owned()),
    }
}

pub(super) fn parse_host(value: &str) -> Result<String, String> {
    match Origin::parse(&format!("//{value}")).host {
        Some(_) => Ok(value.to_owned()),
        None => Err(format!(
            "{value:?} is not a host: expected a host name or address such as \
             `chat.example.org`, `192.0.2.7` or `[2001:db8::1]`, optionally with `:port`"
        )),
    }
}

impl Config {
    /// The `check_origin` policy for a server listening on `port` (the bound port, which
    /// `PORT=0` only tells after binding).
    ///
    /// `true` allows pages served by this app and nothing else: `localhost`, `127.0.0.1`
    /// and `[::1]` on `port` (any scheme, since a TLS proxy may sit in front), plus
    /// `--host`. Never the request's `Host` header, which a DNS-rebinding page chooses.
    pub fn origin_policy(&self, port: u16) -> CheckOrigin {
        match &self.check_origin {
            OriginSetting::Off => CheckOrigin::Disabled,
            OriginSetting::Allowed(list) => CheckOrigin::Allowed(list.clone()),
            OriginSetting::ConfiguredHosts => {
                let mut list: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
                    .iter()
                    .map(|host| format!("//{host}:{port}"))
                    .collect();
                if let Some(host) = &self.host {
                    list.push(format!("//{host}"));
                }
                CheckOrigin::Allowed(list)
            }
        }
    }
}

/// One line for the start-up log: which origins may open a socket.
pub fn describe_policy(policy: &CheckOrigin) -> String {
    match policy {
        CheckOrigin::Disabled => "off: any origin may connect (CHECK_ORIGIN=false)".to_owned(),
        CheckOrigin::Allowed(list) => format!(
            "only pages from {} may connect (`//` is any scheme, no port is any port; \
             requests without an Origin header do not come from a page and pass)",
            list.join(", ")
        ),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(value: &str) -> Result<Config, clap::Error> {
        Config::try_parse_from(["chat-app", "--check-origin", value])
    }

    #[test]
    fn origin_flag_maps_to_policies() {
        let policy = |v: &str| parse(v).unwrap().origin_policy(4000);
        assert!(matches!(policy("false"), CheckOrigin::Disabled));
        match policy("//a.com, https://b.io") {
            CheckOrigin::Allowed(list) => assert_eq!(list, vec!["//a.com", "https://b.io"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn true_allows_the_loopback_hosts_on_the_port_and_the_configured_host() {
        let config = Config::parse_from(["chat-app"]);
        match config.origin_policy(4123) {
            CheckOrigin::Allowed(list) => assert_eq!(
                list,
                vec!["//localhost:4123", "//127.0.0.1:4123", "//[::1]:4123"]
            ),
            other => panic!("unexpected {other:?}"),
        }
        let config = Config::parse_from(["chat-app", "--host", "chat.example.org"]);
        match config.origin_policy(4000) {
            CheckOrigin::Allowed(list) => assert_eq!(list.last().unwrap(), "//chat.example.org"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn invalid_check_origin_values_are_refused_with_the_accepted_forms() {
        for value in [
            "yes",
            "1",
            "*",
            "example.com",
            "",
            "TRUE",
            "//a.com,",
            "//a.com,b.io",
        ] {
            let error = parse(value).expect_err(value).to_string();
            assert!(
                error.contains("expected `true`, `false`"),
                "{value}: {error}"
            );
        }
        let error = parse("//a.com,b.io").unwrap_err().to_string();
        assert!(error.contains("\"b.io\""), "{error}");
    }

    #[test]
    fn valid_origin_lists_are_accepted() {
        for value in [
            "//a.com",
            "https://b.io",
            "//*.c.org",
            "//d.net:8080",
            "//a.com,https://b.io",
        ] {
            assert!(parse(value).is_ok(), "{value}");
        }
    }

    #[test]
    fn invalid_hosts_are_refused() {
        for host in [
            "",
            "a b",
            "evil.test\\@localhost",
            "http://x",
            "*.example.org",
        ] {
            assert!(
                Config::try_parse_from(["chat-app", "--host", host]).is_err(),
                "{host}"
            );
        }
        assert!(Config::try_parse_from(["chat-app", "--host", "[::1]:4000"]).is_ok());
    }

    #[test]
    fn bind_takes_addresses_and_localhost_and_echoes_bad_values() {
        let bind = |v: &str| Config::try_parse_from(["chat-app", "--bind", v]).map(|c| c.bind);
        assert_eq!(bind("localhost").unwrap().to_string(), "127.0.0.1");
        assert_eq!(bind("::").unwrap().to_string(), "::");
        assert_eq!(bind("[::1]").unwrap().to_string(), "::1");
        let error = bind("0.0.0.0:4000").unwrap_err().to_string();
        assert!(
            error.contains("\"0.0.0.0:4000\" is not an address"),
            "{error}"
        );
    }

    #[test]
    fn connection_and_tls_defaults() {
        let config = Config::parse_from(["chat-app"]);
        let connections = &config.connections;
        assert!(connections.max_connections.is_none());
        assert_eq!(
            connections.max_connections_per_address,
            phx_server::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
        );
        assert_eq!(
            connections.outbound_bytes_total,
            phx_server::DEFAULT_OUTBOUND_BYTES_TOTAL
        );
        assert!(connections.tls_cert.is_none() && connections.tls_key.is_none());
        assert_eq!(connections.tls_handshake_timeout_ms, 10_000);
        assert_eq!(
            u128::from(connections.body_timeout_ms),
            phx_server::DEFAULT_BODY_TIMEOUT.as_millis()
        );
    }

    #[test]
    fn a_tls_certificate_needs_its_key_and_the_key_its_certificate() {
        let parse = |args: &[&str]| {
            let mut all = vec!["chat-app"];
            all.extend_from_slice(args);
            Config::try_parse_from(all)
        };
        assert!(parse(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["--tls-key", "k.pem"]).is_err());
        let config = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert_eq!(config.connections.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(config.connections.tls_key, Some(PathBuf::from("k.pem")));
        assert!(parse(&["--tls-handshake-timeout-ms", "0"]).is_err());
    }
}
