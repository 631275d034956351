//! A database partition against the PostgreSQL store behind `TimeoutStore`: a TCP proxy
//! in front of PostgreSQL stops forwarding (packets accepted, nothing delivered, no
//! refusal), so a statement in flight gets no answer until the partition heals.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_app::store::{PostgresStore, Store, StoreError, TimeoutStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

mod support;
use support::TestDb;

/// The store timeout under test: shorter than the pool's own 2 s timeouts, so only the
/// decorator can be what answers.
const LIMIT: Duration = Duration::from_millis(1500);
/// Slack on every "answered within the timeout" bound (a noisy 2-core machine).
const SLACK: Duration = Duration::from_secs(5);

/// A TCP proxy to PostgreSQL that can be partitioned: while partitioned it reads
/// nothing and forwards nothing in either direction (the kernel still accepts bytes and
/// connections, as during a real partition where nothing is refused), and on healing it
/// delivers everything held, late, as TCP would after retransmitting.
struct PartitionProxy {
    addr: SocketAddr,
    partitioned: watch::Sender<bool>,
    /// Partition as soon as a client → server chunk containing these bytes arrives,
    /// holding that chunk: the statement is then in flight when the partition starts.
    trigger: Arc<Mutex<Option<Vec<u8>>>>,
}

impl PartitionProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (partitioned, _) = watch::channel(false);
        let trigger = Arc::new(Mutex::new(None::<Vec<u8>>));
        let (tx, tr) = (partitioned.clone(), trigger.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (tx, tr) = (tx.clone(), tr.clone());
                tokio::spawn(async move {
                    healed(&tx).await;
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, tx.clone(), Some(tr)),
                        pump(server_read, client_write, tx, None),
                    );
                });
            }
        });
        Self {
            addr,
            partitioned,
            trigger,
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').unwrap();
        let (_, path) = rest.split_once('/').unwrap();
        format!("{scheme_user}@{}/{path}", self.addr)
    }

    fn partition_when_sent(&self, marker: &[u8]) {
        *self.trigger.lock().unwrap() = Some(marker.to_vec());
    }

    fn is_partitioned(&self) -> bool {
        *self.partitioned.borrow()
    }

    fn heal(&self) {
        self.partitioned.send_replace(false);
    }
}

async fn healed(partitioned: &watch::Sender<bool>) {
    let mut rx = partitioned.subscribe();
    let _ = rx.wait_for(|p| !*p).await;
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    partitioned: watch::Sender<bool>,
    trigger: Option<Arc<Mutex<Option<Vec<u8>>>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        healed(&partitioned).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if let Some(trigger) = &trigger {
            let mut marker = trigger.lock().unwrap();
            if marker
                .as_ref()
                .is_some_and(|m| chunk.windows(m.len()).any(|w| w == m.as_slice()))
            {
                *marker = None;
                partitioned.send_replace(true);
            }
        }
        healed(&partitioned).await;
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn postgres_addr(url: &str) -> SocketAddr {
    let host_port = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(hp, _)| hp)
        .unwrap();
    host_port.parse().unwrap()
}

#[tokio::test]
async fn a_partition_mid_insert_answers_within_the_store_timeout_and_storing_resumes_after() {
    let db = TestDb::new().await;
    // Migrations straight to the database; the store under test goes through the proxy.
    let direct = PostgresStore::connect(&db.url(), 1).await.unwrap();
    let proxy = PartitionProxy::start(postgres_addr(&db.url())).await;
    let store = TimeoutStore::new(
        PostgresStore::connect_lazy(&proxy.url(&db.url()), 2).unwrap(),
        LIMIT,
    );
    store.ensure_room("lobby").await.unwrap();
    let before = store.insert("lobby", "ann", "before").await.unwrap();

    // The INSERT leaves, the partition starts before it reaches PostgreSQL.
    proxy.partition_when_sent(b"during-partition");
    let started = Instant::now();
    let during = tokio::time::timeout(
        Duration::from_secs(60),
        store.insert("lobby", "ann", "during-partition"),
    )
    .await
    .expect("the store call hung for as long as the partition lasted");
    let took = started.elapsed();
    assert!(
        proxy.is_partitioned(),
        "the partition hit the INSERT in flight"
    );
    assert!(
        matches!(during, Err(StoreError::TimedOut(l)) if l == LIMIT),
        "{during:?}"
    );
    assert!(took < LIMIT + SLACK, "answered after {took:?}");

    // While the partition lasts, further calls answer within the timeout too: the
    // pool's check of the connection that owes an answer does not hold them.
    for body in ["still-partitioned-1", "still-partitioned-2"] {
        let started = Instant::now();
        let again = store.insert("lobby", "ann", body).await;
        assert!(again.is_err(), "{again:?}");
        assert!(started.elapsed() < LIMIT + SLACK, "{:?}", started.elapsed());
    }

    proxy.heal();
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        match store.insert("lobby", "ann", "after").await {
            Ok(message) => break message,
            Err(error) if Instant::now() < deadline => {
                eprintln!("not yet healed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("storing did not resume after the partition: {error}"),
        }
    };
    assert!(after.id > before.id);
    // Reads through the proxy work again as well.
    assert!(store
        .recent("lobby", 50)
        .await
        .unwrap()
        .iter()
        .any(|m| m.id == after.id));

    let bodies: Vec<String> = direct
        .recent("lobby", 50)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    let count = |b: &str| bodies.iter().filter(|x| *x == b).count();
    assert_eq!(count("before"), 1, "{bodies:?}");
    assert!(count("after") >= 1, "{bodies:?}");
    // The timed-out INSERT was held, not lost: delivered when the partition healed, it
    // may have committed. What it must never be is stored twice.
    assert!(count("during-partition") <= 1, "{bodies:?}");
}
