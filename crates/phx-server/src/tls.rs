//! TLS without a proxy: `https://` and `wss://` served by rustls from PEM files, the
//! certificate reloadable while the endpoint runs (see [`Tls`]).
//!
//! The crypto provider is *ring*, named explicitly rather than taken from rustls' process
//! default: the workspace already builds ring (tokio-postgres' rustls connector in the
//! chat app), so TLS adds no second crypto library and no C toolchain beyond the `cc`
//! ring needs (aws-lc-rs, rustls' default, wants cmake and a larger C build); and a
//! provider chosen here cannot clash with whatever another crate of the process installs
//! as the default.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Default time a client gets to finish its TLS handshake (see
/// [`Tls::handshake_timeout`]): 10 s.
///
/// Why this number: a handshake is two round trips, well under a second even on a slow
/// mobile link; a connection that has not finished in 10 s is a client that stopped (or
/// a slowloris), and it holds a connection slot until then.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no valid PEM.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The certificate file holds no certificate.
    #[error("{0}: no certificate (a PEM \"BEGIN CERTIFICATE\" block) in it")]
    NoCertificate(PathBuf),
    /// rustls refused the key, or the key does not belong to the certificate.
    #[error("{path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
}

/// TLS settings of an endpoint: a certificate chain and its private key from PEM files,
/// read again by [`Tls::reload`] (and on SIGHUP, see [`Tls::reload_on_sighup`]). A reload
/// changes the certificate of new handshakes only: connections already open keep theirs
/// and stay up.
///
/// ALPN offers `http/1.1` only, the one protocol the endpoint serves (WebSocket upgrades
/// and long poll both ride on it); TLS 1.2 and 1.3 with rustls' safe defaults.
///
/// ```no_run
/// use phx_server::{AcceptAll, Endpoint, SocketConfig, Tls};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = Tls::from_pem_files("/etc/phx/fullchain.pem", "/etc/phx/privkey.pem")?;
/// let endpoint = Endpoint::builder()
///     .tls(tls) // https:// and wss://; `kill -HUP` reloads the files
///     .socket("/socket", SocketConfig::new(AcceptAll))
///     .build();
/// endpoint.serve(tokio::net::TcpListener::bind("0.0.0.0:443").await?).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Tls {
    cert_path: PathBuf,
    key_path: PathBuf,
    certs: Arc<Certs>,
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
    reload_on_sighup: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// The certificate new handshakes get; swapped by a reload.
#[derive(Debug)]
struct Certs {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|current| current.clone())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the chain and key (the key must match the first certificate).
fn load(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let pem_error = |path: &Path, error: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_owned(),
        message: error.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| pem_error(cert_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| pem_error(key_path, e))?;
    let key_error = |source| TlsError::Key {
        path: key_path.to_owned(),
        source,
    };
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(key_error)?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(key_error)?;
    Ok(certified)
}

impl Tls {
    /// Loads a certificate chain (PEM, the server's certificate first, then its
    /// intermediates: a `fullchain.pem`) and its private key (PEM: PKCS#8, PKCS#1 or
    /// SEC1). Errors name the file and what is wrong with it; a key that does not belong
    /// to the certificate is refused here, not at the first handshake.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let (cert_path, key_path) = (cert.as_ref().to_owned(), key.as_ref().to_owned());
        let certified = load(&cert_path, &key_path)?;
        let certs = Arc::new(Certs {
            current: RwLock::new(Arc::new(certified)),
        });
        // `with_safe_default_protocol_versions` cannot fail with ring's own provider.
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Key {
                path: key_path.clone(),
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_path,
            key_path,
            certs,
            config: Arc::new(config),
            handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            reload_on_sighup: true,
        })
    }

    /// Time a client gets to finish its handshake (default
    /// [`DEFAULT_TLS_HANDSHAKE_TIMEOUT`]); past it the connection is closed. A handshake
    /// in progress holds a connection slot ([`crate::EndpointBuilder::max_connections`]
    /// and its per-address cap), so this bounds how long a client that never finishes
    /// one (or sends garbage instead of a ClientHello) can hold it.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Whether [`crate::Endpoint::serve`] reloads the files on SIGHUP (default on, Unix
    /// only). With it on, SIGHUP no longer ends the process (its default action): it is
    /// the reload signal, as for nginx. A reload that fails (a missing file, a key that
    /// does not match) is logged and the current certificate stays.
    pub fn reload_on_sighup(mut self, enabled: bool) -> Self {
        self.reload_on_sighup = enabled;
        self
    }

    /// Reads the certificate and key files again: handshakes from now on use them;
    /// connections already open are untouched. On error the current certificate stays.
    ///
    /// ```no_run
    /// # fn run(tls: phx_server::Tls) {
    /// // after certbot renewed the files:
    /// if let Err(error) = tls.reload() {
    ///     eprintln!("keeping the old certificate: {error}");
    /// }
    /// # }
    /// ```
    pub fn reload(&self) -> Result<(), TlsError> {
        let certified = load(&self.cert_path, &self.key_path)?;
        if let Ok(mut current) = self.certs.current.write() {
            *current = Arc::new(certified);
        }
        Ok(())
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.handshake_timeout
    }

    pub(crate) fn reloads_on_sighup(&self) -> bool {
        self.reload_on_sighup
    }
}
