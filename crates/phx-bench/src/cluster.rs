//! `cluster`: what clustering costs, and how far three nodes go on one machine.
//!
//! 1. The fan-out with subscribers spread over three nodes joined through a private
//!    `redis-server` (publishers on node 1), next to one node doing the same work in the
//!    same run, alternating: server CPU per delivered message summed over the nodes and
//!    Redis, and the ratio of the two (the cost of clustering).
//! 2. `hold` sockets spread over three nodes, each node's share held by a load-generator
//!    process of its own (`phx-bench hold`: one process could not open them all under the
//!    20 000 open-file limit), memory per socket per node, then one broadcast to all of
//!    them and the time until the last socket has it.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::Semaphore;

use crate::client::{now_nanos, send_time, set_first_address, source_for, Conn};
use crate::fanout::{self, Shape};
use crate::proc_stats::rss_bytes;
use crate::servers::{self, Server};

const NODES: usize = 3;
const HOLD_TOPIC: &str = "custom:hold";

#[derive(Debug, Default, Serialize)]
pub struct Result {
    pub nodes: usize,
    /// One node, then the cluster, per run (the fan-out results of both).
    pub fanout: Vec<fanout::Result>,
    /// Cluster / single node server CPU per delivered message, per run.
    pub cpu_ratios: Vec<f64>,
    /// Median of `cpu_ratios`.
    pub cpu_ratio: Option<f64>,
    pub hold: Option<Hold>,
}

#[derive(Debug, Serialize)]
pub struct Hold {
    pub sockets: usize,
    pub failed: usize,
    /// Per node: sockets held, RSS growth per socket (bytes), RSS after (MiB).
    pub per_node: Vec<(usize, f64, f64)>,
    /// From the broadcast's POST on node 1 to the last socket's receipt.
    pub broadcast_ms: f64,
    pub received: usize,
}

/// A cluster of `NODES` conformance-server processes on one private Redis.
struct Cluster {
    redis: Child,
    nodes: Vec<Server>,
}

impl Cluster {
    async fn start() -> anyhow::Result<Self> {
        let (redis, port) = servers::redis().await?;
        let url = format!("redis://127.0.0.1:{port}");
        let mut nodes = Vec::new();
        for k in 1..=NODES {
            nodes.push(servers::node(&url, &format!("bench{k}")).await?);
        }
        Ok(Self { redis, nodes })
    }

    fn redis_pid(&self) -> u32 {
        self.redis.id().unwrap_or(0)
    }

    async fn stop(mut self) {
        for node in self.nodes {
            node.stop().await;
        }
        let _ = self.redis.kill().await;
    }
}

pub async fn run(
    runs: usize,
    shape: Shape,
    hold: Option<usize>,
    path: &str,
) -> anyhow::Result<Result> {
    let mut result = Result {
        nodes: NODES,
        ..Result::default()
    };
    for run in 1..=runs.max(1) {
        let single = servers::ours(3_600_000).await?;
        let one = fanout::run_spread(
            &[&single],
            &[],
            "one node",
            run,
            shape,
            path,
            &fanout::Publish::TestRoute,
        )
        .await;
        single.stop().await;
        let one = one?;
        print_fanout(&one, run);

        let cluster = Cluster::start().await?;
        let nodes: Vec<&Server> = cluster.nodes.iter().collect();
        let label = "3 nodes + Redis";
        let three = fanout::run_spread(
            &nodes,
            &[cluster.redis_pid()],
            label,
            run,
            shape,
            path,
            &fanout::Publish::TestRoute,
        )
        .await;
        cluster.stop().await;
        let three = three?;
        print_fanout(&three, run);

        let ratio = three.server_cpu_ns_per_delivered / one.server_cpu_ns_per_delivered.max(1.0);
        result.cpu_ratios.push(ratio);
        result.fanout.push(one);
        result.fanout.push(three);
    }
    let mut sorted = result.cpu_ratios.clone();
    sorted.sort_by(f64::total_cmp);
    result.cpu_ratio = sorted.get(sorted.len() / 2).copied();
    if let Some(median) = result.cpu_ratio {
        let runs: Vec<String> = result
            .cpu_ratios
            .iter()
            .map(|r| format!("{r:.2}×"))
            .collect();
        println!(
            "cluster: server CPU per delivered message, 3 nodes + Redis / one node = {median:.2}× (median; runs: {})",
            runs.join(", ")
        );
    }
    if let Some(n) = hold {
        let h = run_hold(n, path).await?;
        println!(
            "cluster hold: {} sockets on {NODES} nodes ({} failed); per node {}; one broadcast reached {} sockets in {:.0} ms",
            h.sockets,
            h.failed,
            h.per_node
                .iter()
                .map(|(s, b, rss)| format!("{s} sockets {:.1} KiB/socket RSS {rss:.0} MiB", b / 1024.0))
                .collect::<Vec<_>>()
                .join(", "),
            h.received,
            h.broadcast_ms
        );
        result.hold = Some(h);
    }
    Ok(result)
}

fn print_fanout(r: &fanout::Result, run: usize) {
    let each: Vec<String> = r
        .server_cpu_ms_by_process
        .iter()
        .map(|ms| format!("{ms:.0}"))
        .collect();
    println!(
        "cluster fanout [{}] run {run}: {} delivered in {:.2} s ({:.0}/s), latency p50 {:.2} ms p99 {:.2} ms, server CPU {:.0} ms (per process: {} ms) = {:.0} ns/delivered",
        r.server, r.delivered, r.seconds, r.delivered_per_sec, r.p50_ms, r.p99_ms, r.server_cpu_ms, each.join(" + "), r.server_cpu_ns_per_delivered
    );
}

/// A `phx-bench hold` child and the lines it prints.
struct Generator {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Generator {
    /// The next line starting with `word`, split after it (other lines are skipped).
    async fn expect(&mut self, word: &str, within: Duration) -> anyhow::Result<Vec<String>> {
        tokio::time::timeout(within, async {
            while let Some(line) = self.lines.next_line().await? {
                if let Some(rest) = line.strip_prefix(word) {
                    return Ok(rest.split_whitespace().map(str::to_owned).collect());
                }
            }
            bail!("the load generator exited before printing `{word}`")
        })
        .await
        .with_context(|| format!("no `{word}` from a load generator within {within:?}"))?
    }
}

fn number<T: std::str::FromStr>(fields: &[String], i: usize) -> anyhow::Result<T> {
    fields
        .get(i)
        .and_then(|f| f.parse().ok())
        .with_context(|| format!("unexpected load-generator line: {fields:?}"))
}

async fn run_hold(n: usize, path: &str) -> anyhow::Result<Hold> {
    let cluster = Cluster::start().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|node| rss_bytes(node.pid()))
        .collect::<anyhow::Result<_>>()?;
    let exe = std::env::current_exe()?;
    let mut generators = Vec::new();
    for (k, node) in cluster.nodes.iter().enumerate() {
        let share = n / NODES + usize::from(k < n % NODES);
        // Ten source addresses per generator: 10 000 sockets each at most.
        let first = 1_000 + k * 10;
        let mut child = Command::new(&exe)
            .args([
                "hold",
                "--addr",
                &node.addr.to_string(),
                "--n",
                &share.to_string(),
                "--first-address",
                &first.to_string(),
                "--path",
                path,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a load generator")?;
        let stdout = child.stdout.take().context("generator stdout")?;
        generators.push(Generator {
            child,
            lines: BufReader::new(stdout).lines(),
        });
    }
    let mut joined = Vec::new();
    let mut failed = 0;
    for g in &mut generators {
        let ready = g.expect("ready", Duration::from_secs(600)).await?;
        joined.push(number::<usize>(&ready, 0)?);
        failed += number::<usize>(&ready, 1)?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut per_node = Vec::new();
    for ((node, before), &held) in cluster.nodes.iter().zip(before).zip(&joined) {
        let after = rss_bytes(node.pid())?;
        per_node.push((
            held,
            after.saturating_sub(before) as f64 / held.max(1) as f64,
            after as f64 / 1_048_576.0,
        ));
    }
    let sent = now_nanos();
    fanout::publish(
        cluster.nodes[0].addr,
        HOLD_TOPIC,
        0,
        1,
        &fanout::Publish::TestRoute,
    )
    .await?;
    let (mut last, mut received) = (sent, 0);
    for g in &mut generators {
        let got = g.expect("received", Duration::from_secs(120)).await?;
        received += number::<usize>(&got, 0)?;
        last = last.max(number::<u64>(&got, 1)?);
    }
    for mut g in generators {
        let _ = g.child.kill().await;
    }
    cluster.stop().await;
    Ok(Hold {
        sockets: joined.iter().sum(),
        failed,
        per_node,
        broadcast_ms: last.saturating_sub(sent) as f64 / 1e6,
        received,
    })
}

/// `phx-bench hold`: opens `n` sockets to `addr`, joins them to the hold topic, prints
/// `ready <joined> <failed>`, then `received <count> <last arrival ns>` once every
/// joined socket has had a broadcast (or 60 s after the first arrival), and waits for
/// its standard input to close.
pub async fn hold(
    addr: std::net::SocketAddr,
    n: usize,
    first_address: usize,
    path: &str,
) -> anyhow::Result<()> {
    set_first_address(first_address);
    let gate = Arc::new(Semaphore::new(256));
    let received = Arc::new(AtomicUsize::new(0));
    let last_arrival = Arc::new(AtomicU64::new(0));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    for i in 0..n {
        let (gate, received, last_arrival, ready_tx) = (
            gate.clone(),
            received.clone(),
            last_arrival.clone(),
            ready_tx.clone(),
        );
        let path = path.to_owned();
        tokio::spawn(async move {
            let joined = async {
                let _permit = gate.acquire().await?;
                let mut conn = Conn::connect(addr, source_for(i), &path).await?;
                conn.join(HOLD_TOPIC, serde_json::json!({"action": "ok"}), |_| {})
                    .await?;
                anyhow::Ok(conn)
            };
            let Ok(mut conn) = joined.await else {
                let _ = ready_tx.send(false);
                return;
            };
            let _ = ready_tx.send(true);
            while let Ok(Some(text)) = conn.next_text().await {
                if send_time(&text).is_some() {
                    last_arrival.fetch_max(now_nanos(), Ordering::Relaxed);
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    drop(ready_tx);
    // Each socket's task reports once (and keeps its sender while it reads on).
    let (mut joined, mut failed) = (0, 0);
    while joined + failed < n {
        match ready_rx.recv().await {
            Some(true) => joined += 1,
            Some(false) => failed += 1,
            None => break,
        }
    }
    println!("ready {joined} {failed}");
    let mut first_seen: Option<Instant> = None;
    loop {
        let got = received.load(Ordering::Relaxed);
        if got > 0 && first_seen.is_none() {
            first_seen = Some(Instant::now());
        }
        let waited_out = first_seen.is_some_and(|t| t.elapsed() > Duration::from_secs(60));
        if got >= joined || waited_out {
            println!("received {got} {}", last_arrival.load(Ordering::Relaxed));
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Hold the sockets until the parent is done with the nodes.
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = stdin.next_line().await {}
    Ok(())
}
