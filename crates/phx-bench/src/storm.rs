//! `storm`: N clients present in one topic drop at once and reconnect at once; time until
//! every client has rejoined and until every client's presence view holds exactly the N
//! users with one meta each (phoenix.js' algorithm, §6.4, by phx_ref).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use crate::client::{new_wave, source_for, Conn};
use crate::presence_view::View;
use crate::proc_stats::{cpu_time, own_cpu_time};
use crate::servers::Server;

#[derive(Debug, Serialize)]
pub struct Result {
    pub clients: usize,
    pub initial_converged_s: f64,
    pub rejoined_s: f64,
    pub converged_s: f64,
    pub all_converged: bool,
    /// From the drop until every client had its `presence_state` frame (seen by its event
    /// name, before the client parses it): the server's side of the storm.
    pub states_written_s: f64,
    /// Server CPU time from the drop until every `presence_state` was received.
    pub server_cpu_to_states_s: f64,
    /// Server CPU time from the drop until every list converged.
    pub server_cpu_s: f64,
    /// The load generator's own CPU time over the same span (it shares the cores).
    pub generator_cpu_s: f64,
}

const TOPIC: &str = "presence:storm";

/// What every client of one wave shares.
#[derive(Clone)]
struct Wave {
    n: usize,
    server: std::net::SocketAddr,
    path: String,
    gate: Arc<Semaphore>,
    joined: Arc<AtomicUsize>,
    converged: Arc<AtomicUsize>,
    states: Arc<AtomicUsize>,
    stop: watch::Receiver<bool>,
}

/// Whether a V2 frame is a `presence_state` push: its event is the fourth element, near
/// the start, so only the head is searched (the state itself can be megabytes).
fn is_presence_state(frame: &[u8]) -> bool {
    let head = &frame[..frame.len().min(256)];
    head.windows(16).any(|w| w == b"\"presence_state\"")
}

/// One client: join, then apply presence frames until `stop`; counts itself in
/// `converged` while its view holds every user once.
async fn client(i: usize, mut wave: Wave) {
    let conn = async {
        let _permit = wave.gate.acquire().await.ok()?;
        let mut conn = Conn::connect(wave.server, source_for(i), &wave.path)
            .await
            .ok()?;
        let mut view = View::default();
        let payload = serde_json::json!({"user": format!("u{i}"), "meta": {}});
        let states = &wave.states;
        conn.join(TOPIC, payload, |f| {
            if is_presence_state(f) {
                states.fetch_add(1, Ordering::Relaxed);
            }
            view.handle(f)
        })
        .await
        .ok()?;
        Some((conn, view))
    };
    let Some((mut conn, mut view)) = conn.await else {
        return;
    };
    wave.joined.fetch_add(1, Ordering::Relaxed);
    let mut counted = false;
    loop {
        // Reading is not raced against `stop`: the storm drops this task instead.
        let Ok(Some(frame)) = conn.next_text().await else {
            break;
        };
        if is_presence_state(&frame) {
            wave.states.fetch_add(1, Ordering::Relaxed);
        }
        view.handle(&frame);
        let now = view.converged(wave.n);
        if now != counted {
            if now {
                wave.converged.fetch_add(1, Ordering::Relaxed);
            } else {
                wave.converged.fetch_sub(1, Ordering::Relaxed);
            }
            counted = now;
        }
        if *wave.stop.borrow_and_update() {
            break;
        }
    }
}

struct Started {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    joined: Arc<AtomicUsize>,
    converged: Arc<AtomicUsize>,
    states: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
}

async fn wave(n: usize, server: &Server, path: &str) -> Started {
    new_wave(n);
    let (stop_tx, stop) = watch::channel(false);
    let wave = Wave {
        n,
        server: server.addr,
        path: path.to_owned(),
        gate: Arc::new(Semaphore::new(512)),
        joined: Arc::new(AtomicUsize::new(0)),
        converged: Arc::new(AtomicUsize::new(0)),
        states: Arc::new(AtomicUsize::new(0)),
        stop,
    };
    let tasks = (0..n)
        .map(|i| tokio::spawn(client(i, wave.clone())))
        .collect();
    Started {
        tasks,
        joined: wave.joined,
        converged: wave.converged,
        states: wave.states,
        stop: stop_tx,
    }
}

async fn wait_until(what: impl Fn() -> bool, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while !what() {
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Some(started.elapsed())
}

pub async fn run(server: &Server, n: usize, path: &str) -> anyhow::Result<Result> {
    let started = Instant::now();
    let first = wave(n, server, path).await;
    let (tasks, converged) = (first.tasks, first.converged);
    let initial = wait_until(
        || converged.load(Ordering::Relaxed) == n,
        Duration::from_secs(300),
    )
    .await;
    anyhow::ensure!(initial.is_some(), "the first wave never converged");
    let initial = started.elapsed();
    // Drop every connection at once (the server sees N abrupt closes).
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let storm = Instant::now();
    let (server_cpu, own_cpu) = (cpu_time(server.pid())?, own_cpu_time()?);
    let second = wave(n, server, path).await;
    let (joined, converged, states) = (&second.joined, &second.converged, &second.states);
    let rejoined = wait_until(
        || joined.load(Ordering::Relaxed) == n,
        Duration::from_secs(300),
    )
    .await
    .map(|_| storm.elapsed());
    let written = wait_until(
        || states.load(Ordering::Relaxed) >= n,
        Duration::from_secs(300),
    )
    .await
    .map(|_| storm.elapsed());
    let server_cpu_to_states = cpu_time(server.pid())?.saturating_sub(server_cpu);
    let done = wait_until(
        || converged.load(Ordering::Relaxed) == n,
        Duration::from_secs(300),
    )
    .await
    .map(|_| storm.elapsed());
    let server_cpu = cpu_time(server.pid())?.saturating_sub(server_cpu);
    let own_cpu = own_cpu_time()?.saturating_sub(own_cpu);
    let _ = second.stop.send(true);
    Ok(Result {
        clients: n,
        initial_converged_s: initial.as_secs_f64(),
        rejoined_s: rejoined.map_or(f64::NAN, |d| d.as_secs_f64()),
        converged_s: done.map_or(f64::NAN, |d| d.as_secs_f64()),
        all_converged: done.is_some(),
        states_written_s: written.map_or(f64::NAN, |d| d.as_secs_f64()),
        server_cpu_to_states_s: server_cpu_to_states.as_secs_f64(),
        server_cpu_s: server_cpu.as_secs_f64(),
        generator_cpu_s: own_cpu.as_secs_f64(),
    })
}
