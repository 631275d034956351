//! `fanout`: S subscribers in one room, P publishers sending M messages each through a
//! server-side broadcast endpoint (the conformance server's test route, or the server
//! API of phx-gateway); throughput, end-to-end latency, and server CPU time per
//! delivered message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};

use crate::client::{new_wave, now_nanos, send_time, source_for, Conn};
use crate::proc_stats::{cpu_time, own_cpu_time};
use crate::servers::Server;
use crate::syscalls::{self, Counting};

#[derive(Clone, Debug, Serialize)]
pub struct Result {
    pub server: String,
    /// Which of the alternating floor/phx-rs runs this was (1-based).
    pub run: usize,
    pub subscribers: usize,
    pub publishers: usize,
    pub messages_each: usize,
    pub expected: u64,
    pub delivered: u64,
    pub seconds: f64,
    pub delivered_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub server_cpu_ms: f64,
    /// The server CPU per process (the nodes in order, then the extra processes), ms.
    pub server_cpu_ms_by_process: Vec<f64>,
    pub server_cpu_ns_per_delivered: f64,
    /// The load generator's own CPU time over the same span (it shares the cores).
    pub generator_cpu_ms: f64,
    /// System calls per process over the same span (`PHX_BENCH_SYSCALLS=1`), in the
    /// order of `server_cpu_ms_by_process`.
    pub syscalls: Vec<syscalls::Counts>,
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
}

const TOPIC: &str = "custom:fanout";

pub async fn run(
    server: &Server,
    run: usize,
    subscribers: usize,
    publishers: usize,
    messages: usize,
    lockstep: bool,
    path: &str,
) -> anyhow::Result<Result> {
    let shape = Shape {
        subscribers,
        publishers,
        messages,
        lockstep,
    };
    run_spread(
        &[server],
        &[],
        server.name,
        run,
        shape,
        &[path],
        Post::First,
        &Publish::TestRoute,
    )
    .await
}

/// Where publishers post their broadcasts: either way a server-side broadcast, no
/// channel callback in the path.
#[derive(Clone, Debug)]
pub enum Publish {
    /// The conformance server's `POST /test/broadcast?topic=…&event=bench`, the body
    /// being the payload (docs/conformance.md, "Control routes").
    TestRoute,
    /// phx-server's server API, `POST /api/broadcast` with `{"topic", "event",
    /// "payload"}` and a bearer key (what phx-gateway serves to its backend).
    ServerApi { key: String },
}

impl Publish {
    /// Posts one broadcast of event `bench` with `payload` (a JSON object's text) to
    /// `topic` over a keep-alive connection; an error unless the server took it.
    pub async fn post(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        addr: std::net::SocketAddr,
        topic: &str,
        payload: String,
    ) -> anyhow::Result<()> {
        match self {
            Publish::TestRoute => post_broadcast(sender, addr, topic, payload).await,
            Publish::ServerApi { key } => {
                let body = format!(
                    r#"{{"topic":{},"event":"bench","payload":{payload}}}"#,
                    serde_json::Value::from(topic)
                );
                let req = hyper::Request::post("/api/broadcast")
                    .header("host", addr.to_string())
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let text = resp.into_body().collect().await?.to_bytes();
                anyhow::ensure!(
                    status.as_u16() == 200,
                    "/api/broadcast answered {status}: {}",
                    String::from_utf8_lossy(&text)
                );
                Ok(())
            }
        }
    }
}

/// Where the publishers post each broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Post {
    /// To the first server (which, in a cluster, passes it to the others).
    First,
    /// To every server, by publishers of its own (each server's publishers go at that
    /// server's pace): servers that are not clustered each deliver to their own
    /// subscribers.
    Each,
    /// To one server after the other, one publisher for all, in lockstep: servers run
    /// side by side through the same moments of a busy machine, each idle while the
    /// other delivers (see [`run_paired`]).
    Alternate,
}

/// How many subscribers, publishers and messages per publisher a fan-out run has, and
/// how the broadcasts are paced.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub subscribers: usize,
    pub publishers: usize,
    pub messages: usize,
    /// Each broadcast is posted once every subscriber has the previous one (the
    /// `publishers × messages` broadcasts in sequence): every delivery is a write of
    /// its own, so CPU per delivery does not depend on how many frames the writers
    /// happened to coalesce, which swings with the machine's load. Without it the
    /// publishers post as fast as the server answers (the saturation case).
    pub lockstep: bool,
}

/// The fan-out with subscriber `i` on `servers[i % servers.len()]` (at
/// `paths[i % paths.len()]`) and every publisher posting as `post` says; the server CPU
/// is summed over the servers and `extra_pids` (a cluster's engine, say), so a cluster
/// and one node doing the same work compare.
/// Publishers post through `via`.
// Each argument is one axis of a comparison the commands make; a struct would only
// rename them at every call.
#[allow(clippy::too_many_arguments)]
pub async fn run_spread(
    servers: &[&Server],
    extra_pids: &[u32],
    label: &str,
    run: usize,
    shape: Shape,
    paths: &[&str],
    post: Post,
    via: &Publish,
) -> anyhow::Result<Result> {
    let Shape {
        subscribers,
        publishers,
        messages,
        lockstep,
    } = shape;
    anyhow::ensure!(!servers.is_empty(), "no server to run against");
    let pids: Vec<u32> = servers
        .iter()
        .map(|s| s.pid())
        .chain(extra_pids.iter().copied())
        .collect();
    let cpu_each = |pids: &[u32]| -> anyhow::Result<Vec<Duration>> {
        pids.iter().map(|&pid| cpu_time(pid)).collect()
    };
    new_wave(subscribers);
    // Alternating, each broadcast reaches one server's share of the subscribers.
    let reached = match post {
        Post::Alternate => subscribers / servers.len(),
        Post::First | Post::Each => subscribers,
    };
    let expected = (reached * publishers * messages) as u64;
    let delivered = Arc::new(AtomicU64::new(0));
    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel::<Vec<u64>>();
    let gate = Arc::new(Semaphore::new(256));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Option<String>>();
    for i in 0..subscribers {
        let (gate, delivered, lat_tx, ready_tx) = (
            gate.clone(),
            delivered.clone(),
            lat_tx.clone(),
            ready_tx.clone(),
        );
        let addr = servers[i % servers.len()].addr;
        let path = paths[i % paths.len()].to_owned();
        tokio::spawn(async move {
            let conn = async {
                let _permit = gate.acquire().await?;
                let mut conn = Conn::connect(addr, source_for(i), &path).await?;
                conn.join(TOPIC, serde_json::json!({"action": "ok"}), |_| {})
                    .await?;
                anyhow::Ok(conn)
            };
            let mut conn = match conn.await {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = ready_tx.send(Some(format!("{e:#}")));
                    return;
                }
            };
            let _ = ready_tx.send(None);
            let mut batch = Vec::with_capacity(64);
            while let Ok(Some(text)) = conn.next_text().await {
                if let Some(t) = send_time(&text) {
                    batch.push(now_nanos().saturating_sub(t));
                    let total = delivered.fetch_add(1, Ordering::Relaxed) + 1;
                    if batch.len() == 64 {
                        let _ = lat_tx.send(std::mem::take(&mut batch));
                    }
                    if total >= expected {
                        break;
                    }
                }
            }
            let _ = lat_tx.send(batch);
        });
    }
    drop(lat_tx);
    drop(ready_tx);
    let (mut ready, mut first_error) = (0, None);
    for _ in 0..subscribers {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(None)) => ready += 1,
            Ok(Some(Some(e))) => {
                first_error.get_or_insert(e);
            }
            _ => break,
        }
    }
    anyhow::ensure!(
        ready == subscribers,
        "[{label}] only {ready}/{subscribers} subscribers joined (first error: {})",
        first_error.as_deref().unwrap_or("timeout")
    );

    let counting = Counting::start(&pids).await?;
    let cpu_before = cpu_each(&pids)?;
    let own_before = own_cpu_time()?;
    let started = Instant::now();
    let mut pubs = Vec::new();
    let targets = match post {
        Post::First => &servers[..1],
        Post::Each => servers,
        Post::Alternate => {
            anyhow::ensure!(
                subscribers % servers.len() == 0,
                "alternate posting needs the same subscribers on every server"
            );
            let addrs: Vec<std::net::SocketAddr> = servers.iter().map(|s| s.addr).collect();
            let via = via.clone();
            let (delivered, each) = (delivered.clone(), (subscribers / servers.len()) as u64);
            pubs.push(tokio::spawn(async move {
                publish_alternating(&addrs, TOPIC, publishers * messages, &via, |seq| {
                    delivered.load(Ordering::Relaxed) >= (seq as u64 + 1) * each
                })
                .await
            }));
            &servers[..0]
        }
    };
    for server in targets {
        let addr = server.addr;
        if lockstep {
            // Every subscriber gets each broadcast once, from whichever server it is on.
            let (delivered, all) = (delivered.clone(), subscribers as u64);
            let via = via.clone();
            pubs.push(tokio::spawn(async move {
                publish_lockstep(addr, TOPIC, publishers * messages, &via, |seq| {
                    delivered.load(Ordering::Relaxed) >= (seq as u64 + 1) * all
                })
                .await
            }));
            continue;
        }
        for p in 0..publishers {
            let via = via.clone();
            pubs.push(tokio::spawn(async move {
                publish(addr, TOPIC, p, messages, &via).await
            }));
        }
    }
    for p in pubs {
        p.await.context("publisher")??;
    }
    // Wait for the last deliveries; give up once nothing has arrived for 10 s (a server
    // that drops or disconnects slow subscribers never reaches `expected`).
    let (mut last, mut progress_at) = (0, Instant::now());
    loop {
        let now = delivered.load(Ordering::Relaxed);
        if now >= expected || progress_at.elapsed() > Duration::from_secs(10) {
            break;
        }
        if now != last {
            (last, progress_at) = (now, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let got = delivered.load(Ordering::Relaxed);
    let seconds = if got >= expected {
        started.elapsed()
    } else {
        progress_at.saturating_duration_since(started)
    }
    .as_secs_f64();
    let by_process: Vec<Duration> = cpu_each(&pids)?
        .into_iter()
        .zip(&cpu_before)
        .map(|(after, before)| after.saturating_sub(*before))
        .collect();
    let cpu: Duration = by_process.iter().sum();
    let own_cpu = own_cpu_time()?.saturating_sub(own_before);
    let syscalls = match counting {
        Some(counting) => counting.stop().await?,
        None => Vec::new(),
    };
    if got < expected {
        println!("fanout [{label}]: only {got} of {expected} messages delivered");
    }

    let mut histogram = Histogram::<u64>::new_with_bounds(1_000, 120_000_000_000, 3)?;
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(Some(batch)) = tokio::time::timeout(
        drain_deadline.saturating_duration_since(Instant::now()),
        lat_rx.recv(),
    )
    .await
    {
        for v in batch {
            histogram.saturating_record(v.max(1_000));
        }
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1e6;
    Ok(Result {
        server: label.to_owned(),
        run,
        subscribers,
        publishers,
        messages_each: messages,
        expected,
        delivered: got,
        seconds,
        delivered_per_sec: got as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: histogram.max() as f64 / 1e6,
        server_cpu_ms: cpu.as_secs_f64() * 1e3,
        server_cpu_ms_by_process: by_process.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
        server_cpu_ns_per_delivered: cpu.as_nanos() as f64 / got.max(1) as f64,
        generator_cpu_ms: own_cpu.as_secs_f64() * 1e3,
        syscalls,
        histogram: Some(histogram),
    })
}

/// Two servers side by side, each with `subscribers / 2` subscribers, broadcasts posted
/// to one then the other in lockstep: both go through the same moments of a busy
/// machine (a neighbour's build slows both alike), where runs one after the other each
/// get their own. Returns each server's figures: its own CPU time, half of the
/// deliveries (latency is not split: the histogram is left out).
pub async fn run_paired(
    servers: [(&Server, &str); 2],
    run: usize,
    shape: Shape,
) -> anyhow::Result<[Result; 2]> {
    let [(a, a_path), (b, b_path)] = servers;
    let label = format!("{} + {}", a.name, b.name);
    let shape = Shape {
        lockstep: true,
        ..shape
    };
    let both = run_spread(
        &[a, b],
        &[],
        &label,
        run,
        shape,
        &[a_path, b_path],
        Post::Alternate,
        &Publish::TestRoute,
    )
    .await?;
    let share = |k: usize, name: &str| {
        let cpu_ms = both.server_cpu_ms_by_process[k];
        let delivered = both.delivered / 2;
        Result {
            server: name.to_owned(),
            subscribers: both.subscribers / 2,
            expected: both.expected / 2,
            delivered,
            delivered_per_sec: both.delivered_per_sec / 2.0,
            server_cpu_ms: cpu_ms,
            server_cpu_ms_by_process: vec![cpu_ms],
            server_cpu_ns_per_delivered: cpu_ms * 1e6 / delivered.max(1) as f64,
            syscalls: both.syscalls.get(k).cloned().into_iter().collect(),
            histogram: None,
            ..both.clone()
        }
    };
    Ok([share(0, a.name), share(1, b.name)])
}

impl Result {
    /// What the servers' system calls were per delivered message (empty without
    /// `PHX_BENCH_SYSCALLS`): socket writes and deliveries per write (how many frames
    /// one write carries, summed over the server processes), reads, readiness waits
    /// and futex calls; then each process's writes and reads.
    pub fn syscalls_line(&self) -> String {
        if self.syscalls.is_empty() {
            return String::new();
        }
        let per = |n: u64| n as f64 / self.delivered.max(1) as f64;
        let total = |f: fn(&syscalls::Counts) -> u64| self.syscalls.iter().map(f).sum::<u64>();
        let writes = total(syscalls::Counts::writes);
        let each: Vec<String> = self
            .syscalls
            .iter()
            .map(|c| format!("{} writes/{} reads", c.writes(), c.reads()))
            .collect();
        format!(
            "per delivery: {:.3} writes ({:.1} deliveries per write), {:.3} reads, {:.3} epoll waits, {:.3} futex calls; per process: {}",
            per(writes),
            self.delivered as f64 / writes.max(1) as f64,
            per(total(syscalls::Counts::reads)),
            per(total(syscalls::Counts::polls)),
            per(total(syscalls::Counts::futexes)),
            each.join(", ")
        )
    }
}

/// One publisher: M sequential POSTs to `topic` on a keep-alive connection, each payload
/// carrying its send time, posted through `via`.
pub async fn publish(
    addr: std::net::SocketAddr,
    topic: &str,
    p: usize,
    messages: usize,
    via: &Publish,
) -> anyhow::Result<()> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    for seq in 0..messages {
        let body = format!(r#"{{"p":{p},"seq":{seq},"t":"{}"}}"#, now_nanos());
        via.post(&mut sender, addr, topic, body).await?;
    }
    Ok(())
}

/// `count` broadcasts posted to `addrs` in turn (broadcast `seq` to `addrs[seq % n]`),
/// each once `delivered(seq)` says its subscribers have the previous one (see
/// [`publish_lockstep`]).
async fn publish_alternating(
    addrs: &[std::net::SocketAddr],
    topic: &str,
    count: usize,
    via: &Publish,
    delivered: impl Fn(usize) -> bool,
) -> anyhow::Result<()> {
    let mut senders = Vec::new();
    for &addr in addrs {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        senders.push((addr, sender));
    }
    let n = senders.len();
    for seq in 0..count {
        let (addr, sender) = &mut senders[seq % n];
        let body = format!(r#"{{"p":0,"seq":{seq},"t":"{}"}}"#, now_nanos());
        via.post(sender, *addr, topic, body).await?;
        wait_for(|| delivered(seq), seq).await?;
    }
    Ok(())
}

/// Waits until `done`, looking every millisecond (tokio's timer resolution: the
/// generator shares the cores, so it must not spin); 30 s at most.
async fn wait_for(done: impl Fn() -> bool, seq: usize) -> anyhow::Result<()> {
    let posted = Instant::now();
    while !done() {
        anyhow::ensure!(
            posted.elapsed() < Duration::from_secs(30),
            "broadcast {seq} not delivered to every subscriber within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// `count` broadcasts posted to `addr` one after the other, each once `delivered(seq)`
/// says every subscriber has it.
async fn publish_lockstep(
    addr: std::net::SocketAddr,
    topic: &str,
    count: usize,
    via: &Publish,
    delivered: impl Fn(usize) -> bool,
) -> anyhow::Result<()> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    for seq in 0..count {
        let body = format!(r#"{{"p":0,"seq":{seq},"t":"{}"}}"#, now_nanos());
        via.post(&mut sender, addr, topic, body).await?;
        wait_for(|| delivered(seq), seq).await?;
    }
    Ok(())
}

/// One `POST /test/broadcast` of event `bench` on `topic` (the conformance server's
/// endpoint broadcast) over a keep-alive connection; an answer other than 204 is an error.
pub async fn post_broadcast(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: std::net::SocketAddr,
    topic: &str,
    body: String,
) -> anyhow::Result<()> {
    let req = hyper::Request::post(format!("/test/broadcast?topic={topic}&event=bench"))
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let resp = sender.send_request(req).await?;
    anyhow::ensure!(
        resp.status().as_u16() == 204,
        "broadcast answered {}",
        resp.status()
    );
    let _ = resp.into_body().collect().await;
    Ok(())
}
