//! Live long-poll sessions are capped, globally and per client address, and the memory
//! a burst of sessions took comes back once they expire.
//!
//! Alone in its file: it measures this process's memory (see tests/memory).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use phx_server::{Connect, ConnectInfo, Connected, Endpoint, Params, Refusal, SocketConfig};
use tokio::sync::watch;

mod longpoll_client;
mod memory;
use longpoll_client::{Answer, Client, TIMEOUT};
use memory::{live_heap_bytes, mib, rss_bytes, Peaks, MIB};

const MAX_SESSIONS: usize = 400;
const MAX_PER_ADDRESS: usize = 150;
/// Short, so that sessions expire within 0.3–0.6 s of their last poll (§7.5).
const WINDOW: Duration = Duration::from_millis(200);

/// Holds every connect until the gate opens, so the test decides how long sessions
/// hold their slots instead of racing their expiry.
struct Gate(watch::Receiver<bool>);

impl Connect for Gate {
    type Assigns = ();

    async fn connect(
        &self,
        _params: &Params,
        _info: &ConnectInfo,
    ) -> Result<Connected<()>, Refusal> {
        let mut open = self.0.clone();
        let _ = open.wait_for(|open| *open).await;
        Ok(Connected::default())
    }
}

fn loopback(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

#[derive(Default)]
struct Tally {
    opened: AtomicUsize,
    endpoint_full: AtomicUsize,
    address_full: AtomicUsize,
}

impl Tally {
    /// Counts an answer to a token-less GET. A refusal carries its status in the HTTP
    /// status line and no JSON body: phoenix.js stalls for good on a JSON status it does
    /// not know, and reconnects with backoff on a body that is not JSON.
    fn count(&self, answer: &Answer) {
        let status = answer.status();
        if matches!(status, 503 | 429) {
            assert_eq!(u64::from(answer.http), status);
            assert!(
                answer.body.is_none(),
                "a JSON body on a refusal: {:?}",
                answer.body
            );
        }
        let counter = match status {
            410 => &self.opened,
            503 => &self.endpoint_full,
            429 => &self.address_full,
            other => panic!("unexpected long-poll status {other}"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    fn refused(&self) -> usize {
        self.endpoint_full.load(Ordering::Relaxed) + self.address_full.load(Ordering::Relaxed)
    }
}

/// `n` token-less GETs from `source`, each on its own connection, all at once; returns
/// their tasks (those admitted wait in the gated connect).
fn open_sessions(
    port: u16,
    source: Ipv4Addr,
    n: usize,
    tally: &Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let tally = tally.clone();
            tokio::spawn(async move {
                let answer = Client::connect(source, port).await.get(None).await;
                tally.count(&answer);
            })
        })
        .collect()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(TIMEOUT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

/// Polls the live session count until `stop`, returning the highest value seen.
fn watch_count(endpoint: Endpoint, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut highest = 0;
        while !stop.load(Ordering::Relaxed) {
            highest = highest.max(endpoint.longpoll_session_count());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        highest
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_caps_hold_under_a_burst_and_memory_comes_back() {
    let (gate, gated) = watch::channel(false);
    let endpoint = Endpoint::builder()
        .longpoll_max_sessions(MAX_SESSIONS)
        .longpoll_max_sessions_per_address(MAX_PER_ADDRESS)
        .socket(
            "/socket",
            SocketConfig::new(Gate(gated)).longpoll_window(WINDOW),
        )
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = endpoint.clone();
    tokio::spawn(async move { serving.serve(listener).await });

    let stop = Arc::new(AtomicBool::new(false));
    let highest = watch_count(endpoint.clone(), stop.clone());
    let rss_start = rss_bytes();
    let live_heap_start = live_heap_bytes();

    // 1. One address asks for more than its share: the surplus is answered 429.
    let tally = Arc::new(Tally::default());
    let extra = 20;
    let mut tasks = open_sessions(port, loopback(2), MAX_PER_ADDRESS + extra, &tally);
    wait_until("the first address holds its share", || {
        endpoint.longpoll_session_count() == MAX_PER_ADDRESS && tally.refused() == extra
    })
    .await;
    assert_eq!(tally.address_full.load(Ordering::Relaxed), extra);

    // 2. Four more addresses, together asking for far more than is left: the endpoint
    // fills up and the rest is answered 503 (or 429 for an address at its share).
    let asked = 4 * (MAX_PER_ADDRESS + extra);
    for n in 3..7 {
        tasks.extend(open_sessions(
            port,
            loopback(n),
            MAX_PER_ADDRESS + extra,
            &tally,
        ));
    }
    let total = MAX_PER_ADDRESS + extra + asked;
    wait_until("every surplus request is refused", || {
        tally.refused() == total - MAX_SESSIONS
    })
    .await;
    assert_eq!(endpoint.longpoll_session_count(), MAX_SESSIONS);
    assert!(
        tally.endpoint_full.load(Ordering::Relaxed) > 0,
        "no 503 seen"
    );

    // 3. Open the gate: the admitted GETs get their sessions, and the sessions expire.
    gate.send_replace(true);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(tally.opened.load(Ordering::Relaxed), MAX_SESSIONS);
    wait_until("the gated sessions expired", || {
        endpoint.longpoll_session_count() == 0
    })
    .await;

    // 4. Two bursts as fast as the clients go, every request asking for a new session.
    let peaks = Arc::new(Peaks::default());
    let sampler = {
        let (stop, peaks) = (stop.clone(), peaks.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peaks.sample();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let first = burst(&endpoint, port).await;
    let rss_after_first = settled_rss(&endpoint).await;
    let second = burst(&endpoint, port).await;
    let rss_after_second = settled_rss(&endpoint).await;
    let live_heap_end = settled_live_heap(live_heap_start).await;
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let highest = highest.await.unwrap();

    eprintln!(
        "long-poll session bursts of {BURST} requests each (caps {MAX_SESSIONS} and \
         {MAX_PER_ADDRESS} per address): opened {}+{}, refused {}+{} (503 {}+{}, 429 {}+{}), \
         at most {highest} live; live heap start {:.2} MiB, peak {:.2} MiB, end {:.2} MiB; \
         RSS start {:.1} MiB, peak {:.1} MiB, after the first burst {:.1} MiB, after the \
         second {:.1} MiB",
        first.opened.load(Ordering::Relaxed),
        second.opened.load(Ordering::Relaxed),
        first.refused(),
        second.refused(),
        first.endpoint_full.load(Ordering::Relaxed),
        second.endpoint_full.load(Ordering::Relaxed),
        first.address_full.load(Ordering::Relaxed),
        second.address_full.load(Ordering::Relaxed),
        mib(live_heap_start),
        mib(peaks.live_heap()),
        mib(live_heap_end),
        mib(rss_start),
        mib(peaks.rss()),
        mib(rss_after_first),
        mib(rss_after_second),
    );
    assert!(
        highest <= MAX_SESSIONS,
        "{highest} live sessions, over the cap of {MAX_SESSIONS}"
    );
    assert!(
        first.refused() + second.refused() > 0,
        "the bursts never reached the cap"
    );
    // The server gave back every byte the sessions took.
    assert!(
        live_heap_end <= live_heap_start + LIVE_HEAP_SLACK,
        "live heap {:.2} MiB at the start, {:.2} MiB after the sessions expired",
        mib(live_heap_start),
        mib(live_heap_end)
    );
    assert!(
        peaks.live_heap() < live_heap_start + PEAK_SLACK,
        "live heap peaked at {:.1} MiB",
        mib(peaks.live_heap())
    );
    // The machine's view: bounded, and the second burst reuses what the first left in
    // the allocator instead of adding to it (glibc keeps freed memory in its arenas).
    assert!(
        peaks.rss() < rss_start + PEAK_SLACK,
        "RSS grew from {:.1} MiB to {:.1} MiB",
        mib(rss_start),
        mib(peaks.rss())
    );
    assert!(
        rss_after_second <= rss_after_first + REUSE_SLACK,
        "RSS {:.1} MiB after the first burst, {:.1} MiB after the second",
        mib(rss_after_first),
        mib(rss_after_second)
    );
}

/// Requests in each burst.
const BURST: usize = 10_000;
/// Growth allowed while sessions live: at most 400 sessions of ~5 KB each plus 1 000
/// waiting connections and the clients' own buffers. Uncapped, the gated phase alone
/// would hold 850 sessions and the bursts whatever their rate allows.
const PEAK_SLACK: u64 = 64 * MIB;
/// Live heap allowed above the start once every session expired.
const LIVE_HEAP_SLACK: u64 = MIB;
/// RSS a second, identical burst may add to the first.
const REUSE_SLACK: u64 = 8 * MIB;

/// `BURST` token-less GETs from 8 addresses, 4 keep-alive connections each, as fast as
/// they go; returns once all were answered.
async fn burst(endpoint: &Endpoint, port: u16) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let sent = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for n in 10..18 {
        for _ in 0..4 {
            let (tally, sent) = (tally.clone(), sent.clone());
            workers.push(tokio::spawn(async move {
                let mut client = Client::connect(loopback(n), port).await;
                while sent.fetch_add(1, Ordering::Relaxed) < BURST {
                    tally.count(&client.get(None).await);
                }
            }));
        }
    }
    for worker in workers {
        worker.await.unwrap();
    }
    wait_until("the burst's sessions expired", || {
        endpoint.longpoll_session_count() == 0
    })
    .await;
    tally
}

/// RSS once the last sessions' tasks are gone (their slots go first).
async fn settled_rss(endpoint: &Endpoint) -> u64 {
    assert_eq!(endpoint.longpoll_session_count(), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    rss_bytes()
}

/// The live heap, once it came back within the slack of `start` (closing connections
/// free their buffers a moment after the last answer), or after the timeout.
async fn settled_live_heap(start: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = live_heap_bytes();
        if now <= start + LIVE_HEAP_SLACK || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
