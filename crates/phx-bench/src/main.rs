//! `phx-bench`: load scenarios against phx-rs, the bare floor server and the chat app,
//! with figures from /proc (server CPU time and RSS) and a report.
//!
//! `scripts/bench.sh` builds the release binaries and runs `phx-bench all`.

mod chat;
mod client;
mod connections;
mod fanout;
mod presence_view;
mod proc_stats;
mod report;
mod servers;
mod storm;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use report::Report;

#[derive(Parser)]
#[command(about = "Load generator and report for phx-rs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Directory for results.json, results.md and latency.svg.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Size {
    /// A few minutes on a 2-core machine.
    Small,
    /// The largest that fits a 20 000 open-file hard limit: 18 000 sockets, 10 000
    /// subscribers, a 10 000-client storm.
    Large,
    /// The acceptance figures: 50 000 sockets, 10 000 subscribers, a 10 000-client storm
    /// (needs an open-file limit above 50 000).
    Full,
}

#[derive(Subcommand)]
enum Command {
    /// Every scenario at a preset size.
    All {
        #[arg(long, value_enum, default_value = "small")]
        size: Size,
        /// PostgreSQL admin URL for the chat scenario (a database of its own is created).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        postgres: String,
        /// Floor/phx-rs fan-out pairs (the ratio reported is their median).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// N sockets joined to R rooms: memory per connection, connect+join rate.
    Connections {
        #[arg(long, default_value_t = 10_000)]
        n: usize,
        #[arg(long, default_value_t = 100)]
        rooms: usize,
    },
    /// S subscribers, P publishers × M messages, against the floor and phx-rs.
    Fanout {
        #[arg(long, default_value_t = 2_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 2)]
        publishers: usize,
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Floor/phx-rs pairs to run (the ratio reported is their median).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// N presence clients drop and reconnect at once.
    Storm {
        #[arg(long, default_value_t = 2_000)]
        n: usize,
    },
    /// U users in R chat rooms with PostgreSQL history.
    Chat {
        #[arg(long, default_value_t = 200)]
        users: usize,
        #[arg(long, default_value_t = 10)]
        rooms: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        postgres: String,
        /// Offered messages per second, all users together (default: closed loop, each
        /// user sending as soon as its previous message was acknowledged).
        #[arg(long)]
        rate: Option<f64>,
    },
}

const OURS_PATH: &str = "/ws/open/websocket?vsn=2.0.0";

/// Raises the open-file soft limit to what `need` asks (children, the servers, inherit
/// it). The hard limit can only be raised with CAP_SYS_RESOURCE; without it the error
/// says how far this machine goes.
fn raise_fd_limit(need: u64) -> anyhow::Result<()> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if need > hard {
        rlimit::Resource::NOFILE.set(need, need).with_context(|| {
            format!(
                "this scenario needs {need} open files per process (its sockets + 1 000) but the \
                 hard limit is {hard} and cannot be raised here (no CAP_SYS_RESOURCE): run at \
                 most {} sockets per scenario (`all --size large` fits a 20 000 limit)",
                hard.saturating_sub(1_000)
            )
        })?;
    } else if need > soft {
        rlimit::Resource::NOFILE.set(hard, hard)?;
    }
    Ok(())
}

/// Starts the floor or our server (idle timeout 1 h: the bench sends no heartbeats).
async fn start(floor: bool) -> anyhow::Result<(servers::Server, &'static str)> {
    if floor {
        Ok((servers::floor().await?, "/ws"))
    } else {
        Ok((servers::ours(3_600_000).await?, OURS_PATH))
    }
}

async fn run_connections(report: &mut Report, n: usize, rooms: usize) -> anyhow::Result<()> {
    for floor in [true, false] {
        let (server, path) = start(floor).await?;
        let r = connections::run(&server, n, rooms, path).await?;
        println!(
            "connections [{}]: {} sockets, {:.1} KiB per connection (RSS {:.1} → {:.1} MiB), {:.0} connect+join/s, server CPU {:.0} µs per connection, {} failed",
            r.server, r.connections, r.bytes_per_connection / 1024.0, r.rss_before_mib, r.rss_after_mib, r.connect_join_per_sec, r.server_cpu_us_per_connection, r.failed
        );
        report.connections.push(r);
        server.stop().await;
    }
    Ok(())
}

/// Fan-out against the floor and phx-rs back to back, `runs` times alternating (the
/// machine is shared, so one pair can be skewed by a neighbour); the ratio reported is
/// the median of the per-pair ratios.
async fn run_fanout(
    report: &mut Report,
    s: usize,
    p: usize,
    m: usize,
    runs: usize,
) -> anyhow::Result<()> {
    let mut ratios = Vec::new();
    for run in 1..=runs.max(1) {
        let mut pair = Vec::new();
        for floor in [true, false] {
            let (server, path) = start(floor).await?;
            let r = fanout::run(&server, run, s, p, m, path).await?;
            println!(
                "fanout [{}] run {run}: {} delivered in {:.2} s ({:.0}/s), latency p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms, server CPU {:.0} ms = {:.0} ns/delivered (generator CPU {:.0} ms)",
                r.server, r.delivered, r.seconds, r.delivered_per_sec, r.p50_ms, r.p99_ms, r.p999_ms, r.server_cpu_ms, r.server_cpu_ns_per_delivered, r.generator_cpu_ms
            );
            pair.push(r.server_cpu_ns_per_delivered);
            report.fanout.push(r);
            server.stop().await;
        }
        if let [floor, ours] = pair[..] {
            ratios.push(ours / floor.max(1.0));
        }
    }
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    if let Some(&median) = sorted.get(sorted.len() / 2) {
        let runs: Vec<String> = ratios.iter().map(|r| format!("{r:.2}×")).collect();
        println!(
            "fanout: server CPU per delivered message, phx-rs / floor = {median:.2}× (median; runs: {})",
            runs.join(", ")
        );
        report.fanout_cpu_ratio_vs_floor = Some(median);
    }
    report.fanout_cpu_ratios = ratios;
    Ok(())
}

async fn run_storm(report: &mut Report, n: usize) -> anyhow::Result<()> {
    let server = servers::ours(3_600_000).await?;
    let r = storm::run(&server, n, OURS_PATH).await?;
    println!(
        "storm: {} clients; first wave converged in {:.2} s; after dropping all: rejoined in {:.2} s, converged in {:.2} s (server CPU {:.2} s, generator CPU {:.2} s)",
        r.clients, r.initial_converged_s, r.rejoined_s, r.converged_s, r.server_cpu_s, r.generator_cpu_s
    );
    report.storm = Some(r);
    server.stop().await;
    Ok(())
}

async fn run_chat(
    report: &mut Report,
    users: usize,
    rooms: usize,
    seconds: u64,
    admin: &str,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    let db = format!("phx_bench_{}", std::process::id());
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .context("PostgreSQL is needed for the chat scenario (127.0.0.1:5432)")?;
    tokio::spawn(conn);
    // Separate statements: CREATE DATABASE cannot run in the implicit transaction of a batch.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let url = admin
        .rsplit_once('/')
        .map(|(p, _)| format!("{p}/{db}"))
        .context("admin URL")?;
    let result = async {
        let server = servers::spawn(
            "chat-app",
            "chat-app",
            &[],
            &[
                ("PORT", "0".into()),
                ("BIND", "127.0.0.1".into()),
                ("DATABASE_URL", url.clone()),
                ("LOG_LEVEL", "warn,chat_app=info".into()),
                // The bench is one client address driving many users as fast as acks
                // come back: the chat app's abuse limits are not what it measures.
                ("RATE_LIMIT", "0".into()),
                ("ROOM_CREATION_BURST", "1000".into()),
            ],
        )
        .await?;
        let r = chat::run(
            &server,
            users,
            rooms,
            Duration::from_secs(seconds),
            &url,
            rate,
        )
        .await;
        server.stop().await;
        r
    }
    .await;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await?;
    let r = result.map_err(|e| anyhow::anyhow!("{e:#}"))?;
    if let Some(rate) = r.offered_per_sec {
        print!("chat at {rate:.0}/s offered: ");
    }
    println!(
        "chat: {} users in {} rooms: {} stored in {:.0} s ({:.0}/s, {} rows), reply p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms, chat-app CPU {:.0} µs per message",
        r.users, r.rooms, r.stored, r.seconds, r.stored_per_sec, r.rows_in_database, r.p50_ms, r.p99_ms, r.p999_ms, r.server_cpu_us_per_message
    );
    report.chat = Some(r);
    Ok(())
}

fn write(report: &Report, out: &std::path::Path) -> anyhow::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let dir = out.join(stamp.to_string());
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(dir.join("results.md"), report.markdown())?;
    let series = report.latency_series()?;
    if !series.is_empty() {
        report::latency_svg(&dir.join("latency.svg"), &series)?;
    }
    Ok(dir)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut report = Report {
        machine: proc_stats::machine(),
        ..Report::default()
    };
    match cli.command {
        Command::All {
            size,
            postgres,
            runs,
        } => {
            let (n, s, storm_n, users) = match size {
                Size::Small => (10_000, 2_000, 2_000, 200),
                Size::Large => (18_000, 10_000, 10_000, 500),
                Size::Full => (50_000, 10_000, 10_000, 500),
            };
            report.size = match size {
                Size::Small => "small",
                Size::Large => "large",
                Size::Full => "full",
            }
            .into();
            raise_fd_limit(n as u64 + 1_000)?;
            run_connections(&mut report, n, n / 50).await?;
            run_fanout(&mut report, s, 2, 200, runs).await?;
            run_storm(&mut report, storm_n).await?;
            run_chat(&mut report, users, 10, 20, &postgres, None).await?;
        }
        Command::Connections { n, rooms } => {
            report.size = format!("connections n={n}");
            raise_fd_limit(n as u64 + 1_000)?;
            run_connections(&mut report, n, rooms).await?;
        }
        Command::Fanout {
            subscribers,
            publishers,
            messages,
            runs,
        } => {
            report.size = format!("fanout s={subscribers} p={publishers} m={messages}");
            raise_fd_limit(subscribers as u64 + 1_000)?;
            run_fanout(&mut report, subscribers, publishers, messages, runs).await?;
        }
        Command::Storm { n } => {
            report.size = format!("storm n={n}");
            raise_fd_limit(n as u64 + 1_000)?;
            run_storm(&mut report, n).await?;
        }
        Command::Chat {
            users,
            rooms,
            seconds,
            postgres,
            rate,
        } => {
            report.size = match rate {
                Some(rate) => format!("chat u={users} rate={rate}"),
                None => format!("chat u={users}"),
            };
            raise_fd_limit(users as u64 + 1_000)?;
            run_chat(&mut report, users, rooms, seconds, &postgres, rate).await?;
        }
    }
    let dir = write(&report, &cli.out)?;
    println!("\n{}", report.markdown());
    println!("results: {}", dir.display());
    Ok(())
}
