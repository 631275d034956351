//! `cluster`: what clustering costs, and how far three nodes go on one machine.
//!
//! 1. The fan-out with subscribers spread over three nodes joined through a private
//!    `redis-server` (publishers on node 1), next to, in the same run, alternating: one
//!    node doing the same work, one node with a node's share of the subscribers, and
//!    three nodes that are not clustered, each broadcast posted to each of them by
//!    publishers of its own. Server
//!    CPU per delivered message summed over the processes, and the cluster's ratio to
//!    each: against one process doing it all, against one node of the cluster's size
//!    alone, and against the same three processes without Redis (what clustering
//!    itself costs, apart from running three processes on one machine).
//!    `PHX_BENCH_SYSCALLS=1` counts each process's system calls too (see
//!    [`crate::syscalls`]).
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
use crate::fanout::{self, Post, Shape};
use crate::proc_stats::rss_bytes;
use crate::servers::{self, Server};

const NODES: usize = 3;
const HOLD_TOPIC: &str = "custom:hold";

#[derive(Debug, Default, Serialize)]
pub struct Result {
    pub nodes: usize,
    /// Per run: one node with every subscriber, one node with a node's share of them
    /// (`subscribers / nodes`), then the cluster.
    pub fanout: Vec<fanout::Result>,
    /// Cluster / single node server CPU per delivered message, per run.
    pub cpu_ratios: Vec<f64>,
    /// Median of `cpu_ratios`.
    pub cpu_ratio: Option<f64>,
    /// Cluster / one node with the same subscribers per node, per run: what the
    /// cluster's nodes pay beyond what a node of their size pays alone.
    pub cpu_ratios_same_per_node: Vec<f64>,
    /// Median of `cpu_ratios_same_per_node`.
    pub cpu_ratio_same_per_node: Option<f64>,
    /// Cluster / the same three nodes unclustered (each broadcast posted to each by its
    /// own publishers), per
    /// run: what Redis and the nodes' work for it cost.
    pub cpu_ratios_unclustered: Vec<f64>,
    /// Median of `cpu_ratios_unclustered`.
    pub cpu_ratio_unclustered: Option<f64>,
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
    redis_port: u16,
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
        Ok(Self {
            redis,
            redis_port: port,
            nodes,
        })
    }

    fn redis_pid(&self) -> u32 {
        self.redis.id().unwrap_or(0)
    }

    /// What Redis did so far: PUBLISH commands, commands in all, and the read and write
    /// events it processed (a pipeline of commands read at once is one read event).
    async fn redis_stats(&self) -> anyhow::Result<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.redis_port.to_string(), "INFO", "all"])
            .output()
            .await
            .context("redis-cli")?;
        let info = String::from_utf8_lossy(&out.stdout);
        let field = |section: &str, key: &str| -> String {
            info.lines()
                .filter(|l| l.starts_with(section))
                .find_map(|l| {
                    l.split([':', ',']).find_map(|kv| {
                        kv.strip_prefix(key)
                            .and_then(|v| v.strip_prefix('='))
                            .map(str::to_owned)
                    })
                })
                .or_else(|| {
                    info.lines()
                        .find_map(|l| l.strip_prefix(&format!("{key}:")).map(str::to_owned))
                })
                .unwrap_or_else(|| "?".into())
                .trim()
                .to_owned()
        };
        Ok(format!(
            "PUBLISH calls {}, commands {}, read events {}, write events {}",
            field("cmdstat_publish", "calls"),
            field("total_commands_processed", "total_commands_processed"),
            field("total_reads_processed", "total_reads_processed"),
            field("total_writes_processed", "total_writes_processed"),
        ))
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
    let per_node = Shape {
        subscribers: shape.subscribers.div_ceil(NODES),
        ..shape
    };
    for run in 1..=runs.max(1) {
        let mut alone = Vec::new();
        for (label, shape) in [("one node", shape), ("one node, a node's share", per_node)] {
            let single = servers::ours(3_600_000).await?;
            let one = fanout::run_spread(
                &[&single],
                &[],
                label,
                run,
                shape,
                &[path],
                Post::First,
                &fanout::Publish::TestRoute,
            )
            .await;
            single.stop().await;
            let one = one?;
            print_fanout(&one, run);
            alone.push(one);
        }

        let mut apart = Vec::new();
        for _ in 0..NODES {
            apart.push(servers::ours(3_600_000).await?);
        }
        let nodes: Vec<&Server> = apart.iter().collect();
        let label = "3 nodes, not clustered";
        let unclustered = fanout::run_spread(
            &nodes,
            &[],
            label,
            run,
            shape,
            &[path],
            Post::Each,
            &fanout::Publish::TestRoute,
        )
        .await;
        for node in apart {
            node.stop().await;
        }
        let unclustered = unclustered?;
        print_fanout(&unclustered, run);

        let cluster = Cluster::start().await?;
        let nodes: Vec<&Server> = cluster.nodes.iter().collect();
        let label = "3 nodes + Redis";
        let redis = [cluster.redis_pid()];
        let three = fanout::run_spread(
            &nodes,
            &redis,
            label,
            run,
            shape,
            &[path],
            Post::First,
            &fanout::Publish::TestRoute,
        )
        .await;
        if let Ok(stats) = cluster.redis_stats().await {
            println!("cluster fanout [{label}] run {run}: Redis {stats}");
        }
        cluster.stop().await;
        let three = three?;
        print_fanout(&three, run);

        let [one, share] = <[fanout::Result; 2]>::try_from(alone)
            .map_err(|_| anyhow::anyhow!("two single-node runs"))?;
        let ratio = |alone: &fanout::Result| {
            three.server_cpu_ns_per_delivered / alone.server_cpu_ns_per_delivered.max(1.0)
        };
        result.cpu_ratios.push(ratio(&one));
        result.cpu_ratios_same_per_node.push(ratio(&share));
        result.cpu_ratios_unclustered.push(ratio(&unclustered));
        result.fanout.extend([one, share, unclustered, three]);
    }
    let median = |ratios: &[f64]| {
        let mut sorted = ratios.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    };
    result.cpu_ratio = median(&result.cpu_ratios);
    result.cpu_ratio_same_per_node = median(&result.cpu_ratios_same_per_node);
    result.cpu_ratio_unclustered = median(&result.cpu_ratios_unclustered);
    let runs = |ratios: &[f64]| {
        ratios
            .iter()
            .map(|r| format!("{r:.2}×"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let (Some(all), Some(share), Some(apart)) = (
        result.cpu_ratio,
        result.cpu_ratio_same_per_node,
        result.cpu_ratio_unclustered,
    ) {
        println!(
            "cluster: server CPU per delivered message, 3 nodes + Redis / one node = {all:.2}× (median; runs: {}); / one node with a node's share of the subscribers = {share:.2}× (runs: {}); / 3 nodes not clustered = {apart:.2}× (runs: {})",
            runs(&result.cpu_ratios),
            runs(&result.cpu_ratios_same_per_node),
            runs(&result.cpu_ratios_unclustered)
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
    if !r.syscalls.is_empty() {
        println!(
            "cluster fanout [{}] run {run}: {}",
            r.server,
            r.syscalls_line()
        );
    }
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
