//! A SIGTERM drains the server like Phoenix's drainer: readiness turns false first, then
//! every socket gets 1012 in batches, and the process exits 0.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fastwebsockets::OpCode;
use http_body_util::Empty;
use hyper::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SOCKETS: usize = 2_000;
const BATCH: usize = 500;
const INTERVAL: Duration = Duration::from_millis(400);

struct Executor;

impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for Executor {
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// Opens a socket and waits for its close frame: (code, when).
async fn client(port: u16) -> tokio::task::JoinHandle<Option<(u16, Instant)>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = Request::builder()
        .uri(format!("http://127.0.0.1:{port}/ws/websocket?vsn=2.0.0"))
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
    let (mut ws, _) = fastwebsockets::handshake::client(&Executor, req, stream)
        .await
        .expect("handshake");
    ws.set_auto_close(false);
    tokio::spawn(async move {
        loop {
            let frame = ws.read_frame().await.ok()?;
            if frame.opcode == OpCode::Close {
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                return Some((code, Instant::now()));
            }
        }
    })
}

/// Polls `/readyz` on one kept-alive connection (a new one would be refused once the
/// server stops accepting); returns when the first 503 came, if it came.
async fn watch_readiness(mut stream: TcpStream) -> Option<Instant> {
    let mut buf = vec![0u8; 4096];
    loop {
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n].starts_with(b"HTTP/1.1 503") {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_socket_with_1012_in_batches_after_readiness_goes_false() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_conformance-server"))
        .args([
            "--port",
            "0",
            "--drain-batch",
            &BATCH.to_string(),
            "--drain-interval-ms",
            &INTERVAL.as_millis().to_string(),
        ])
        // The endpoint logs what the drain did (`closed`, `batches`) at info.
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("conformance-server runs");
    let stderr = BufReader::new(server.stderr.take().unwrap());
    let log = std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .inspect(|line| eprintln!("{line}"))
            .collect::<Vec<String>>()
    });
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a listening line, got {line:?}"));

    let readiness = tokio::spawn(watch_readiness(
        TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
    ));
    let mut clients = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        clients.push(client(port).await);
    }

    let sent = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let mut closes = Vec::with_capacity(SOCKETS);
    for handle in clients {
        let closed = tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .expect("closed within the drain budget")
            .unwrap();
        closes.push(closed.expect("a close frame, not a dropped connection"));
    }
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the process exits 0: {status:?}");

    assert!(closes.iter().all(|(code, _)| *code == 1012));
    let mut times: Vec<Instant> = closes.iter().map(|(_, at)| *at).collect();
    times.sort();
    let first_close = times[0];
    let not_ready = readiness
        .await
        .unwrap()
        .expect("readiness answered 503 during the drain");
    assert!(
        not_ready < first_close,
        "readiness went false before any socket closed"
    );

    // Batches, told by the server: every socket in batches of BATCH, none closed at once
    // by the budget.
    let log = log.join().unwrap();
    let stopped = log
        .iter()
        .find(|l| l.contains("endpoint stopped"))
        .unwrap_or_else(|| panic!("the endpoint logs how it stopped: {log:#?}"));
    for field in [
        format!("closed={SOCKETS}"),
        format!("batches={}", SOCKETS / BATCH),
        "closed_at_once=0".to_owned(),
    ] {
        assert!(stopped.contains(&field), "{field} in {stopped}");
    }
    // And paced, seen from the clients: batch k goes out no earlier than k intervals after
    // the signal, so before that at most (k - 1) batches can have arrived. (Arrival times
    // only lag behind sending on a busy machine, never lead, so this cannot fail at random
    // the way grouping arrivals by their gaps did.)
    for k in 1..=SOCKETS / BATCH {
        let by = sent + INTERVAL * k as u32;
        let arrived = times.iter().filter(|at| **at < by).count();
        assert!(
            arrived <= (k - 1) * BATCH,
            "{arrived} closes arrived within {k} intervals of SIGTERM: not paced by the interval"
        );
    }
    println!(
        "drain: first close {:?} after SIGTERM, last {:?}",
        first_close - sent,
        times[times.len() - 1] - sent
    );
}
