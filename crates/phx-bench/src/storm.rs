//! `storm`: N clients present in one topic drop at once and reconnect at once; time until
//! every client has rejoined and until every client's presence view holds exactly the N
//! users with one meta each (phoenix.js' algorithm, §6.4, by phx_ref).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{watch, Semaphore};

use crate::client::{new_wave, source_for, Conn};
use crate::servers::Server;

#[derive(Debug, Serialize)]
pub struct Result {
    pub clients: usize,
    pub initial_converged_s: f64,
    pub rejoined_s: f64,
    pub converged_s: f64,
    pub all_converged: bool,
}

const TOPIC: &str = "presence:storm";

/// One client's presence view: key → set of phx_refs.
#[derive(Default)]
struct View {
    keys: HashMap<String, HashSet<String>>,
    pending: Vec<Value>,
    has_state: bool,
}

impl View {
    fn refs(v: &Value) -> impl Iterator<Item = (String, String)> + '_ {
        v.as_object().into_iter().flatten().flat_map(|(k, e)| {
            e["metas"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |m| Some((k.clone(), m["phx_ref"].as_str()?.to_owned())))
        })
    }
    fn apply_diff(&mut self, diff: &Value) {
        for (k, r) in Self::refs(&diff["joins"]) {
            self.keys.entry(k).or_default().insert(r);
        }
        for (k, r) in Self::refs(&diff["leaves"]) {
            if let Some(set) = self.keys.get_mut(&k) {
                set.remove(&r);
                if set.is_empty() {
                    self.keys.remove(&k);
                }
            }
        }
    }
    fn handle(&mut self, frame: &[u8]) {
        let is_presence = frame.windows(9).any(|w| w == b"presence_");
        if !is_presence {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(frame) else {
            return;
        };
        match v[3].as_str() {
            Some("presence_state") => {
                self.keys.clear();
                for (k, r) in Self::refs(&v[4]) {
                    self.keys.entry(k).or_default().insert(r);
                }
                self.has_state = true;
                for d in std::mem::take(&mut self.pending) {
                    self.apply_diff(&d);
                }
            }
            Some("presence_diff") if self.has_state => self.apply_diff(&v[4]),
            Some("presence_diff") => self.pending.push(v[4].clone()),
            _ => {}
        }
    }
    fn converged(&self, n: usize) -> bool {
        self.keys.len() == n && self.keys.values().all(|s| s.len() == 1)
    }
}

/// What every client of one wave shares.
#[derive(Clone)]
struct Wave {
    n: usize,
    server: std::net::SocketAddr,
    path: String,
    gate: Arc<Semaphore>,
    joined: Arc<AtomicUsize>,
    converged: Arc<AtomicUsize>,
    stop: watch::Receiver<bool>,
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
        conn.join(TOPIC, payload, |f| view.handle(f)).await.ok()?;
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

type Started = (
    Vec<tokio::task::JoinHandle<()>>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    watch::Sender<bool>,
);

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
        stop,
    };
    let tasks = (0..n)
        .map(|i| tokio::spawn(client(i, wave.clone())))
        .collect();
    (tasks, wave.joined, wave.converged, stop_tx)
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
    let (tasks, _joined, converged, _stop) = wave(n, server, path).await;
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
    let (_tasks, joined, converged, stop) = wave(n, server, path).await;
    let rejoined = wait_until(
        || joined.load(Ordering::Relaxed) == n,
        Duration::from_secs(300),
    )
    .await;
    let done = wait_until(
        || converged.load(Ordering::Relaxed) == n,
        Duration::from_secs(300),
    )
    .await;
    let _ = stop.send(true);
    Ok(Result {
        clients: n,
        initial_converged_s: initial.as_secs_f64(),
        rejoined_s: rejoined.map_or(f64::NAN, |d| d.as_secs_f64()),
        converged_s: done.map_or(f64::NAN, |_| storm.elapsed().as_secs_f64()),
        all_converged: done.is_some(),
    })
}
