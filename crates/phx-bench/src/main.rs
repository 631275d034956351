//! `phx-bench`: load scenarios against phx-rs, the bare floor server and the chat app,
//! with figures from /proc (server CPU time and RSS) and a report.
//!
//! `scripts/bench.sh` builds the release binaries and runs `phx-bench all`.

mod chat;
mod client;
mod cluster;
mod compare;
mod connections;
mod fanout;
mod gateway;
mod latency;
mod presence_view;
mod proc_stats;
mod report;
mod servers;
mod storm;
mod syscalls;

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
    #[arg(long, default_value = "bench-results", global = true)]
    out: PathBuf,
    /// An earlier results.json (or its directory) to compare with; by default the newest
    /// one under `--out` of the same size.
    #[arg(long, global = true)]
    compare: Option<PathBuf>,
    /// Mark a figure worse when it moved the bad way by more than this many %.
    #[arg(long, default_value_t = 10.0, global = true)]
    threshold: f64,
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
        /// Post each broadcast once every subscriber has the previous one: one write
        /// per delivery, so the figures do not swing with how many frames the writers
        /// happened to coalesce.
        #[arg(long)]
        lockstep: bool,
        /// The floor and phx-rs side by side in each run, half the subscribers on each,
        /// broadcasts to one then the other in lockstep: both live through the same
        /// moments of a busy machine (the steadiest comparison there).
        #[arg(long)]
        paired: bool,
    },
    /// N presence clients drop and reconnect at once.
    Storm {
        #[arg(long, default_value_t = 2_000)]
        n: usize,
    },
    /// Fan-out over 3 nodes on a private Redis next to one node, one node with a node's
    /// share of the subscribers, and the 3 nodes unclustered (the cost of clustering),
    /// then `hold` sockets over the 3 nodes and one broadcast to all.
    /// `PHX_BENCH_SYSCALLS=1` also counts the processes' system calls (needs `perf`).
    Cluster {
        #[arg(long, default_value_t = 3_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 2)]
        publishers: usize,
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// One node / cluster pairs (the ratio reported is their median).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Sockets held over the 3 nodes (0: skip); 51 000 keeps each process under a
        /// 20 000 open-file limit.
        #[arg(long, default_value_t = 0)]
        hold: usize,
        /// Each broadcast once every subscriber has the previous one (see `fanout`).
        #[arg(long)]
        lockstep: bool,
    },
    /// Internal: one load-generator process of `cluster --hold` (holds `n` sockets).
    #[command(hide = true)]
    Hold {
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long)]
        n: usize,
        #[arg(long = "first-address")]
        first_address: usize,
        #[arg(long)]
        path: String,
    },
    /// Latency at a fixed offered rate (open loop): `topic`, S subscribers in one topic ×
    /// R server broadcasts/s (phx-rs and the floor); `rooms`, ROOMS × PER_ROOM subscribers
    /// each pushing ROOM_RATE messages/s into its room (phx-rs).
    Latency {
        /// `topic`, `rooms` or `both`.
        #[arg(long, default_value = "both")]
        shape: String,
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        /// Broadcasts per second in the topic shape.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        #[arg(long, default_value_t = 100)]
        per_room: usize,
        /// Messages per second each room member pushes.
        #[arg(long, default_value_t = 1.0)]
        room_rate: f64,
        /// What members push: `new_msg` (to all, through the room's `handle_out`
        /// intercept) or `broadcast_from` (to the others, not intercepted).
        #[arg(long, default_value = "new_msg")]
        room_event: String,
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Runs of each shape (the medians are reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Skip the floor in the topic shape.
        #[arg(long)]
        no_floor: bool,
    },
    /// phx-gateway with the Node contract backend against the same channels in Rust
    /// (conformance-server), in one run: join and event round trips (p50/p99, CPU per
    /// round trip of the gateway and of Node apart), then fan-out through the gateway's
    /// server API against phx-rs's (CPU per delivered message, the ratio).
    Gateway {
        /// Joins measured, and events measured, per server.
        #[arg(long, default_value_t = 2_000)]
        round_trips: usize,
        /// Sockets doing round trips at once (each one round trip after another).
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[arg(long, default_value_t = 2_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 2)]
        publishers: usize,
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// phx-rs / gateway fan-out pairs (the ratio reported is their median).
        #[arg(long, default_value_t = 5)]
        runs: usize,
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
    shape: fanout::Shape,
    runs: usize,
    paired: bool,
) -> anyhow::Result<()> {
    let fanout::Shape {
        subscribers: s,
        publishers: p,
        messages: m,
        lockstep,
    } = shape;
    let print = |r: &fanout::Result, run: usize| {
        println!(
            "fanout [{}] run {run}: {} delivered in {:.2} s ({:.0}/s), latency p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms, server CPU {:.0} ms = {:.0} ns/delivered (generator CPU {:.0} ms)",
            r.server, r.delivered, r.seconds, r.delivered_per_sec, r.p50_ms, r.p99_ms, r.p999_ms, r.server_cpu_ms, r.server_cpu_ns_per_delivered, r.generator_cpu_ms
        );
        if !r.syscalls.is_empty() {
            println!("fanout [{}] run {run}: {}", r.server, r.syscalls_line());
        }
    };
    let mut ratios = Vec::new();
    for run in 1..=runs.max(1) {
        let mut pair = Vec::new();
        if paired {
            let (floor, floor_path) = start(true).await?;
            let (ours, ours_path) = start(false).await?;
            let both =
                fanout::run_paired([(&floor, floor_path), (&ours, ours_path)], run, shape).await;
            floor.stop().await;
            ours.stop().await;
            for r in both? {
                print(&r, run);
                pair.push(r.server_cpu_ns_per_delivered);
                report.fanout.push(r);
            }
        }
        for floor in [true, false].into_iter().filter(|_| !paired) {
            let (server, path) = start(floor).await?;
            let r = fanout::run(&server, run, s, p, m, lockstep, path).await?;
            print(&r, run);
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
        let spread = report::spread(&ratios);
        println!(
            "fanout: server CPU per delivered message, phx-rs / floor = {median:.2}× (median; runs: {}; pair-to-pair spread {:.0} % of the median)",
            runs.join(", "),
            spread * 100.0
        );
        report.fanout_cpu_ratio_vs_floor = Some(median);
        report.fanout_cpu_ratio_spread = Some(spread);
    }
    report.fanout_cpu_ratios = ratios;
    Ok(())
}

async fn run_storm(report: &mut Report, n: usize) -> anyhow::Result<()> {
    let server = servers::ours(3_600_000).await?;
    let r = storm::run(&server, n, OURS_PATH).await?;
    println!(
        "storm: {} clients; first wave converged in {:.2} s; after dropping all: rejoined in {:.2} s, every presence_state received in {:.2} s (server CPU {:.2} s to there), every list converged in {:.2} s (server CPU {:.2} s, generator CPU {:.2} s)",
        r.clients, r.initial_converged_s, r.rejoined_s, r.states_written_s, r.server_cpu_to_states_s, r.converged_s, r.server_cpu_s, r.generator_cpu_s
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
    let settings = proc_stats::PostgresSettings::read(&client).await?;
    println!("chat: storing into {settings}");
    report.postgres = Some(settings);
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
    if let Some(postgres) = r.postgres_cpu_us_per_message {
        let all = r.server_cpu_us_per_message + postgres + r.generator_cpu_us_per_message;
        let cores = report.machine.cores.max(1) as f64;
        println!(
            "chat: CPU per stored message: chat app {:.0} µs + PostgreSQL {postgres:.0} µs + load generator {:.0} µs = {all:.0} µs: {cores} cores store at most {:.0}/s this way",
            r.server_cpu_us_per_message,
            r.generator_cpu_us_per_message,
            cores * 1e6 / all.max(1.0)
        );
    }
    report.chat = Some(r);
    Ok(())
}

/// Writes the results under `<date>-<commit>-<scenario>` and compares them with an
/// earlier run (`against`, or the newest of the same size under `out`).
fn write(
    report: &Report,
    out: &std::path::Path,
    scenario: &str,
    against: Option<&std::path::Path>,
    threshold: f64,
) -> anyhow::Result<PathBuf> {
    let dir = compare::result_dir(out, &report.date, &report.commit, scenario);
    std::fs::create_dir_all(&dir)?;
    let previous = match against {
        Some(p) if p.is_dir() => Some(p.join("results.json")),
        Some(p) => Some(p.to_owned()),
        None => compare::previous(out, &report.size, &report.machine, &dir),
    };
    if let Some(previous) = previous {
        let old: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&previous)
                .with_context(|| format!("reading {}", previous.display()))?,
        )
        .with_context(|| format!("parsing {}", previous.display()))?;
        let new = serde_json::to_value(report)?;
        let changes = compare::compare(&old, &new, threshold);
        let md = compare::markdown(&changes, &previous.display().to_string(), threshold);
        println!("\n{md}");
        std::fs::write(dir.join("comparison.md"), md)?;
    } else {
        println!(
            "\nno earlier results of size {:?} from this kind of machine ({}, {} cores) under {} to compare with",
            report.size,
            report.machine.cpu_model,
            report.machine.cores,
            out.display()
        );
    }
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
    if let Command::Hold {
        addr,
        n,
        first_address,
        path,
    } = &cli.command
    {
        raise_fd_limit(*n as u64 + 1_000)?;
        return cluster::hold(*addr, *n, *first_address, path).await;
    }
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut report = Report {
        machine: proc_stats::Machine::this(),
        date: compare::date(unix),
        commit: compare::commit(),
        ..Report::default()
    };
    println!("phx-bench on {}", report.machine);
    let scenario = match &cli.command {
        Command::All { size, .. } => match size {
            Size::Small => "small",
            Size::Large => "large",
            Size::Full => "full",
        },
        Command::Connections { .. } => "connections",
        Command::Fanout { .. } => "fanout",
        Command::Storm { .. } => "storm",
        Command::Cluster { .. } => "cluster",
        Command::Hold { .. } => "hold",
        Command::Latency { .. } => "latency",
        Command::Chat { .. } => "chat",
        Command::Gateway { .. } => "gateway",
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
            let shape = fanout::Shape {
                subscribers: s,
                publishers: 2,
                messages: 200,
                lockstep: false,
            };
            run_fanout(&mut report, shape, runs, false).await?;
            run_storm(&mut report, storm_n).await?;
            run_chat(&mut report, users, 10, 20, &postgres, None).await?;
            // Latency at a fixed offered load: one topic (vs the floor), then rooms.
            let (subscribers, rooms, per_room, seconds) = match size {
                Size::Small => (2_000, 20, 20, 10.0),
                Size::Large | Size::Full => (10_000, 100, 20, 20.0),
            };
            let opts = latency::Options {
                topic: Some(latency::Shape::Topic {
                    subscribers,
                    rate: 10.0,
                }),
                rooms: Some(latency::Shape::Rooms {
                    rooms,
                    per_room,
                    rate: 1.0,
                    event: "new_msg",
                }),
                seconds,
                runs: 1,
                floor: true,
            };
            report.latency = latency::run_all(opts, OURS_PATH).await?;
            report.latency_medians = latency::medians(&report.latency);
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
            lockstep,
            paired,
        } => {
            report.size = format!("fanout s={subscribers} p={publishers} m={messages}");
            if paired {
                report.size.push_str(" paired");
            } else if lockstep {
                report.size.push_str(" lockstep");
            }
            raise_fd_limit(subscribers as u64 + 1_000)?;
            let shape = fanout::Shape {
                subscribers,
                publishers,
                messages,
                lockstep,
            };
            run_fanout(&mut report, shape, runs, paired).await?;
        }
        Command::Storm { n } => {
            report.size = format!("storm n={n}");
            raise_fd_limit(n as u64 + 1_000)?;
            run_storm(&mut report, n).await?;
        }
        Command::Cluster {
            subscribers,
            publishers,
            messages,
            runs,
            hold,
            lockstep,
        } => {
            report.size =
                format!("cluster s={subscribers} p={publishers} m={messages} hold={hold}");
            if lockstep {
                report.size.push_str(" lockstep");
            }
            // The nodes inherit this limit: each holds a third of the sockets.
            raise_fd_limit((subscribers.max(hold / 3) + 1_000) as u64)?;
            let shape = fanout::Shape {
                subscribers,
                publishers,
                messages,
                lockstep,
            };
            let hold = (hold > 0).then_some(hold);
            report.cluster = Some(cluster::run(runs, shape, hold, OURS_PATH).await?);
        }
        Command::Hold { .. } => anyhow::bail!("`hold` returned above"),
        Command::Latency {
            shape,
            subscribers,
            rate,
            rooms,
            per_room,
            room_rate,
            room_event,
            seconds,
            runs,
            no_floor,
        } => {
            let topic = latency::Shape::Topic { subscribers, rate };
            let event = match room_event.as_str() {
                "new_msg" => "new_msg",
                "broadcast_from" => "broadcast_from",
                other => anyhow::bail!("--room-event {other}: expected new_msg or broadcast_from"),
            };
            let room_shape = latency::Shape::Rooms {
                rooms,
                per_room,
                rate: room_rate,
                event,
            };
            let (topic, room_shape) = match shape.as_str() {
                "topic" => (Some(topic), None),
                "rooms" => (None, Some(room_shape)),
                "both" => (Some(topic), Some(room_shape)),
                other => anyhow::bail!("--shape {other}: expected topic, rooms or both"),
            };
            report.size = format!(
                "latency shape={shape} s={subscribers} rate={rate} rooms={rooms}x{per_room} room_rate={room_rate} room_event={room_event} seconds={seconds}"
            );
            raise_fd_limit((subscribers.max(rooms * per_room) + 1_000) as u64)?;
            let opts = latency::Options {
                topic,
                rooms: room_shape,
                seconds,
                runs,
                floor: !no_floor,
            };
            report.latency = latency::run_all(opts, OURS_PATH).await?;
            report.latency_medians = latency::medians(&report.latency);
        }
        Command::Gateway {
            round_trips,
            clients,
            subscribers,
            publishers,
            messages,
            runs,
        } => {
            report.size = format!(
                "gateway n={round_trips} c={clients} s={subscribers} p={publishers} m={messages}"
            );
            raise_fd_limit((subscribers.max(clients) + 1_000) as u64)?;
            let opts = gateway::Options {
                round_trips,
                clients,
                fanout: fanout::Shape {
                    subscribers,
                    publishers,
                    messages,
                    // As fast as the servers answer, the case the gateway's figures
                    // in docs/benchmarks.md were measured in.
                    lockstep: false,
                },
                runs,
            };
            report.gateway = Some(gateway::run(opts, OURS_PATH).await?);
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
    let dir = write(
        &report,
        &cli.out,
        scenario,
        cli.compare.as_deref(),
        cli.threshold,
    )?;
    println!("\n{}", report.markdown());
    println!("results: {}", dir.display());
    Ok(())
}
