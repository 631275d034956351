//! `connections`: N sockets each joined to one of R rooms; memory per connection and
//! connect+join rate.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::client::{new_wave, source_for, Conn};
use crate::proc_stats::{cpu_time, own_cpu_time, rss_bytes};
use crate::servers::Server;

#[derive(Debug, Serialize)]
pub struct Result {
    pub server: String,
    pub connections: usize,
    pub rooms: usize,
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
    pub bytes_per_connection: f64,
    pub connect_join_per_sec: f64,
    /// Server CPU time spent accepting, upgrading and joining, per connection.
    pub server_cpu_us_per_connection: f64,
    /// The load generator's own CPU time over the same span (it shares the cores).
    pub generator_cpu_ms: f64,
    pub failed: usize,
}

pub async fn run(server: &Server, n: usize, rooms: usize, path: &str) -> anyhow::Result<Result> {
    new_wave(n);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = rss_bytes(server.pid())?;
    let (cpu_before, own_before) = (cpu_time(server.pid())?, own_cpu_time()?);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let gate = gate.clone();
        let addr = server.addr;
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await?;
            let mut conn = Conn::connect(addr, source_for(i), &path).await?;
            let topic = format!("custom:room{}", i % rooms);
            conn.join(&topic, serde_json::json!({"action": "ok"}), |_| {})
                .await?;
            anyhow::Ok(conn)
        }));
    }
    let mut conns = Vec::with_capacity(n);
    let mut failed = 0;
    for t in tasks {
        match t.await.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(c) => conns.push(c),
            Err(e) => {
                if failed == 0 {
                    println!("connections [{}]: first failure: {e:#}", server.name);
                }
                failed += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time(server.pid())?.saturating_sub(cpu_before);
    let own_cpu = own_cpu_time()?.saturating_sub(own_before);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = rss_bytes(server.pid())?;
    let open = conns.len().max(1);
    drop(conns);
    Ok(Result {
        server: server.name.to_owned(),
        connections: n - failed,
        rooms,
        rss_before_mib: before as f64 / 1048576.0,
        rss_after_mib: after as f64 / 1048576.0,
        bytes_per_connection: after.saturating_sub(before) as f64 / open as f64,
        connect_join_per_sec: (n - failed) as f64 / elapsed.as_secs_f64(),
        server_cpu_us_per_connection: cpu.as_secs_f64() * 1e6 / open as f64,
        generator_cpu_ms: own_cpu.as_secs_f64() * 1e3,
        failed,
    })
}
