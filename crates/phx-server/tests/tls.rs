//! TLS served by the endpoint itself: `https://` and `wss://` with a certificate signed
//! by a certificate authority made here (the client trusts that CA and nothing else),
//! ALPN, a reload on SIGHUP that new handshakes see while open sockets stay up, the
//! handshake timeout, and clear errors for bad files.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload as WsPayload, WebSocket};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper::Request;
use hyper_util::rt::TokioIo;
use phx_server::{AcceptAll, Endpoint, SocketConfig, Tls, TlsError};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType, SerialNumber};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

mod support;
use support::wait_until;

/// The TLS tests of this file share the process's SIGHUP: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A certificate authority and the files of a server certificate it signed.
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("phx-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "phx-rs test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        Self {
            dir,
            ca: ca.der().clone(),
            ca_params,
            ca_key,
        }
    }

    /// Writes `cert.pem` and `key.pem` for 127.0.0.1 with this serial; returns the DER.
    fn issue(&self, serial: u64) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(self.dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(self.dir.join("key.pem"), key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    fn tls(&self) -> Tls {
        Tls::from_pem_files(self.dir.join("cert.pem"), self.dir.join("key.pem")).unwrap()
    }

    /// A client that trusts this CA only and offers ALPN http/1.1.
    fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsConnector::from(Arc::new(config))
    }

    async fn connect(&self, port: u16) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
        self.connector().connect(name, tcp).await.unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(tls: Tls) -> (Endpoint, u16) {
    let endpoint = Endpoint::builder()
        .tls(tls)
        .health(true)
        .socket("/socket", SocketConfig::new(AcceptAll))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = endpoint.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (endpoint, port)
}

/// `GET path` over `stream`: the answer's head.
async fn get(stream: &mut TlsStream<TcpStream>, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

struct Executor;

impl<F: std::future::Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for Executor {
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

async fn wss(stream: TlsStream<TcpStream>, port: u16) -> WebSocket<TokioIo<Upgraded>> {
    let req = Request::builder()
        .uri(format!("wss://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"))
        .header("Host", format!("127.0.0.1:{port}"))
        .header("Upgrade", "websocket")
        .header("Connection", "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    fastwebsockets::handshake::client(&Executor, req, stream)
        .await
        .unwrap()
        .0
}

async fn heartbeat(ws: &mut WebSocket<TokioIo<Upgraded>>, r#ref: &str) {
    let beat = format!(r#"[null,"{ref}","phoenix","heartbeat",{{}}]"#, ref = r#ref);
    ws.write_frame(Frame::text(WsPayload::Owned(beat.into_bytes())))
        .await
        .unwrap();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), ws.read_frame())
            .await
            .expect("a reply within 20 s")
            .expect("the socket is open");
        if frame.opcode == OpCode::Text {
            let reply: serde_json::Value = serde_json::from_slice(&frame.payload).unwrap();
            assert_eq!(reply[1], r#ref);
            assert_eq!(reply[4]["status"], "ok");
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_are_served_with_the_configured_certificate_and_alpn() {
    let _serial = SERIAL.lock().await;
    let pki = Pki::new("serve");
    let leaf = pki.issue(1);
    let (_endpoint, port) = start(pki.tls()).await;

    let mut stream = pki.connect(port).await;
    let (_, session) = stream.get_ref();
    assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        session.peer_certificates().map(|c| c[0].clone()),
        Some(leaf)
    );
    let answer = get(&mut stream, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut ws = wss(pki.connect(port).await, port).await;
    heartbeat(&mut ws, "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_for_new_handshakes_and_open_sockets_stay_up() {
    let _serial = SERIAL.lock().await;
    let pki = Pki::new("reload");
    let old = pki.issue(1);
    let (_endpoint, port) = start(pki.tls()).await;
    let mut open = wss(pki.connect(port).await, port).await;
    heartbeat(&mut open, "1").await;

    let new = pki.issue(2);
    assert_ne!(old, new);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The signal is handled by the endpoint's task: poll until a new handshake sees it.
    let mut seen = None;
    for _ in 0..200 {
        let stream = pki.connect(port).await;
        let cert = stream.get_ref().1.peer_certificates().map(|c| c[0].clone());
        if cert.as_ref() == Some(&new) {
            seen = cert;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        Some(new),
        "a new connection sees the new certificate (serial 2)"
    );
    // The socket opened before the reload is still up and served.
    heartbeat(&mut open, "2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_finishes_or_starts_with_garbage_is_closed() {
    let _serial = SERIAL.lock().await;
    let pki = Pki::new("timeout");
    pki.issue(1);
    let (endpoint, port) = start(pki.tls().handshake_timeout(Duration::from_millis(300))).await;

    // A slowloris: connects and sends nothing. It holds a connection slot until the
    // handshake timeout, then the server closes it.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(wait_until(|| endpoint.connection_count() == 1).await);
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf))
        .await
        .expect("closed within 20 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(wait_until(|| endpoint.connection_count() == 0).await);

    // Plain HTTP instead of a ClientHello: refused by rustls (an alert), then closed.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), plain.read_to_end(&mut answer))
        .await
        .expect("closed within 20 s");
    assert!(!answer.starts_with(b"HTTP/"), "no plain-text answer");
    assert!(wait_until(|| endpoint.connection_count() == 0).await);

    // And the endpoint still serves TLS.
    let mut stream = pki.connect(port).await;
    assert!(get(&mut stream, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
}

#[test]
fn bad_files_are_refused_with_the_file_and_the_reason() {
    let pki = Pki::new("bad");
    pki.issue(1);
    let cert = pki.dir.join("cert.pem");
    let key = pki.dir.join("key.pem");
    let missing = pki.dir.join("missing.pem");
    let error = Tls::from_pem_files(&missing, &key).unwrap_err();
    assert!(matches!(error, TlsError::Pem { .. }), "{error}");
    assert!(error.to_string().contains("missing.pem"), "{error}");
    // A key file given as the certificate: no certificate in it.
    let error = Tls::from_pem_files(&key, &key).unwrap_err();
    assert!(matches!(error, TlsError::NoCertificate(_)), "{error}");
    // A key that does not belong to the certificate.
    let other = pki.dir.join("other-key.pem");
    std::fs::write(&other, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let error = Tls::from_pem_files(&cert, &other).unwrap_err();
    assert!(matches!(error, TlsError::Key { .. }), "{error}");
    // A failed reload keeps the current certificate.
    let tls = pki.tls();
    std::fs::write(&key, "not a key").unwrap();
    assert!(tls.reload().is_err());
}
