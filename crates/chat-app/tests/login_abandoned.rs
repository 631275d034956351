//! Logins abandoned by their clients while the password hash runs: the hash keeps its
//! permit until it ends, so no more hashes than permits ever run at once, and the
//! process's threads and memory stay bounded (read from /proc: this file holds one test,
//! so nothing else runs in its process).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_app::accounts::api::{AccountsHttp, ApiLimits, MAX_HASHING};
use chat_app::accounts::session::Sessions;
use chat_app::accounts::{AccountStore, MemoryAccounts};
use chat_app::connect::SessionConnect;
use chat_app::limit::Rate;
use chat_app::web::Web;
use phx_server::{Endpoint, SocketConfig};
use tokio::io::AsyncWriteExt;

const SECRET: &[u8] = b"a test secret_key_base that is at least 64 bytes long, for tokens!";

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// (current, peak) resident memory in MiB.
fn rss_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap()
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Sends a login and closes the connection after `after`, answered or not.
async fn abandoned_login(addr: SocketAddr, from: IpAddr, n: usize, after: Duration) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let Ok(mut stream) = socket.connect(addr).await else {
        return;
    };
    let body = format!(r#"{{"username":"nobody{n}","password":"correct horse battery"}}"#);
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(request.as_bytes()).await;
    tokio::time::sleep(after).await;
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_logins_never_run_more_hashes_than_permits() {
    let open = Rate::new(1_000_000, Duration::from_millis(1));
    let accounts: Arc<dyn AccountStore> = Arc::new(MemoryAccounts::new());
    let sessions = Sessions::new(SECRET, accounts);
    let http = AccountsHttp::with_limits(
        sessions.clone(),
        Web::new("/nonexistent"),
        ApiLimits {
            login_per_address: open,
            login_per_username: open,
            ..ApiLimits::default()
        },
    );
    let queue = http.hash_queue().clone();
    let endpoint = Endpoint::builder()
        .socket("/socket", SocketConfig::new(SessionConnect::new(sessions)))
        .http(http)
        .secret_key_base(SECRET.to_vec())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { endpoint.serve(listener).await });

    let base_threads = threads();
    let (base_rss, _) = rss_mib();
    // 400 logins from 40 addresses, 10 started every 25 ms, each abandoned 300 ms later:
    // always some abandoned in the middle of their hash.
    let most_threads = Arc::new(AtomicUsize::new(base_threads));
    let sampler = {
        let most = most_threads.clone();
        tokio::spawn(async move {
            loop {
                most.fetch_max(threads(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut clients = Vec::new();
    for n in 0..400usize {
        let from = IpAddr::V4(Ipv4Addr::new(127, 78, 0, 1 + (n % 40) as u8));
        clients.push(tokio::spawn(abandoned_login(
            addr,
            from,
            n,
            Duration::from_millis(300),
        )));
        if n % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    for client in clients {
        client.await.unwrap();
    }
    // Every hash started ends (the queue's waiters left with their clients).
    let deadline = Instant::now() + Duration::from_secs(120);
    while queue.running() > 0 {
        assert!(
            Instant::now() < deadline,
            "hashes still running after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sampler.abort();
    let most_threads = most_threads.load(Ordering::Relaxed).max(threads());
    let (rss, peak_rss) = rss_mib();
    println!(
        "peak hashes {} (permits {MAX_HASHING}); threads {base_threads} → peak {most_threads}; \
         RSS {base_rss} MiB → {rss} MiB now, {peak_rss} MiB peak",
        queue.peak()
    );
    assert!(
        queue.peak() <= MAX_HASHING,
        "{} hashes at once",
        queue.peak()
    );
    assert!(queue.peak() >= 1, "no hash ran: the test tested nothing");
    // Nobody waits any more: every Argon2 work area was freed.
    assert_eq!(queue.memory_areas(), 0);
    // Blocking threads: the hashing ones, plus one or two that a finishing hash's
    // successor may start before the finished thread is idle again.
    assert!(
        most_threads <= base_threads + 2 * MAX_HASHING + 4,
        "threads {base_threads} → {most_threads}"
    );
    // 19 MiB per hash; generous slack for the allocator and the 400 connections.
    assert!(
        peak_rss <= base_rss + (MAX_HASHING as u64) * 19 * 2 + 150,
        "RSS {base_rss} MiB → peak {peak_rss} MiB"
    );
}
