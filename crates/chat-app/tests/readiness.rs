//! `/readyz` follows the store: a TCP proxy in front of PostgreSQL that the test closes
//! (existing connections cut, new ones refused at once) turns it 503 naming the store,
//! and reopening it turns it 200 again. Also: the chat metrics are served.

mod binary;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use binary::{command, get, page_dir, App};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards to PostgreSQL while open; closing it cuts every connection and drops new
/// ones on accept.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (accept_open, accept_cut) = (open.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !accept_open.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let mut cut = accept_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, open, cut }
    }

    fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Polls `/readyz` until it answers `status` (within 20 s); returns the body.
async fn wait_for_readyz(addr: &str, status: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (got, body) = get(addr, "/readyz").await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {got} ({body}), expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// Multi-threaded: the proxy runs while the test waits for the start line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_when_postgres_goes_and_200_when_it_returns() {
    let db = support::TestDb::new().await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let url = db
        .url()
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(url, db.url(), "the test database goes through the proxy");
    let mut cmd = command();
    cmd.env("STATIC_DIR", page_dir(true))
        .env("DATABASE_URL", url)
        .env("STORE_TIMEOUT_MS", "1000");
    let app = App::start(cmd);

    let body = wait_for_readyz(&app.addr, 200).await;
    assert!(body.contains("ready"), "{body}");
    // The pool gauges are refreshed every second: the migration's connection is open.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, metrics) = get(&app.addr, "/metrics").await;
        assert_eq!(status, 200);
        if metrics
            .lines()
            .any(|l| l.starts_with("chat_pg_pool_size ") && !l.ends_with(" 0"))
        {
            assert!(metrics.contains("chat_pg_pool_available"), "{metrics}");
            assert!(metrics.contains("chat_pg_pool_waiting"), "{metrics}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no chat_pg_pool_size > 0:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    proxy.close();
    let body = wait_for_readyz(&app.addr, 503).await;
    assert!(
        body.contains("\"store\""),
        "the body names the store: {body}"
    );
    assert_eq!(get(&app.addr, "/healthz").await.0, 200, "alive all along");

    proxy.reopen();
    wait_for_readyz(&app.addr, 200).await;
}
