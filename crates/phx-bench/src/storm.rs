//! `storm`: N clients present in one topic drop at once and reconnect at once; time until
//! every client has rejoined and until every client's presence view holds exactly the N
//! users with one meta each (phoenix.js' algorithm, §6.4, by phx_ref).

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

/// Every phx_ref seen by any client, numbered densely: all clients see the same refs,
/// so each client's view can be a bitset instead of a map of strings (N clients × N
/// users would otherwise be N² strings in this process).
static REFS: std::sync::LazyLock<dashmap::DashMap<String, u32>> =
    std::sync::LazyLock::new(dashmap::DashMap::new);
static NEXT_REF: AtomicUsize = AtomicUsize::new(0);

fn ref_index(phx_ref: &str) -> usize {
    if let Some(i) = REFS.get(phx_ref) {
        return *i as usize;
    }
    *REFS
        .entry(phx_ref.to_owned())
        .or_insert_with(|| NEXT_REF.fetch_add(1, Ordering::Relaxed) as u32) as usize
}

/// One client's presence view (phoenix.js' algorithm, §6.4): which refs it holds and
/// how many metas each user has.
#[derive(Default)]
struct View {
    held: Vec<u64>,
    metas_per_user: Vec<u16>,
    users: usize,
    extra_metas: usize,
    pending: Vec<Value>,
    has_state: bool,
}

impl View {
    fn refs(v: &Value) -> impl Iterator<Item = (usize, usize)> + '_ {
        v.as_object().into_iter().flatten().flat_map(|(k, e)| {
            let user: usize = k.trim_start_matches('u').parse().unwrap_or(usize::MAX);
            e["metas"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |m| Some((user, ref_index(m["phx_ref"].as_str()?))))
        })
    }
    fn join(&mut self, user: usize, r: usize) {
        if user == usize::MAX {
            return;
        }
        let (word, bit) = (r / 64, 1u64 << (r % 64));
        if self.held.len() <= word {
            self.held.resize(word + 1, 0);
        }
        if self.held[word] & bit != 0 {
            return; // the same meta again: idempotent, as in phoenix.js
        }
        self.held[word] |= bit;
        if self.metas_per_user.len() <= user {
            self.metas_per_user.resize(user + 1, 0);
        }
        let count = &mut self.metas_per_user[user];
        *count += 1;
        if *count == 1 {
            self.users += 1;
        } else {
            self.extra_metas += 1;
        }
    }
    fn leave(&mut self, user: usize, r: usize) {
        let (word, bit) = (r / 64, 1u64 << (r % 64));
        if self.held.get(word).is_none_or(|w| w & bit == 0) {
            return; // unknown meta: ignored
        }
        self.held[word] &= !bit;
        let count = &mut self.metas_per_user[user];
        *count -= 1;
        if *count == 0 {
            self.users -= 1;
        } else {
            self.extra_metas -= 1;
        }
    }
    fn apply_diff(&mut self, diff: &Value) {
        for (user, r) in Self::refs(&diff["joins"]).collect::<Vec<_>>() {
            self.join(user, r);
        }
        for (user, r) in Self::refs(&diff["leaves"]).collect::<Vec<_>>() {
            self.leave(user, r);
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
                *self = Self {
                    has_state: true,
                    pending: std::mem::take(&mut self.pending),
                    ..Self::default()
                };
                for (user, r) in Self::refs(&v[4]).collect::<Vec<_>>() {
                    self.join(user, r);
                }
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
        self.users == n && self.extra_metas == 0
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
