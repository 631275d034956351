//! The Redis cluster adapter, on redis-rs (the `redis` crate, 1.x).
//!
//! Redis PUBLISH/SUBSCRIBE carries the messages: one Redis channel per topic
//! (`<prefix>:t:<topic>`), which a node subscribes to while it has local subscribers of the
//! topic, and one control channel (`<prefix>:control`) every node listens on. Redis
//! pub/sub is fire-and-forget: the presence layer numbers its messages to notice what
//! was lost and resynchronises.
//!
//! One task owns both connections (a subscriber connection and a command connection):
//! publishes are queued in a bounded queue and sent in order, batched into pipelines;
//! when Redis is unreachable the queue is drained and its messages dropped (counted),
//! the task reconnects with backoff, resubscribes every topic, and tells the node the
//! link is back (which resynchronises presence). Nothing grows while Redis is away.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::adapter::{Adapter, Inbound, Subscribed};
use super::phoenix::{Bridge, PhoenixPubSub};

/// Publishes waiting for the connection, at most; past it they are dropped (a node that
/// cannot reach Redis keeps serving its own sockets).
const QUEUE: usize = 65_536;
/// Messages sent in one pipeline.
const BATCH: usize = 512;
/// Channels per SUBSCRIBE command when (re)subscribing.
const SUBSCRIBE_BATCH: usize = 1_000;
/// How long one Redis command may take before the link counts as broken.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Ping period on an idle subscriber connection (finds half-open connections).
const PING_EVERY: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Confirmed {
    topics: HashSet<String>,
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
}

impl Shared {
    fn confirm<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut confirmed) = self.confirmed.lock() {
            for topic in topics {
                confirmed.topics.insert(topic.to_owned());
                // Dropping the senders wakes the waiters.
                confirmed.waiters.remove(topic);
            }
        }
    }
    fn unconfirm(&self, topic: &str) {
        if let Ok(mut confirmed) = self.confirmed.lock() {
            confirmed.topics.remove(topic);
            confirmed.waiters.remove(topic);
        }
    }
    /// The link dropped: nothing is confirmed, nobody waits.
    fn unconfirm_all(&self) {
        if let Ok(mut confirmed) = self.confirmed.lock() {
            *confirmed = Confirmed::default();
        }
    }
}

enum Command {
    Publish(String, Bytes),
    Subscribe(String),
    Unsubscribe(String),
}

struct Shared {
    client: redis::Client,
    /// The address, password masked, for logs.
    address: String,
    prefix: String,
    /// Topics with local subscribers: the truth the subscriber connection follows.
    wanted: Mutex<HashSet<String>>,
    /// Which wanted topics Redis confirmed on the current connection, and the joins
    /// waiting for a confirmation (at most one waiter per join in progress; all woken
    /// when the link drops).
    confirmed: Mutex<Confirmed>,
    commands: mpsc::Sender<Command>,
    queue: Mutex<Option<mpsc::Receiver<Command>>>,
    dropped: AtomicU64,
    up: AtomicBool,
    /// Phoenix mode, when set (see [`RedisAdapter::phoenix`]).
    phoenix: OnceLock<Bridge>,
}

/// A cluster adapter on Redis pub/sub (see the module docs).
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use phx_server::cluster::RedisAdapter;
/// use phx_server::Endpoint;
/// let redis = RedisAdapter::new("redis://127.0.0.1:6379", "my_app")?;
/// let endpoint = Endpoint::builder().cluster(redis).build();
/// # let _ = endpoint;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisAdapter {
    shared: Arc<Shared>,
}

impl fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("address", &self.shared.address)
            .field("prefix", &self.shared.prefix)
            .field("up", &self.shared.up.load(Ordering::Relaxed))
            .finish()
    }
}

/// Why a Redis adapter could not be made.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL {url:?}: {reason}")]
pub struct RedisUrlError {
    url: String,
    reason: String,
}

impl RedisAdapter {
    /// An adapter for the Redis at `url` (`redis://[:password@]host:port[/db]`). Nodes of
    /// one application share a `prefix` (several applications can share one Redis with
    /// different prefixes). Nothing connects until the endpoint is built.
    pub fn new(url: &str, prefix: &str) -> Result<Self, RedisUrlError> {
        let address = mask(url);
        let client = redis::Client::open(url).map_err(|error| RedisUrlError {
            url: address.clone(),
            reason: error.to_string(),
        })?;
        let (commands, queue) = mpsc::channel(QUEUE);
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                address,
                prefix: prefix.to_owned(),
                wanted: Mutex::new(HashSet::new()),
                confirmed: Mutex::new(Confirmed::default()),
                commands,
                queue: Mutex::new(Some(queue)),
                dropped: AtomicU64::new(0),
                up: AtomicBool::new(false),
                phoenix: OnceLock::new(),
            }),
        })
    }

    /// Phoenix mode: this node also shares broadcasts with the nodes of a Phoenix app
    /// that uses `Phoenix.PubSub.Redis` on the same Redis (see [`PhoenixPubSub`] and
    /// `docs/cluster.md`, "Beside a Phoenix cluster"). Set it before the endpoint is
    /// built; a second call is ignored.
    pub fn phoenix(self, options: PhoenixPubSub) -> Self {
        let _ = self.shared.phoenix.set(Bridge::new(options));
        self
    }

    /// Whether the link to Redis is up now.
    pub fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::Relaxed)
    }

    /// Messages dropped so far because Redis was unreachable.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, command: Command) {
        if self.shared.commands.try_send(command).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The URL with its password replaced by `***`.
fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl Shared {
    fn topic_channel(&self, topic: &str) -> String {
        format!("{}:t:{topic}", self.prefix)
    }
    fn control_channel(&self) -> String {
        format!("{}:control", self.prefix)
    }
}

impl Adapter for RedisAdapter {
    fn publish(&self, topic: &str, message: Bytes) {
        if let Some(bridge) = self.shared.phoenix.get() {
            if let Some(phoenix) = bridge.outgoing(&message) {
                self.send(Command::Publish(bridge.channel().to_owned(), phoenix));
            }
        }
        self.send(Command::Publish(self.shared.topic_channel(topic), message));
    }

    fn subscribe(&self, topic: &str) {
        let new = match self.shared.wanted.lock() {
            Ok(mut wanted) => wanted.insert(topic.to_owned()),
            Err(_) => false,
        };
        if new {
            self.send(Command::Subscribe(topic.to_owned()));
        }
    }

    fn subscribed(&self, topic: &str) -> Option<Subscribed> {
        if !self.is_up() {
            return None;
        }
        let mut confirmed = self.shared.confirmed.lock().ok()?;
        if confirmed.topics.contains(topic) {
            return None;
        }
        let (tx, rx) = oneshot::channel::<()>();
        confirmed
            .waiters
            .entry(topic.to_owned())
            .or_default()
            .push(tx);
        Some(Box::pin(async move {
            let _ = rx.await;
        }))
    }

    fn unsubscribe(&self, topic: &str) {
        let gone = match self.shared.wanted.lock() {
            Ok(mut wanted) => wanted.remove(topic),
            Err(_) => false,
        };
        if gone {
            self.shared.unconfirm(topic);
            self.send(Command::Unsubscribe(topic.to_owned()));
        }
    }

    fn publish_control(&self, message: Bytes) {
        self.send(Command::Publish(self.shared.control_channel(), message));
    }

    fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::Relaxed)
    }

    fn start(&self, inbound: Arc<dyn Inbound>) {
        let queue = self.shared.queue.lock().ok().and_then(|mut q| q.take());
        let Some(queue) = queue else {
            tracing::error!("a Redis adapter can serve one endpoint only");
            return;
        };
        if let Some(bridge) = self.shared.phoenix.get() {
            bridge.start();
        }
        tokio::spawn(run(self.shared.clone(), queue, inbound));
    }
}

/// The adapter's task: connect, serve, reconnect.
async fn run(shared: Arc<Shared>, mut queue: mpsc::Receiver<Command>, inbound: Arc<dyn Inbound>) {
    let mut backoff = BACKOFF_MIN;
    let mut last_error: Option<String> = None;
    loop {
        match serve(&shared, &mut queue, &inbound).await {
            Served::Closed => return,
            Served::LinkLost(error) => {
                tracing::warn!(redis = %shared.address, %error, "cluster link to Redis lost; local sockets keep working, reconnecting");
                last_error = Some(error);
                backoff = BACKOFF_MIN;
            }
            Served::NoConnection(error) => {
                if last_error.as_deref() != Some(error.as_str()) {
                    tracing::warn!(redis = %shared.address, %error, "cannot reach Redis for the cluster link; retrying with backoff");
                    last_error = Some(error);
                }
            }
        }
        // Down: drop what would be published, keep retrying.
        let deadline = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                command = queue.recv() => match command {
                    None => return,
                    Some(Command::Publish(..)) => {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    // The wanted set is the truth; it is replayed on reconnect.
                    Some(_) => {}
                },
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

enum Served {
    /// The endpoint is gone.
    Closed,
    /// Could not connect.
    NoConnection(String),
    /// Was connected, then lost the link.
    LinkLost(String),
}

async fn serve(
    shared: &Shared,
    queue: &mut mpsc::Receiver<Command>,
    inbound: &Arc<dyn Inbound>,
) -> Served {
    let connect = async {
        let pubsub = shared.client.get_async_pubsub().await?;
        let commands = command_connection(&shared.client).await?;
        Ok::<_, redis::RedisError>((pubsub, commands))
    };
    let (pubsub, mut commands) = match tokio::time::timeout(COMMAND_TIMEOUT, connect).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(error)) => return Served::NoConnection(error.to_string()),
        Err(_) => return Served::NoConnection("connection timed out".to_owned()),
    };
    let (mut sink, mut stream) = pubsub.split();
    // Subscribe to the control channel and every wanted topic, in batches.
    let mut channels = vec![shared.control_channel()];
    let phoenix = shared.phoenix.get();
    if let Some(bridge) = phoenix {
        channels.push(bridge.channel().to_owned());
    }
    let topics: Vec<String> = match shared.wanted.lock() {
        Ok(wanted) => wanted.iter().cloned().collect(),
        Err(_) => Vec::new(),
    };
    channels.extend(topics.iter().map(|t| shared.topic_channel(t)));
    for chunk in channels.chunks(SUBSCRIBE_BATCH) {
        match tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Served::NoConnection(error.to_string()),
            Err(_) => return Served::NoConnection("SUBSCRIBE timed out".to_owned()),
        }
    }
    shared.confirm(topics.iter().map(String::as_str));
    shared.up.store(true, Ordering::Relaxed);
    tracing::info!(redis = %shared.address, topics = topics.len(), "cluster link to Redis up");
    inbound.link(true);
    let control = shared.control_channel();
    let topic_prefix = format!("{}:t:", shared.prefix);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let lost = loop {
        tokio::select! {
            command = queue.recv() => {
                let Some(command) = command else {
                    shared.up.store(false, Ordering::Relaxed);
                    return Served::Closed;
                };
                let mut batch = vec![command];
                while batch.len() < BATCH {
                    match queue.try_recv() {
                        Ok(command) => batch.push(command),
                        Err(_) => break,
                    }
                }
                if let Err(error) = execute(shared, &mut sink, &mut commands, batch).await {
                    break error;
                }
            }
            message = stream.next() => {
                let Some(message) = message else {
                    break "the subscriber connection closed".to_owned();
                };
                let channel = message.get_channel_name();
                let payload = Bytes::copy_from_slice(message.get_payload_bytes());
                if channel == control {
                    inbound.control_message(payload);
                } else if let Some(bridge) = phoenix.filter(|b| b.channel() == channel) {
                    bridge.incoming(&payload, inbound.as_ref(), |topic| {
                        shared.wanted.lock().is_ok_and(|wanted| wanted.contains(topic))
                    });
                } else if let Some(topic) = channel.strip_prefix(&topic_prefix) {
                    inbound.topic_message(topic, payload);
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => break error.to_string(),
                    Err(_) => break "PING timed out".to_owned(),
                }
            }
        }
    };
    shared.up.store(false, Ordering::Relaxed);
    shared.unconfirm_all();
    inbound.link(false);
    Served::LinkLost(lost)
}

/// The connection publishes go on. Its replies may take up to [`COMMAND_TIMEOUT`], like
/// every other command here: redis-rs' own default (500 ms) would count a pipeline that a
/// busy node or a busy Redis answers in 0.6 s as a lost link, which drops every queued
/// message and makes every node resynchronise presence.
async fn command_connection(
    client: &redis::Client,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Sends a batch in order: publishes pipelined on the command connection, subscription
/// changes on the subscriber connection, following the wanted set.
async fn execute(
    shared: &Shared,
    sink: &mut redis::aio::PubSubSink,
    commands: &mut redis::aio::MultiplexedConnection,
    batch: Vec<Command>,
) -> Result<(), String> {
    let mut pipe = redis::pipe();
    let mut publishes = 0;
    let mut subscribe = Vec::new();
    let mut unsubscribe = Vec::new();
    for command in batch {
        match command {
            Command::Publish(channel, message) => {
                pipe.cmd("PUBLISH")
                    .arg(channel)
                    .arg(message.as_ref())
                    .ignore();
                publishes += 1;
            }
            Command::Subscribe(topic) => subscribe.push(topic),
            Command::Unsubscribe(topic) => unsubscribe.push(topic),
        }
    }
    if publishes > 0 {
        match tokio::time::timeout(COMMAND_TIMEOUT, pipe.exec_async(commands)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err("PUBLISH timed out".to_owned()),
        }
    }
    // Follow the wanted set, whatever order the commands came in.
    let (on, off): (Vec<String>, Vec<String>) = match shared.wanted.lock() {
        Ok(wanted) => (
            subscribe
                .into_iter()
                .filter(|t| wanted.contains(t))
                .collect(),
            unsubscribe
                .into_iter()
                .filter(|t| !wanted.contains(t))
                .map(|t| shared.topic_channel(&t))
                .collect(),
        ),
        Err(_) => (Vec::new(), Vec::new()),
    };
    if !on.is_empty() {
        let channels: Vec<String> = on.iter().map(|t| shared.topic_channel(t)).collect();
        // redis-rs returns once Redis acknowledged the SUBSCRIBE.
        match tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(&channels)).await {
            Ok(Ok(())) => shared.confirm(on.iter().map(String::as_str)),
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err("SUBSCRIBE timed out".to_owned()),
        }
    }
    if !off.is_empty() {
        match tokio::time::timeout(COMMAND_TIMEOUT, sink.unsubscribe(&off)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err("UNSUBSCRIBE timed out".to_owned()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            mask("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            mask("redis://user:s3cret@host:1"),
            "redis://user:***@host:1"
        );
        assert_eq!(mask("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn a_bad_url_is_a_typed_error_naming_it() {
        let error = RedisAdapter::new("http://nope", "app").unwrap_err();
        assert!(error.to_string().contains("http://nope"), "{error}");
    }

    /// A stand-in Redis that answers every command, PUBLISH `delay` late.
    async fn slow_redis(delay: Duration) -> std::net::SocketAddr {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    let mut line = String::new();
                    // Commands are RESP arrays of bulk strings: *N, then N × ($len, bytes).
                    loop {
                        line.clear();
                        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let count: usize = line.trim_start_matches('*').trim().parse().unwrap();
                        let mut args = Vec::new();
                        for _ in 0..count {
                            line.clear();
                            read.read_line(&mut line).await.unwrap();
                            let len: usize = line.trim_start_matches('$').trim().parse().unwrap();
                            let mut arg = vec![0; len + 2];
                            read.read_exact(&mut arg).await.unwrap();
                            arg.truncate(len);
                            args.push(arg);
                        }
                        let reply: &[u8] = if args[0].eq_ignore_ascii_case(b"PUBLISH") {
                            tokio::time::sleep(delay).await;
                            b":0\r\n"
                        } else {
                            b"+OK\r\n"
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_publish_answered_in_a_second_is_no_lost_link() {
        // Slower than redis-rs' default response timeout (500 ms), well inside ours.
        let addr = slow_redis(Duration::from_millis(1_000)).await;
        let client = redis::Client::open(format!("redis://{addr}")).unwrap();
        let mut commands = command_connection(&client).await.unwrap();
        let mut pipe = redis::pipe();
        pipe.cmd("PUBLISH").arg("app:t:room").arg("hi").ignore();
        pipe.exec_async(&mut commands)
            .await
            .expect("a slow reply within COMMAND_TIMEOUT is not an error");
    }
}
