//! `chat`: U users in R rooms of the chat app (PostgreSQL history) sending `new_msg` as
//! fast as replies come back (closed loop: the saturation rate), or at a fixed offered
//! rate (`--rate`); stored messages per second and reply latency.
//!
//! At a fixed rate each user sends on its own schedule (every `users / rate` seconds,
//! phases spread evenly) and latency counts from the *scheduled* send, not the actual
//! one: a reply that comes late delays that user's next send, and the wait is charged to
//! the latency instead of being hidden (no coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};

use crate::client::{new_wave, source_for, Conn};
use crate::proc_stats::{cpu_time, parent, tree_cpu_time};
use crate::servers::Server;

#[derive(Debug, Serialize)]
pub struct Result {
    pub users: usize,
    /// Offered messages per second (`None`: closed loop, as fast as replies come).
    pub offered_per_sec: Option<f64>,
    pub rooms: usize,
    pub seconds: f64,
    pub stored: u64,
    pub stored_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub rows_in_database: i64,
    /// chat-app CPU time per stored message (PostgreSQL's own CPU not included).
    pub server_cpu_us_per_message: f64,
    /// PostgreSQL's CPU time per stored message (its postmaster and every backend),
    /// when the server runs on this machine; `None` otherwise.
    pub postgres_cpu_us_per_message: Option<f64>,
    /// The load generator's own CPU time per stored message.
    pub generator_cpu_us_per_message: f64,
}

pub async fn run(
    server: &Server,
    users: usize,
    rooms: usize,
    duration: Duration,
    database_url: &str,
    rate: Option<f64>,
) -> anyhow::Result<Result> {
    let interval = rate.map(|r| Duration::from_secs_f64(users as f64 / r.max(1e-3)));
    let (client, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    // The backend serving this connection, if PostgreSQL runs here: its parent is the
    // postmaster, whose process tree is all of PostgreSQL's work.
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    let postmaster = u32::try_from(backend)
        .ok()
        .and_then(|pid| parent(pid).ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        });
    new_wave(users);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1_000,
        60_000_000_000,
        3,
    )?));
    let gate = Arc::new(Semaphore::new(128));
    let started = Instant::now() + Duration::from_secs(1);
    let end = started + duration;
    let mut tasks = Vec::new();
    for i in 0..users {
        let (hist, gate, addr) = (hist.clone(), gate.clone(), server.addr);
        tasks.push(tokio::spawn(async move {
            let conn = async {
                let _permit = gate.acquire().await.ok()?;
                let mut conn = Conn::connect(addr, source_for(i), "/socket/websocket?vsn=2.0.0")
                    .await
                    .ok()?;
                let topic = format!("room:r{}", i % rooms);
                let j = conn
                    .join(
                        &topic,
                        serde_json::json!({"username": format!("user{i}")}),
                        |_| {},
                    )
                    .await
                    .ok()?;
                Some((conn, topic, j))
            };
            let Some((mut conn, topic, j)) = conn.await else {
                return 0u64;
            };
            tokio::time::sleep_until(started.into()).await;
            let mut stored = 0;
            let mut local = Vec::new();
            let mut scheduled =
                interval.map(|every| started + every.mul_f64(i as f64 / users as f64));
            while Instant::now() < end {
                let sent = match (&mut scheduled, interval) {
                    (Some(at), Some(every)) => {
                        let this = *at;
                        *at += every;
                        if this >= end {
                            break;
                        }
                        tokio::time::sleep_until(this.into()).await;
                        this
                    }
                    _ => Instant::now(),
                };
                let Ok(r) = conn
                    .send(
                        Some(&j),
                        &topic,
                        "new_msg",
                        &serde_json::json!({"body": "hello from the bench"}),
                    )
                    .await
                else {
                    break;
                };
                let needle = format!(",\"{r}\",");
                let ok = loop {
                    let Ok(Some(text)) = conn.next_text().await else {
                        break false;
                    };
                    if text.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        break text.windows(6).any(|w| w == b"\"ok\"}]");
                    }
                };
                if !ok {
                    break;
                }
                stored += 1;
                local.push(sent.elapsed().as_nanos() as u64);
            }
            let mut h = hist.lock().await;
            for v in local {
                h.saturating_record(v.max(1_000));
            }
            stored
        }));
    }
    // Everyone has joined once the start instant has passed (the gate lets 128 at a
    // time through; 1 s is ample at these sizes); CPU is counted from there.
    tokio::time::sleep_until(started.into()).await;
    let cpu_before = cpu_time(server.pid())?;
    let own_before = crate::proc_stats::own_cpu_time()?;
    let postgres_before = postmaster.and_then(|pid| tree_cpu_time(pid).ok());
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap_or(0);
    }
    let cpu = cpu_time(server.pid())?.saturating_sub(cpu_before);
    let own_cpu = crate::proc_stats::own_cpu_time()?.saturating_sub(own_before);
    let postgres_cpu = postmaster
        .zip(postgres_before)
        .and_then(|(pid, before)| Some(tree_cpu_time(pid).ok()?.saturating_sub(before)));
    let seconds = duration.as_secs_f64();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM messages", &[])
        .await?
        .get(0);
    let h = hist.lock().await;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
    Ok(Result {
        users,
        offered_per_sec: rate,
        rooms,
        seconds,
        stored,
        stored_per_sec: stored as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        rows_in_database: rows,
        server_cpu_us_per_message: cpu.as_secs_f64() * 1e6 / stored.max(1) as f64,
        postgres_cpu_us_per_message: postgres_cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / stored.max(1) as f64),
        generator_cpu_us_per_message: own_cpu.as_secs_f64() * 1e6 / stored.max(1) as f64,
    })
}
