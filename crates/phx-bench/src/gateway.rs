//! `gateway`: what phx-gateway costs against the same channels written in Rust, in one
//! run so the ratios compare like with like.
//!
//! - Round trips: joins (`room:*`, join → reply, then a leave) and events (`echo` in a
//!   joined `room:*`, push → reply) one after another on `clients` sockets, against
//!   conformance-server (the channels in-process) and against phx-gateway forwarding each
//!   join and event to the Node contract backend (`examples/gateway/node/server.js`):
//!   p50/p99 of each, and CPU per round trip read from /proc for the Rust server, the
//!   gateway process and the Node process separately (per thread from `schedstat`, in
//!   nanoseconds: `stat`'s 10 ms ticks are too coarse for 2 000 joins of 15 µs).
//! - Fan-out: `fanout`'s subscribers in `custom:fanout`, broadcasts posted to the
//!   conformance server's test route and to the gateway's server API (`POST
//!   /api/broadcast`: no hook in the path), alternating `runs` times: the server's CPU
//!   per delivered message and the gateway / phx-rs ratio (the median of the pairs).

use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::client::{new_wave, source_for, Conn};
use crate::fanout::{self, Publish, Shape};
use crate::proc_stats::CpuSnapshot;
use crate::servers::{self, Server};

/// The label of the gateway's figures (the Node backend's CPU is reported beside them).
pub const GATEWAY: &str = "phx-gateway";
/// The label of the Rust server's figures.
pub const RUST: &str = "phx-rs";

/// What a `gateway` run does.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Joins measured, and events measured, per server (over all clients).
    pub round_trips: usize,
    /// Sockets doing round trips at once, each one after another.
    pub clients: usize,
    pub fanout: Shape,
    /// phx-rs / gateway fan-out pairs.
    pub runs: usize,
}

/// Joins or events against one server.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrips {
    /// `phx-rs` or `phx-gateway` (with the Node backend behind it).
    pub server: String,
    /// `join` (join → reply; a leave follows each, counted in the CPU) or `event`
    /// (`echo` push → reply).
    pub kind: String,
    pub clients: usize,
    /// Round trips measured (after an unmeasured warm-up of each client).
    pub count: u64,
    pub seconds: f64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// CPU of the server process (conformance-server, or the gateway) per round trip.
    pub server_cpu_us: f64,
    /// CPU of the Node backend per round trip (the gateway only).
    pub backend_cpu_us: Option<f64>,
    /// The load generator's CPU per round trip (it shares the cores).
    pub generator_cpu_us: f64,
}

/// One fan-out run against one server.
#[derive(Debug, Clone, Serialize)]
pub struct Fanout {
    pub server: String,
    pub run: usize,
    pub subscribers: usize,
    pub expected: u64,
    pub delivered: u64,
    pub seconds: f64,
    pub delivered_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The server process's CPU (conformance-server, or the gateway alone).
    pub server_cpu_ms: f64,
    pub server_cpu_ns_per_delivered: f64,
    /// The Node backend's CPU over the same span (the gateway only; no hook is in the
    /// path, so about nothing).
    pub backend_cpu_ms: Option<f64>,
    pub generator_cpu_ms: f64,
}

/// A gateway / phx-rs ratio.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub name: String,
    pub value: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Result {
    pub round_trips: Vec<RoundTrips>,
    pub fanout: Vec<Fanout>,
    /// Server CPU per delivered message, gateway / phx-rs, per pair.
    pub fanout_cpu_ratios: Vec<f64>,
    /// Their median.
    pub fanout_cpu_ratio: Option<f64>,
    /// Gateway / phx-rs: round-trip latencies and CPU per round trip.
    pub ratios: Vec<Ratio>,
}

/// Runs the round trips on each server, then the fan-out pairs, printing as it goes.
pub async fn run(opts: Options, path: &str) -> anyhow::Result<Result> {
    let mut result = Result::default();
    let rust = servers::ours(3_600_000).await?;
    let r = round_trip_pair(&rust, None, RUST, opts, path).await;
    rust.stop().await;
    result.round_trips.extend(r?);
    let gw = servers::gateway().await?;
    let r = round_trip_pair(&gw.gateway, Some(&gw.backend), GATEWAY, opts, path).await;
    gw.stop().await;
    result.round_trips.extend(r?);
    result.ratios = ratios(&result.round_trips);
    for r in &result.ratios {
        println!("gateway: {} = {:.2}×", r.name, r.value);
    }

    for run in 1..=opts.runs.max(1) {
        // Alternate which goes first, so a neighbour's burst does not always land on
        // the same one.
        let order: [bool; 2] = if run % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        let mut pair = [0.0f64; 2];
        for via_gateway in order {
            let f = if via_gateway {
                let gw = servers::gateway().await?;
                let via = Publish::ServerApi {
                    key: gw.api_key.clone(),
                };
                let r = fanout::run_spread(
                    &[&gw.gateway],
                    &[gw.backend.pid()],
                    GATEWAY,
                    run,
                    opts.fanout,
                    &[path],
                    fanout::Post::First,
                    &via,
                )
                .await;
                gw.stop().await;
                r?
            } else {
                let rust = servers::ours(3_600_000).await?;
                let r = fanout::run_spread(
                    &[&rust],
                    &[],
                    RUST,
                    run,
                    opts.fanout,
                    &[path],
                    fanout::Post::First,
                    &Publish::TestRoute,
                )
                .await;
                rust.stop().await;
                r?
            };
            let f = Fanout::from(f);
            println!(
                "gateway fanout [{}] run {run}: {} delivered in {:.2} s ({:.0}/s), latency p50 {:.2} ms p99 {:.2} ms, server CPU {:.0} ms = {:.0} ns/delivered{} (generator CPU {:.0} ms)",
                f.server, f.delivered, f.seconds, f.delivered_per_sec, f.p50_ms, f.p99_ms,
                f.server_cpu_ms, f.server_cpu_ns_per_delivered,
                f.backend_cpu_ms.map_or(String::new(), |ms| format!(", Node backend CPU {ms:.0} ms")),
                f.generator_cpu_ms
            );
            pair[usize::from(via_gateway)] = f.server_cpu_ns_per_delivered;
            result.fanout.push(f);
        }
        result.fanout_cpu_ratios.push(pair[1] / pair[0].max(1.0));
    }
    result.fanout_cpu_ratio = median(result.fanout_cpu_ratios.clone());
    if let Some(m) = result.fanout_cpu_ratio {
        let runs: Vec<String> = result
            .fanout_cpu_ratios
            .iter()
            .map(|r| format!("{r:.2}×"))
            .collect();
        println!(
            "gateway fanout: server CPU per delivered message, phx-gateway / phx-rs = {m:.2}× (median; runs: {}; target ≤ 1.05×)",
            runs.join(", ")
        );
    }
    Ok(result)
}

impl From<fanout::Result> for Fanout {
    /// The first process is the server; a second one, the Node backend.
    fn from(f: fanout::Result) -> Self {
        let server_cpu_ms = f
            .server_cpu_ms_by_process
            .first()
            .copied()
            .unwrap_or(f.server_cpu_ms);
        Self {
            server_cpu_ns_per_delivered: server_cpu_ms * 1e6 / f.delivered.max(1) as f64,
            backend_cpu_ms: f.server_cpu_ms_by_process.get(1).copied(),
            server: f.server,
            run: f.run,
            subscribers: f.subscribers,
            expected: f.expected,
            delivered: f.delivered,
            seconds: f.seconds,
            delivered_per_sec: f.delivered_per_sec,
            p50_ms: f.p50_ms,
            p99_ms: f.p99_ms,
            server_cpu_ms,
            generator_cpu_ms: f.generator_cpu_ms,
        }
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Gateway / phx-rs for each latency and CPU figure both servers have.
pub fn ratios(round_trips: &[RoundTrips]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for kind in ["join", "event"] {
        let find = |server: &str| {
            round_trips
                .iter()
                .find(|r| r.server == server && r.kind == kind)
        };
        let (Some(rust), Some(gw)) = (find(RUST), find(GATEWAY)) else {
            continue;
        };
        let mut push = |name: String, gw: f64, rust: f64| {
            if rust > 0.0 {
                out.push(Ratio {
                    name,
                    value: gw / rust,
                });
            }
        };
        push(format!("{kind} round trip p50"), gw.p50_ms, rust.p50_ms);
        push(format!("{kind} round trip p99"), gw.p99_ms, rust.p99_ms);
        push(
            format!("server CPU per {kind} (the gateway alone)"),
            gw.server_cpu_us,
            rust.server_cpu_us,
        );
        push(
            format!("server CPU per {kind} (gateway + Node)"),
            gw.server_cpu_us + gw.backend_cpu_us.unwrap_or(0.0),
            rust.server_cpu_us,
        );
    }
    out
}

/// Joins, then events, against `server` (and `backend`, whose CPU is read beside it).
async fn round_trip_pair(
    server: &Server,
    backend: Option<&Server>,
    label: &str,
    opts: Options,
    path: &str,
) -> anyhow::Result<Vec<RoundTrips>> {
    let mut out = Vec::new();
    for kind in [Kind::Join, Kind::Event] {
        let r = round_trips(server, backend, label, kind, opts, path).await?;
        println!(
            "gateway {} [{}]: {} round trips on {} socket(s) in {:.2} s ({:.0}/s): p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms; server CPU {:.1} µs per {}{} (generator {:.1} µs)",
            r.kind, r.server, r.count, r.clients, r.seconds, r.per_sec, r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms,
            r.server_cpu_us, r.kind,
            r.backend_cpu_us.map_or(String::new(), |us| format!(", Node backend {us:.1} µs")),
            r.generator_cpu_us
        );
        out.push(r);
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Join,
    Event,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Join => "join",
            Kind::Event => "event",
        }
    }
}

/// `opts.round_trips` of `kind` over `opts.clients` sockets, each after a warm-up
/// (the backend's JIT, the gateway's pool of backend connections); CPU is read from the
/// end of every warm-up to the last reply.
async fn round_trips(
    server: &Server,
    backend: Option<&Server>,
    label: &str,
    kind: Kind,
    opts: Options,
    path: &str,
) -> anyhow::Result<RoundTrips> {
    let clients = opts.clients.max(1);
    let each = opts.round_trips.div_ceil(clients).max(1);
    let warmup = (each / 10).clamp(10, 200);
    new_wave(clients);
    let (warm_tx, mut warm_rx) = mpsc::unbounded_channel::<anyhow::Result<()>>();
    let (start_tx, start_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (addr, path) = (server.addr, path.to_owned());
        let (warm_tx, mut start_rx) = (warm_tx.clone(), start_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = match Conn::connect(addr, source_for(c), &path).await {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = warm_tx.send(Err(e));
                    return Ok(Vec::new());
                }
            };
            let topic = format!("room:gwbench{c}");
            let mut client = Client::new(&mut conn, kind, topic).await?;
            for k in 0..warmup {
                client.once(k).await?;
            }
            let _ = warm_tx.send(Ok(()));
            start_rx.changed().await?;
            let mut samples = Vec::with_capacity(each);
            for k in 0..each {
                samples.push(client.once(warmup + k).await?.as_nanos() as u64);
            }
            anyhow::Ok(samples)
        }));
    }
    drop(warm_tx);
    for _ in 0..clients {
        match tokio::time::timeout(Duration::from_secs(120), warm_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => return Err(e.context(format!("[{label}] a client"))),
            Ok(None) | Err(_) => {
                // A client failed during its warm-up: its task says why.
                for t in tasks {
                    t.await.context("client")??;
                }
                anyhow::bail!("[{label}] a client stopped before its warm-up ended");
            }
        }
    }
    let pids: Vec<u32> = std::iter::once(server.pid())
        .chain(backend.map(Server::pid))
        .collect();
    let own_pid = std::process::id();
    let cpu_before: Vec<CpuSnapshot> = pids
        .iter()
        .map(|&p| CpuSnapshot::take(p))
        .collect::<anyhow::Result<_>>()?;
    let own_before = CpuSnapshot::take(own_pid)?;
    let started = Instant::now();
    start_tx.send(true)?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1_000, 120_000_000_000, 3)?;
    let mut count = 0u64;
    for t in tasks {
        for v in t.await.context("client")?? {
            histogram.saturating_record(v.max(1_000));
            count += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu: Vec<Duration> = pids
        .iter()
        .zip(&cpu_before)
        .map(|(&p, before)| Ok(CpuSnapshot::take(p)?.since(before)))
        .collect::<anyhow::Result<_>>()?;
    let own = CpuSnapshot::take(own_pid)?.since(&own_before);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / count.max(1) as f64;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1e6;
    Ok(RoundTrips {
        server: label.to_owned(),
        kind: kind.name().to_owned(),
        clients,
        count,
        seconds,
        per_sec: count as f64 / seconds.max(1e-9),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: histogram.max() as f64 / 1e6,
        server_cpu_us: per(cpu[0]),
        backend_cpu_us: cpu.get(1).copied().map(per),
        generator_cpu_us: per(own),
    })
}

/// One socket doing one kind of round trip.
struct Client<'c> {
    conn: &'c mut Conn,
    kind: Kind,
    topic: String,
    /// The join ref of the joined channel (events).
    join_ref: Option<String>,
}

impl<'c> Client<'c> {
    /// For events, joins `topic` first.
    async fn new(conn: &'c mut Conn, kind: Kind, topic: String) -> anyhow::Result<Self> {
        let join_ref = match kind {
            Kind::Join => None,
            Kind::Event => Some(
                conn.join(&topic, serde_json::json!({"user": "bench"}), |_| {})
                    .await?,
            ),
        };
        Ok(Self {
            conn,
            kind,
            topic,
            join_ref,
        })
    }

    /// One round trip and how long it took: a join until its reply (then a leave and
    /// its reply, not timed), or an `echo` until its reply.
    async fn once(&mut self, k: usize) -> anyhow::Result<Duration> {
        let at = Instant::now();
        match self.kind {
            Kind::Join => {
                let r = self
                    .conn
                    .send(
                        None,
                        &self.topic,
                        "phx_join",
                        &serde_json::json!({"user": "bench"}),
                    )
                    .await?;
                reply(self.conn, &r, &self.topic).await?;
                let took = at.elapsed();
                let leave = self
                    .conn
                    .send(Some(&r), &self.topic, "phx_leave", &serde_json::json!({}))
                    .await?;
                reply(self.conn, &leave, &self.topic).await?;
                Ok(took)
            }
            Kind::Event => {
                let r = self
                    .conn
                    .send(
                        self.join_ref.as_deref(),
                        &self.topic,
                        "echo",
                        &serde_json::json!({"seq": k}),
                    )
                    .await?;
                reply(self.conn, &r, &self.topic).await?;
                Ok(at.elapsed())
            }
        }
    }
}

/// Reads frames until the `phx_reply` to `r` (pushes and broadcasts before it are
/// skipped); an error unless it is ok.
async fn reply(conn: &mut Conn, r: &str, topic: &str) -> anyhow::Result<()> {
    let needle = format!(",\"{r}\",");
    loop {
        let Some(text) = conn.next_text().await? else {
            anyhow::bail!("closed while waiting for the reply to {r} on {topic}")
        };
        let is_reply = contains(&text, needle.as_bytes()) && contains(&text, b"\"phx_reply\"");
        if is_reply {
            anyhow::ensure!(
                contains(&text, b"\"status\":\"ok\""),
                "{topic}: {}",
                String::from_utf8_lossy(&text)
            );
            return Ok(());
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trips(server: &str, kind: &str, p50: f64, cpu: f64, backend: Option<f64>) -> RoundTrips {
        RoundTrips {
            server: server.into(),
            kind: kind.into(),
            clients: 1,
            count: 100,
            seconds: 1.0,
            per_sec: 100.0,
            p50_ms: p50,
            p99_ms: p50 * 2.0,
            p999_ms: p50 * 3.0,
            max_ms: p50 * 4.0,
            server_cpu_us: cpu,
            backend_cpu_us: backend,
            generator_cpu_us: 1.0,
        }
    }

    #[test]
    fn ratios_are_gateway_over_phx_rs_per_kind() {
        let r = ratios(&[
            trips(RUST, "join", 0.1, 20.0, None),
            trips(RUST, "event", 0.05, 10.0, None),
            trips(GATEWAY, "join", 0.4, 50.0, Some(100.0)),
            trips(GATEWAY, "event", 0.3, 30.0, Some(60.0)),
        ]);
        let get = |name: &str| {
            r.iter()
                .find(|r| r.name == name)
                .unwrap_or_else(|| panic!("no {name} in {r:?}"))
                .value
        };
        assert!((get("join round trip p50") - 4.0).abs() < 1e-9);
        assert!((get("event round trip p99") - 6.0).abs() < 1e-9);
        assert!((get("server CPU per event (the gateway alone)") - 3.0).abs() < 1e-9);
        assert!((get("server CPU per event (gateway + Node)") - 9.0).abs() < 1e-9);
        // A kind one server lacks has no ratio.
        assert_eq!(ratios(&[trips(RUST, "join", 0.1, 20.0, None)]).len(), 0);
    }

    #[test]
    fn a_fanout_result_splits_the_server_from_the_backend() {
        let f = fanout::Result {
            server: GATEWAY.into(),
            run: 1,
            subscribers: 10,
            publishers: 1,
            messages_each: 100,
            expected: 1_000,
            delivered: 1_000,
            seconds: 1.0,
            delivered_per_sec: 1_000.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            p999_ms: 3.0,
            max_ms: 4.0,
            server_cpu_ms: 12.0,
            server_cpu_ms_by_process: vec![10.0, 2.0],
            server_cpu_ns_per_delivered: 12_000.0,
            generator_cpu_ms: 5.0,
            syscalls: Vec::new(),
            histogram: None,
        };
        let g = Fanout::from(f);
        assert_eq!(g.server_cpu_ms, 10.0);
        assert_eq!(g.backend_cpu_ms, Some(2.0));
        assert!((g.server_cpu_ns_per_delivered - 10_000.0).abs() < 1e-9);
    }
}
