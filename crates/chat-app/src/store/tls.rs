//! TLS to PostgreSQL from `sslmode` in `DATABASE_URL`, as libpq reads it.
//!
//! tokio-postgres parses `disable`, `prefer` and `require` only; hosted databases hand
//! out URLs with `verify-full` too. So the mode is taken out of the URL here:
//!
//! - `disable`, `prefer` (the default), none: no TLS (`prefer` falls back to plain
//!   text, which is what it does without a TLS connector);
//! - `require`: TLS or no connection; the certificate is NOT verified (libpq's
//!   `require`: it protects against passive listening only; a warning says so);
//! - `verify-ca`, `verify-full`: TLS, the certificate chain verified against the Mozilla
//!   root store plus the PEM file in `sslrootcert=` (the provider's CA, e.g. RDS), and
//!   the host name checked (rustls always checks it, so `verify-ca` behaves as
//!   `verify-full`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What `sslmode` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS connector (`disable`, `prefer`, unset).
    Off,
    /// TLS, certificate not verified.
    Require,
    /// TLS, certificate verified; with extra roots from this PEM file.
    Verify(Option<String>),
}

/// Splits `sslmode` (and `sslrootcert`) out of a connection string: the string
/// tokio-postgres gets (with `sslmode=require` for any TLS mode) and the mode.
pub fn split_sslmode(url: &str) -> Result<(String, TlsMode), String> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (base, params): (&str, Vec<&str>) = if is_url {
        match url.split_once('?') {
            Some((base, query)) => (base, query.split('&').collect()),
            None => (url, Vec::new()),
        }
    } else {
        ("", url.split_whitespace().collect())
    };
    let mut mode = None;
    let mut root = None;
    let mut kept = Vec::new();
    for param in params {
        match param.split_once('=') {
            Some(("sslmode", value)) => mode = Some(value.to_owned()),
            Some(("sslrootcert", value)) => root = Some(value.to_owned()),
            _ => kept.push(param),
        }
    }
    let tls = match mode.as_deref() {
        None | Some("disable") | Some("prefer") | Some("allow") => TlsMode::Off,
        Some("require") => TlsMode::Require,
        Some("verify-ca") | Some("verify-full") => TlsMode::Verify(root),
        Some(other) => {
            return Err(format!(
                "invalid connection string: sslmode={other:?} is not one of disable, allow, \
                 prefer, require, verify-ca, verify-full"
            ))
        }
    };
    if tls != TlsMode::Off {
        kept.push("sslmode=require");
    } else if let Some(mode) = &mode {
        if mode != "allow" {
            kept.push(if mode == "disable" {
                "sslmode=disable"
            } else {
                "sslmode=prefer"
            });
        }
    }
    let rebuilt = if is_url {
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        kept.join(" ")
    };
    Ok((rebuilt, tls))
}

/// The rustls connector for `mode` (`None` for [`TlsMode::Off`]).
pub fn connector(mode: &TlsMode) -> Result<Option<MakeRustlsConnect>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match mode {
        TlsMode::Off => return Ok(None),
        TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
        TlsMode::Verify(root) => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(path) = root {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("sslrootcert={path}: cannot read it: {e}"))?;
                let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
                    .collect::<Result<Vec<CertificateDer<'static>>, _>>()
                    .map_err(|e| format!("sslrootcert={path}: not PEM certificates: {e}"))?;
                if certs.is_empty() {
                    return Err(format!("sslrootcert={path}: no certificate in it"));
                }
                roots.add_parsable_certificates(certs);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// `sslmode=require`: encrypted, the server not authenticated (libpq's meaning).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_urls_and_key_value_strings() {
        let (url, mode) =
            split_sslmode("postgres://u@h/db?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(url, "postgres://u@h/db?application_name=x&sslmode=require");
        assert_eq!(mode, TlsMode::Verify(None));
        let (url, mode) = split_sslmode("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(
            (url.as_str(), mode),
            ("postgres://u@h/db?sslmode=require", TlsMode::Require)
        );
        let (url, mode) = split_sslmode("postgres://u@h/db").unwrap();
        assert_eq!((url.as_str(), mode), ("postgres://u@h/db", TlsMode::Off));
        let (url, mode) = split_sslmode("host=h sslmode=verify-ca sslrootcert=/ca.pem").unwrap();
        assert_eq!(url, "host=h sslmode=require");
        assert_eq!(mode, TlsMode::Verify(Some("/ca.pem".into())));
        let error = split_sslmode("postgres://u@h/db?sslmode=always").unwrap_err();
        assert!(error.contains("sslmode=\"always\""), "{error}");
    }

    #[test]
    fn every_tls_mode_builds_a_connector() {
        assert!(connector(&TlsMode::Off).unwrap().is_none());
        assert!(connector(&TlsMode::Require).unwrap().is_some());
        assert!(connector(&TlsMode::Verify(None)).unwrap().is_some());
        let error = connector(&TlsMode::Verify(Some("/no/such/ca.pem".into())))
            .err()
            .unwrap();
        assert!(error.contains("sslrootcert=/no/such/ca.pem"), "{error}");
    }
}
