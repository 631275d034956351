//! `latency`: end-to-end latency at a fixed offered load, not at saturation.
//!
//! Open loop: every publish has a scheduled time on the clock, and is sent then whether
//! or not earlier ones were answered. The payload carries the scheduled time (`t`) and the
//! time it actually left (`s`); latency is measured from `t`, so a send the load generator
//! got out late counts against the run (coordinated omission is not hidden). The
//! generator's own lag is measured twice and reported, not subtracted: how late each send
//! left against its schedule, and how late a 1 ms timer task in the generator wakes (the
//! receivers share that runtime, so their lag is of the same order).
//!
//! Two shapes:
//! - `topic`: S subscribers in one topic, one publisher posting R broadcasts/s to the
//!   server's `POST /test/broadcast` (a pool of keep-alive HTTP connections, a new one
//!   opened when every open one still waits for its answer), from a thread of its own.
//!   Runs against the floor too.
//! - `rooms`: R rooms × K subscribers, every subscriber pushing `new_msg` into its room at
//!   M/s (the conformance server's `room:*` channel broadcasts it to every member,
//!   sender included, through its `handle_out` intercept). phx-rs only: the floor has no
//!   channels.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload};
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::client::{new_wave, now_nanos, send_time, source_for, Conn};
use crate::proc_stats::{cpu_time, own_cpu_time};
use crate::servers::{self, Server};

/// Which load a run offers.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// `subscribers` in one topic, `rate` server broadcasts per second.
    Topic { subscribers: usize, rate: f64 },
    /// `rooms` × `per_room` subscribers, each pushing `rate` messages per second as
    /// `event`: `new_msg` (broadcast to every member through the channel's `handle_out`
    /// intercept) or `broadcast_from` (to every other member, not intercepted).
    Rooms {
        rooms: usize,
        per_room: usize,
        rate: f64,
        event: &'static str,
    },
}

impl Shape {
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Topic { .. } => "topic",
            Shape::Rooms {
                event: "new_msg", ..
            } => "rooms",
            Shape::Rooms { .. } => "rooms-broadcast_from",
        }
    }

    /// How many subscribers receive each publish.
    fn receivers(&self) -> usize {
        match *self {
            Shape::Topic { subscribers, .. } => subscribers,
            Shape::Rooms {
                per_room,
                event: "broadcast_from",
                ..
            } => per_room.saturating_sub(1),
            Shape::Rooms { per_room, .. } => per_room,
        }
    }

    /// Publishes per second and deliveries per second this shape offers.
    fn offered(&self) -> (f64, f64) {
        match *self {
            Shape::Topic { subscribers, rate } => (rate, rate * subscribers as f64),
            Shape::Rooms {
                rooms,
                per_room,
                rate,
                ..
            } => {
                let publishes = (rooms * per_room) as f64 * rate;
                (publishes, publishes * self.receivers() as f64)
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Result {
    /// `topic` or `rooms`.
    pub shape: String,
    pub server: String,
    /// 1-based run number (runs alternate servers).
    pub run: usize,
    /// How messages were published.
    pub publish_via: String,
    pub rooms: usize,
    /// Subscribers in all rooms.
    pub subscribers: usize,
    pub publishes_per_sec: f64,
    pub offered_deliveries_per_sec: f64,
    /// Length of the publishing schedule.
    pub seconds: f64,
    pub expected: u64,
    pub delivered: u64,
    /// Scheduled send → received, over every delivery.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Actual send → received (the same deliveries, the generator's send lag left out).
    pub p99_from_send_ms: f64,
    /// How late sends left against their schedule (included in the figures above).
    pub send_lag_p99_ms: f64,
    pub send_lag_max_ms: f64,
    /// How late a 1 ms timer in the load generator woke (its runtime's lag; the
    /// receivers run on the same two threads).
    pub generator_lag_p99_ms: f64,
    pub generator_lag_max_ms: f64,
    pub server_cpu_ms: f64,
    pub server_cpu_ns_per_delivered: f64,
    pub generator_cpu_ms: f64,
}

/// Median figures of the runs of one shape against one server.
#[derive(Debug, Clone, Serialize)]
pub struct Median {
    pub shape: String,
    pub server: String,
    pub runs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub p99_from_send_ms: f64,
    pub send_lag_p99_ms: f64,
    pub send_lag_max_ms: f64,
    pub generator_lag_p99_ms: f64,
    pub server_cpu_ns_per_delivered: f64,
    /// Deliveries missing in the worst run (0 when every run delivered everything).
    pub worst_missing: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians per (shape, server), in order of first appearance.
pub fn medians(results: &[Result]) -> Vec<Median> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in results {
        let k = (r.shape.clone(), r.server.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(shape, server)| {
            let runs: Vec<&Result> = results
                .iter()
                .filter(|r| r.shape == shape && r.server == server)
                .collect();
            let m = |f: fn(&Result) -> f64| median(runs.iter().map(|r| f(r)).collect());
            Median {
                runs: runs.len(),
                p50_ms: m(|r| r.p50_ms),
                p99_ms: m(|r| r.p99_ms),
                p999_ms: m(|r| r.p999_ms),
                max_ms: m(|r| r.max_ms),
                p99_from_send_ms: m(|r| r.p99_from_send_ms),
                send_lag_p99_ms: m(|r| r.send_lag_p99_ms),
                send_lag_max_ms: m(|r| r.send_lag_max_ms),
                generator_lag_p99_ms: m(|r| r.generator_lag_p99_ms),
                server_cpu_ns_per_delivered: m(|r| r.server_cpu_ns_per_delivered),
                worst_missing: runs
                    .iter()
                    .map(|r| r.expected.saturating_sub(r.delivered))
                    .max()
                    .unwrap_or(0),
                shape,
                server,
            }
        })
        .collect()
}

/// Options of the `latency` subcommand.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub topic: Option<Shape>,
    pub rooms: Option<Shape>,
    pub seconds: f64,
    pub runs: usize,
    /// Run the topic shape against the floor too.
    pub floor: bool,
}

/// Runs the shapes `runs` times each (topic: floor and phx-rs alternating), prints every
/// run and the medians, and returns the runs.
pub async fn run_all(opts: Options, ours_path: &str) -> anyhow::Result<Vec<Result>> {
    let mut results = Vec::new();
    for run in 1..=opts.runs.max(1) {
        if let Some(shape) = opts.topic {
            let servers: &[bool] = if opts.floor { &[true, false] } else { &[false] };
            for &floor in servers {
                let (server, path) = if floor {
                    (servers::floor().await?, "/ws")
                } else {
                    (servers::ours(3_600_000).await?, ours_path)
                };
                let r = run_one(&server, run, shape, opts.seconds, path).await;
                server.stop().await;
                results.push(print(r?));
            }
        }
        if let Some(shape) = opts.rooms {
            let server = servers::ours(3_600_000).await?;
            let r = run_one(&server, run, shape, opts.seconds, ours_path).await;
            server.stop().await;
            results.push(print(r?));
        }
    }
    for m in medians(&results) {
        println!(
            "latency [{} {}] median of {}: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms (p99 from the actual send {:.2} ms; send lag p99 {:.2} ms, max {:.2} ms; generator timer lag p99 {:.2} ms){}",
            m.shape, m.server, m.runs, m.p50_ms, m.p99_ms, m.p999_ms, m.max_ms, m.p99_from_send_ms,
            m.send_lag_p99_ms, m.send_lag_max_ms, m.generator_lag_p99_ms,
            if m.worst_missing > 0 { format!(", up to {} deliveries missing in a run", m.worst_missing) } else { String::new() }
        );
    }
    Ok(results)
}

fn print(r: Result) -> Result {
    println!(
        "latency [{} {}] run {}: {} subscribers, {:.0} publishes/s → {:.0} deliveries/s offered for {:.0} s; {} of {} delivered; p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms (from actual send: p99 {:.2} ms); send lag p99 {:.2} ms, max {:.2} ms; generator timer lag p99 {:.2} ms, max {:.2} ms; server CPU {:.0} ms ({:.0} ns/delivered), generator CPU {:.0} ms",
        r.shape, r.server, r.run, r.subscribers, r.publishes_per_sec, r.offered_deliveries_per_sec, r.seconds,
        r.delivered, r.expected, r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms, r.p99_from_send_ms,
        r.send_lag_p99_ms, r.send_lag_max_ms, r.generator_lag_p99_ms, r.generator_lag_max_ms,
        r.server_cpu_ms, r.server_cpu_ns_per_delivered, r.generator_cpu_ms
    );
    r
}

/// Scheduled and actual send times (ns since the epoch) of one delivery, and when it
/// arrived.
type Sample = (u64, u64, u64);

/// The shared clock of a run: `Instant`s for sleeping, epoch nanoseconds for payloads
/// (the receivers compare against `now_nanos`).
#[derive(Clone, Copy)]
struct Clock {
    base: Instant,
    base_epoch: u64,
}

impl Clock {
    fn now() -> Self {
        Self {
            base: Instant::now(),
            base_epoch: now_nanos(),
        }
    }

    fn epoch(&self, at: Instant) -> u64 {
        self.base_epoch + at.saturating_duration_since(self.base).as_nanos() as u64
    }
}

/// Where the tasks of a run send what they measured.
#[derive(Clone)]
struct Sinks {
    deliveries: mpsc::UnboundedSender<Vec<Sample>>,
    send_lag: mpsc::UnboundedSender<u64>,
    delivered: Arc<AtomicU64>,
}

impl Sinks {
    /// Records a frame if it carries a send time; batches are flushed by the caller.
    fn on_frame(&self, text: &[u8], batch: &mut Vec<Sample>) {
        let Some(t) = send_time(text) else { return };
        let s = field_nanos(text, b"\"s\":\"").unwrap_or(t);
        batch.push((t, s, now_nanos()));
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if batch.len() >= 32 {
            let _ = self.deliveries.send(std::mem::take(batch));
        }
    }
}

/// The digits after `key` (for example `"s":"`) in a frame.
fn field_nanos(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)?;
    let digits = &text[at + key.len()..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs to 120 s at 3 significant digits.
    Ok(Histogram::<u64>::new_with_bounds(
        1_000,
        120_000_000_000,
        3,
    )?)
}

/// One run of `shape` for `seconds` against `server`.
pub async fn run_one(
    server: &Server,
    run: usize,
    shape: Shape,
    seconds: f64,
    path: &str,
) -> anyhow::Result<Result> {
    let (rooms, per_room) = match shape {
        Shape::Topic { subscribers, .. } => (1, subscribers),
        Shape::Rooms {
            rooms, per_room, ..
        } => (rooms, per_room),
    };
    let subscribers = rooms * per_room;
    let label = server.name;
    new_wave(subscribers);

    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel::<Vec<Sample>>();
    let (lag_tx, mut lag_rx) = mpsc::unbounded_channel::<u64>();
    let sinks = Sinks {
        deliveries: lat_tx,
        send_lag: lag_tx,
        delivered: Arc::new(AtomicU64::new(0)),
    };
    // Histograms are filled as samples arrive, so memory stays flat over long runs.
    let collector = tokio::spawn(async move {
        let (mut from_sched, mut from_send, mut lag) = (histogram()?, histogram()?, histogram()?);
        let (mut lat_open, mut lag_open) = (true, true);
        while lat_open || lag_open {
            tokio::select! {
                b = lat_rx.recv(), if lat_open => match b {
                    Some(batch) => for (t, s, at) in batch {
                        from_sched.saturating_record(at.saturating_sub(t).max(1_000));
                        from_send.saturating_record(at.saturating_sub(s).max(1_000));
                    },
                    None => lat_open = false,
                },
                l = lag_rx.recv(), if lag_open => match l {
                    Some(v) => lag.saturating_record(v.max(1_000)),
                    None => lag_open = false,
                },
            }
        }
        anyhow::Ok((from_sched, from_send, lag))
    });
    let (done_tx, done_rx) = watch::channel(false);
    let schedule = Arc::new(Mutex::new(None::<Clock>));
    let (start_tx, _) = tokio::sync::broadcast::channel::<()>(1);

    // Connect and join every subscriber (256 handshakes at a time).
    let gate = Arc::new(Semaphore::new(256));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Option<String>>();
    let messages_each = (seconds * rate_of(shape)).round().max(1.0) as u64;
    for i in 0..subscribers {
        let room = i % rooms;
        let topic = match shape {
            Shape::Topic { .. } => "custom:latency".to_owned(),
            Shape::Rooms { .. } => format!("room:latency{room}"),
        };
        let (gate, ready_tx, sinks, mut done) = (
            gate.clone(),
            ready_tx.clone(),
            sinks.clone(),
            done_rx.clone(),
        );
        let (addr, path) = (server.addr, path.to_owned());
        let mut start_rx = start_tx.subscribe();
        let schedule = schedule.clone();
        tokio::spawn(async move {
            let joined = async {
                let _permit = gate.acquire().await?;
                let mut conn = Conn::connect(addr, source_for(i), &path).await?;
                let payload = match shape {
                    Shape::Topic { .. } => serde_json::json!({"action": "ok"}),
                    Shape::Rooms { .. } => serde_json::json!({}),
                };
                let join_ref = conn.join(&topic, payload, |_| {}).await?;
                anyhow::Ok((conn, join_ref))
            };
            let (conn, join_ref) = match joined.await {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Some(format!("{e:#}")));
                    return;
                }
            };
            let _ = ready_tx.send(None);
            drop(ready_tx);
            let mut batch = Vec::with_capacity(32);
            match shape {
                Shape::Topic { .. } => {
                    let mut conn = conn;
                    loop {
                        tokio::select! {
                            _ = done.changed() => break,
                            text = conn.next_text() => match text {
                                Ok(Some(text)) => sinks.on_frame(&text, &mut batch),
                                _ => break,
                            },
                        }
                    }
                }
                Shape::Rooms { rate, event, .. } => {
                    let (mut read, mut write) = conn.split();
                    // The writer: `messages_each` pushes on this subscriber's schedule,
                    // spread evenly over the period across subscribers.
                    let lag = sinks.send_lag.clone();
                    let writer = tokio::spawn(async move {
                        if start_rx.recv().await.is_err() {
                            return;
                        }
                        let Some(clock) = *schedule.lock().expect("schedule lock") else {
                            return;
                        };
                        let period = Duration::from_secs_f64(1.0 / rate);
                        let phase = period.mul_f64(i as f64 / subscribers as f64);
                        for k in 0..messages_each {
                            let at = clock.base + phase + period * k as u32;
                            tokio::time::sleep_until(at.into()).await;
                            let sent = Instant::now();
                            let _ = lag.send(sent.saturating_duration_since(at).as_nanos() as u64);
                            let text = format!(
                                r#"["{join_ref}","{}","{topic}","{event}",{{"seq":{k},"t":"{}","s":"{}"}}]"#,
                                k + 1_000_000,
                                clock.epoch(at),
                                now_nanos()
                            );
                            let frame = Frame::text(Payload::Owned(text.into_bytes()));
                            if write.write_frame(frame).await.is_err() {
                                return;
                            }
                        }
                        // Keep the write half until the run ends (a close would stop
                        // this subscriber's deliveries).
                        let _ = std::future::pending::<()>().await;
                    });
                    // The server never pings, and a close ends the run: no reply is owed.
                    let mut owed = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
                    loop {
                        let frame = tokio::select! {
                            _ = done.changed() => break,
                            f = read.read_frame(&mut owed) => f,
                        };
                        match frame {
                            Ok(f) if matches!(f.opcode, OpCode::Text | OpCode::Binary) => {
                                sinks.on_frame(&f.payload, &mut batch)
                            }
                            Ok(f) if f.opcode == OpCode::Close => break,
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    writer.abort();
                }
            }
            let _ = sinks.deliveries.send(batch);
        });
    }
    drop(ready_tx);
    let (mut ready, mut first_error) = (0, None);
    for _ in 0..subscribers {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(None)) => ready += 1,
            Ok(Some(Some(e))) => {
                first_error.get_or_insert(e);
            }
            _ => break,
        }
    }
    if ready < subscribers {
        let _ = done_tx.send(true);
        anyhow::bail!(
            "[{label}] only {ready}/{subscribers} subscribers joined (first error: {})",
            first_error.as_deref().unwrap_or("timeout")
        );
    }
    // Let the joins' own traffic (room:* announces every member to the room) settle.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (publishes_per_sec, offered) = shape.offered();
    let expected = match shape {
        Shape::Topic { .. } => messages_each * subscribers as u64,
        Shape::Rooms { .. } => messages_each * (subscribers * shape.receivers()) as u64,
    };
    let pids = [server.pid()];
    let cpu_before = cpu_time(pids[0])?;
    let own_before = own_cpu_time()?;
    let start = Instant::now() + Duration::from_millis(100);
    let clock = Clock {
        base: start,
        base_epoch: Clock::now().epoch(start),
    };
    *schedule.lock().expect("schedule lock") = Some(clock);
    let _ = start_tx.send(());

    // The generator's own lag: a task that asks to wake every millisecond.
    let probe = {
        let mut done = done_rx.clone();
        tokio::spawn(async move {
            let mut h = histogram()?;
            let mut next = Instant::now();
            loop {
                next += Duration::from_millis(1);
                tokio::select! {
                    _ = done.changed() => break,
                    _ = tokio::time::sleep_until(next.into()) => {
                        let late = Instant::now().saturating_duration_since(next);
                        h.saturating_record((late.as_nanos() as u64).max(1_000));
                        // After a long stall, resume from now rather than firing a burst.
                        if late > Duration::from_millis(50) {
                            next = Instant::now();
                        }
                    }
                }
            }
            anyhow::Ok(h)
        })
    };

    let publish_via = match shape {
        Shape::Topic { rate, .. } => {
            // The publisher gets a thread and runtime of its own: on the main runtime its
            // timer would wait behind the receivers' 10 000 sockets, which is the
            // generator's lag, not the server's latency.
            let (lag, addr) = (sinks.send_lag.clone(), server.addr);
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("publisher".into())
                .spawn(move || {
                    let r = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(anyhow::Error::from)
                        .and_then(|rt| {
                            rt.block_on(publish_http(addr, rate, messages_each, clock, lag))
                        });
                    let _ = tx.send(r);
                })?;
            rx.await.context("publisher thread")??;
            "POST /test/broadcast (keep-alive HTTP/1.1 pool, open loop)"
        }
        Shape::Rooms { event, .. } => {
            tokio::time::sleep_until((start + Duration::from_secs_f64(seconds)).into()).await;
            if event == "new_msg" {
                "each subscriber's own socket: new_msg push, broadcast by the room to all (open loop)"
            } else {
                "each subscriber's own socket: broadcast_from push, to the room's other members (open loop)"
            }
        }
    };
    // Wait for the last deliveries; give up once nothing has arrived for 5 s.
    let (mut last, mut progress_at) = (0, Instant::now());
    loop {
        let now = sinks.delivered.load(Ordering::Relaxed);
        if now >= expected || progress_at.elapsed() > Duration::from_secs(5) {
            break;
        }
        if now != last {
            (last, progress_at) = (now, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = cpu_time(pids[0])?.saturating_sub(cpu_before);
    let own_cpu = own_cpu_time()?.saturating_sub(own_before);
    let _ = done_tx.send(true);
    let delivered = sinks.delivered.load(Ordering::Relaxed);
    drop(sinks);
    let probe = probe.await.context("probe")??;
    let (from_sched, from_send, lag) = tokio::time::timeout(Duration::from_secs(30), collector)
        .await
        .context("collecting the samples took over 30 s")?
        .context("collector")??;
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e6;
    Ok(Result {
        shape: shape.name().into(),
        server: label.into(),
        run,
        publish_via: publish_via.into(),
        rooms,
        subscribers,
        publishes_per_sec,
        offered_deliveries_per_sec: offered,
        seconds,
        expected,
        delivered,
        p50_ms: ms(&from_sched, 0.5),
        p99_ms: ms(&from_sched, 0.99),
        p999_ms: ms(&from_sched, 0.999),
        max_ms: from_sched.max() as f64 / 1e6,
        p99_from_send_ms: ms(&from_send, 0.99),
        send_lag_p99_ms: ms(&lag, 0.99),
        send_lag_max_ms: lag.max() as f64 / 1e6,
        generator_lag_p99_ms: ms(&probe, 0.99),
        generator_lag_max_ms: probe.max() as f64 / 1e6,
        server_cpu_ms: cpu.as_secs_f64() * 1e3,
        server_cpu_ns_per_delivered: cpu.as_nanos() as f64 / delivered.max(1) as f64,
        generator_cpu_ms: own_cpu.as_secs_f64() * 1e3,
    })
}

fn rate_of(shape: Shape) -> f64 {
    match shape {
        Shape::Topic { rate, .. } | Shape::Rooms { rate, .. } => rate,
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// Posts `messages` broadcasts at `rate`/s from `clock.base` on. Each send is its own
/// task taking an idle keep-alive connection from a pool (or opening one), so a slow
/// answer never delays the next send.
async fn publish_http(
    addr: std::net::SocketAddr,
    rate: f64,
    messages: u64,
    clock: Clock,
    lag: mpsc::UnboundedSender<u64>,
) -> anyhow::Result<()> {
    let pool: Arc<Mutex<Vec<Sender>>> = Arc::default();
    // One connection ready before the clock starts.
    let first = connect_http(addr).await?;
    pool.lock().expect("pool lock").push(first);
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut sends = tokio::task::JoinSet::new();
    for k in 0..messages {
        let at = clock.base + period.mul_f64(k as f64);
        tokio::time::sleep_until(at.into()).await;
        let (pool, lag) = (pool.clone(), lag.clone());
        sends.spawn(async move {
            let idle = pool.lock().expect("pool lock").pop();
            let mut sender = match idle {
                Some(s) => s,
                None => connect_http(addr).await?,
            };
            let sent = Instant::now();
            let _ = lag.send(sent.saturating_duration_since(at).as_nanos() as u64);
            let body = format!(
                r#"{{"seq":{k},"t":"{}","s":"{}"}}"#,
                clock.epoch(at),
                now_nanos()
            );
            crate::fanout::post_broadcast(&mut sender, addr, "custom:latency", body).await?;
            pool.lock().expect("pool lock").push(sender);
            anyhow::Ok(())
        });
        // Reap finished sends so errors surface during the run.
        while let Some(done) = sends.try_join_next() {
            done.context("publisher")??;
        }
    }
    while let Some(done) = sends.join_next().await {
        done.context("publisher")??;
    }
    Ok(())
}

async fn connect_http(addr: std::net::SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(server: &str, p99: f64, delivered: u64) -> Result {
        Result {
            shape: "topic".into(),
            server: server.into(),
            run: 1,
            publish_via: String::new(),
            rooms: 1,
            subscribers: 10,
            publishes_per_sec: 10.0,
            offered_deliveries_per_sec: 100.0,
            seconds: 1.0,
            expected: 100,
            delivered,
            p50_ms: 1.0,
            p99_ms: p99,
            p999_ms: p99,
            max_ms: p99,
            p99_from_send_ms: p99,
            send_lag_p99_ms: 0.1,
            send_lag_max_ms: 0.2,
            generator_lag_p99_ms: 0.1,
            generator_lag_max_ms: 0.2,
            server_cpu_ms: 1.0,
            server_cpu_ns_per_delivered: 1.0,
            generator_cpu_ms: 1.0,
        }
    }

    #[test]
    fn medians_are_per_server_and_report_the_worst_loss() {
        let runs = [
            result("floor", 1.0, 100),
            result("phx-rs", 5.0, 100),
            result("floor", 3.0, 100),
            result("phx-rs", 2.0, 90),
            result("phx-rs", 9.0, 100),
        ];
        let m = medians(&runs);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].server.as_str(), m[0].p99_ms), ("floor", 2.0));
        assert_eq!((m[1].server.as_str(), m[1].p99_ms), ("phx-rs", 5.0));
        assert_eq!(m[1].worst_missing, 10);
    }

    #[test]
    fn both_send_times_are_read_from_a_frame() {
        let frame = br#"[null,null,"room:latency1","new_msg",{"seq":3,"t":"1732400000123","s":"1732400000456","transport":"websocket"}]"#;
        assert_eq!(send_time(frame), Some(1_732_400_000_123));
        assert_eq!(field_nanos(frame, b"\"s\":\""), Some(1_732_400_000_456));
    }

    #[test]
    fn offered_load_counts_every_member_of_a_room() {
        let (publishes, deliveries) = Shape::Rooms {
            rooms: 100,
            per_room: 100,
            rate: 1.0,
            event: "new_msg",
        }
        .offered();
        assert_eq!((publishes, deliveries), (10_000.0, 1_000_000.0));
        // broadcast_from leaves the sender out.
        let (_, deliveries) = Shape::Rooms {
            rooms: 100,
            per_room: 100,
            rate: 1.0,
            event: "broadcast_from",
        }
        .offered();
        assert_eq!(deliveries, 990_000.0);
    }
}
