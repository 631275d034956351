//! Beside a Phoenix cluster: the message format of `Phoenix.PubSub.Redis`
//! (phoenix_pubsub_redis 3.x), spoken by the Redis adapter when it is given a
//! [`PhoenixPubSub`].
//!
//! Every node of a Phoenix app using that adapter publishes each broadcast on one Redis
//! channel, `phx:<adapter name>`, where the adapter name is the PubSub name with
//! `.Adapter` appended (`MyApp.PubSub` → `phx:Elixir.MyApp.PubSub.Adapter`), and every
//! node subscribes to it. A phx-rs node in Phoenix mode does the same:
//!
//! - **In.** It reads every message on that channel ([`message::read`]): a
//!   `%Phoenix.Socket.Broadcast{}` goes to this node's subscribers of its topic as a
//!   Phoenix node's dispatcher would hand it out, its payload written as Jason writes it
//!   ([`jason`]) or as a binary frame for `{:binary, data}`; a `"disconnect"` on a socket
//!   id closes those sockets. Anything else is counted in
//!   `phx_phoenix_pubsub_ignored_total{kind}` and logged once per kind.
//! - **Out.** A broadcast that starts on this node (a client's, a channel's, the server
//!   API's) is also published on that channel in Phoenix's format ([`message::write`]),
//!   so Phoenix nodes deliver it to their sockets, channels and LiveViews.
//!
//! phx-rs nodes keep talking to each other in their own envelope on their own channels
//! (presence replication included): the copy a phx-rs node publishes for the Phoenix
//! nodes is marked ([`message::PHX_RS_MARK`]) and skipped by every phx-rs node, so no
//! broadcast is delivered twice.

pub(crate) mod jason;
pub(crate) mod message;
pub(crate) mod not_encodable;
pub(crate) mod structs;
#[cfg(test)]
mod structs_tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use metrics::{counter, Counter};

use crate::etf::Limits;

use super::adapter::Inbound;
use super::wire;
use message::{Ignored, Read};

/// The default [`PhoenixPubSub::max_message_bytes`]: 1 MiB.
pub const DEFAULT_PHOENIX_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Erlang atoms hold at most 255 characters: node names are atoms, and so is
/// `Elixir.<PubSub name>.Adapter`.
const MAX_ATOM_CHARS: usize = 255;

/// The Phoenix mode of the Redis adapter: the settings that let a phx-rs node share
/// broadcasts with the nodes of a Phoenix app that uses `Phoenix.PubSub.Redis`.
///
/// On the Elixir side:
///
/// ```elixir
/// # application.ex
/// {Phoenix.PubSub,
///  name: MyApp.PubSub,
///  adapter: Phoenix.PubSub.Redis,
///  redis_opts: "redis://redis.internal:6379",
///  node_name: System.get_env("NODE")}
/// ```
///
/// and on the phx-rs side, the same Redis, the same PubSub name, a node name of its own:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use phx_server::cluster::{PhoenixPubSub, RedisAdapter};
///
/// let phoenix = PhoenixPubSub::new("MyApp.PubSub", "phx_rs@10.0.0.8")?.compression_level(0)?;
/// let redis = RedisAdapter::new("redis://redis.internal:6379", "my_app")?.phoenix(phoenix);
/// let endpoint = phx_server::Endpoint::builder().cluster(redis).build();
/// # let _ = endpoint;
/// # Ok(())
/// # }
/// ```
///
/// `docs/cluster.md` ("Beside a Phoenix cluster") says what a mixed cluster shares and
/// what it does not (presence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoenixPubSub {
    pubsub_name: String,
    node_name: String,
    compression_level: u32,
    max_message_bytes: usize,
}

/// Why [`PhoenixPubSub`] settings were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhoenixPubSubError {
    /// The PubSub name is empty, has spaces or control characters, or is too long for
    /// an Erlang atom once `.Adapter` is appended.
    #[error(
        "invalid Phoenix PubSub name {0:?}: give it as the Elixir app writes it \
         (`MyApp.PubSub`), at most {MAX_ATOM_CHARS} characters with `Elixir.` and `.Adapter`"
    )]
    PubSubName(String),
    /// The node name is empty, has spaces or control characters, is longer than an
    /// Erlang atom, or is `nonode@nohost` (which phoenix_pubsub_redis refuses too).
    #[error(
        "invalid Phoenix node name {0:?}: a unique name such as `phx_rs@10.0.0.8`, at \
         most {MAX_ATOM_CHARS} characters, not nonode@nohost"
    )]
    NodeName(String),
    /// A compression level outside 0–9.
    #[error("compression level {0} is not between 0 (none) and 9")]
    CompressionLevel(u32),
}

fn plain_text(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl PhoenixPubSub {
    /// Phoenix mode for the PubSub the Elixir app names `pubsub_name` (`MyApp.PubSub`,
    /// `Elixir.MyApp.PubSub`, or an atom such as `:my_pubsub`), this node known to the Phoenix nodes as `node_name`
    /// (unique among them; it is sent as an atom, and compared as text with the names
    /// Phoenix nodes send, atoms or binaries).
    pub fn new(pubsub_name: &str, node_name: &str) -> Result<Self, PhoenixPubSubError> {
        // As `Module.concat(name, "Adapter")` reads it: an alias (`MyApp.PubSub`) is the
        // atom `Elixir.MyApp.PubSub`; a plain atom (`:my_pubsub`) gets `Elixir.` put
        // before it all the same.
        let pubsub = pubsub_name.trim();
        let pubsub = pubsub.strip_prefix(':').unwrap_or(pubsub);
        let pubsub = pubsub.strip_prefix("Elixir.").unwrap_or(pubsub);
        let atom_chars = "Elixir.".len() + pubsub.chars().count() + ".Adapter".len();
        if !plain_text(pubsub) || atom_chars > MAX_ATOM_CHARS {
            return Err(PhoenixPubSubError::PubSubName(pubsub_name.to_owned()));
        }
        let node = node_name.trim();
        if !plain_text(node) || node.chars().count() > MAX_ATOM_CHARS || node == "nonode@nohost" {
            return Err(PhoenixPubSubError::NodeName(node_name.to_owned()));
        }
        Ok(Self {
            pubsub_name: pubsub.to_owned(),
            node_name: node.to_owned(),
            compression_level: 0,
            max_message_bytes: DEFAULT_PHOENIX_MAX_MESSAGE_BYTES,
        })
    }

    /// zlib level of the messages this node publishes, 0 (none, phoenix_pubsub_redis's
    /// default) to 9, like its `:compression_level`. Phoenix nodes read either; this node
    /// reads compressed and plain messages whatever its own level.
    pub fn compression_level(mut self, level: u32) -> Result<Self, PhoenixPubSubError> {
        if level > 9 {
            return Err(PhoenixPubSubError::CompressionLevel(level));
        }
        self.compression_level = level;
        Ok(self)
    }

    /// The largest message read from the Phoenix nodes, in bytes, as received and, for a
    /// compressed one, once inflated (default [`DEFAULT_PHOENIX_MAX_MESSAGE_BYTES`]).
    /// Larger ones are ignored (`kind="too_large"`) without being inflated; see
    /// SECURITY.md.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The Redis channel: `phx:Elixir.<PubSub name>.Adapter`, as phoenix_pubsub_redis
    /// names it (`"phx:#{adapter_name}"`, the adapter name being
    /// `Module.concat(pubsub_name, "Adapter")`).
    pub fn channel(&self) -> String {
        format!("phx:Elixir.{}.Adapter", self.pubsub_name)
    }

    /// The PubSub name, without any `Elixir.` prefix.
    pub fn pubsub_name(&self) -> &str {
        &self.pubsub_name
    }

    /// This node's name among the Phoenix nodes.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The compression level of published messages.
    pub fn level(&self) -> u32 {
        self.compression_level
    }
}

/// Phoenix mode at work inside the Redis adapter: converts, counts, logs.
#[derive(Debug)]
pub(crate) struct Bridge {
    options: PhoenixPubSub,
    channel: String,
    limits: Limits,
    counters: OnceLock<Counters>,
    /// One flag per [`Ignored`] kind: set once it was logged.
    logged: [AtomicBool; Ignored::ALL.len()],
}

#[derive(Debug)]
struct Counters {
    received: Counter,
    delivered: Counter,
    published: Counter,
    ignored: Vec<Counter>,
}

impl Bridge {
    pub(crate) fn new(options: PhoenixPubSub) -> Self {
        Self {
            channel: options.channel(),
            limits: Limits {
                max_bytes: options.max_message_bytes,
            },
            options,
            counters: OnceLock::new(),
            logged: Default::default(),
        }
    }

    /// The Redis channel Phoenix nodes publish on.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Makes the metric handles, once the endpoint installed its recorder.
    pub(crate) fn start(&self) {
        let _ = self.counters.set(Counters {
            received: counter!("phx_phoenix_pubsub_received_total"),
            delivered: counter!("phx_phoenix_pubsub_delivered_total"),
            published: counter!("phx_phoenix_pubsub_published_total"),
            ignored: Ignored::ALL
                .iter()
                .map(|kind| counter!("phx_phoenix_pubsub_ignored_total", "kind" => kind.label()))
                .collect(),
        });
        tracing::info!(
            channel = %self.channel,
            node = %self.options.node_name,
            "Phoenix.PubSub.Redis mode: broadcasts are shared with the Phoenix nodes of this channel"
        );
    }

    fn count(&self, pick: impl FnOnce(&Counters) -> &Counter) {
        if let Some(counters) = self.counters.get() {
            pick(counters).increment(1);
        }
    }

    fn ignore(&self, kind: Ignored, detail: &str) {
        let at = kind as usize;
        if let Some(counter) = self.counters.get().and_then(|c| c.ignored.get(at)) {
            counter.increment(1);
        }
        if self
            .logged
            .get(at)
            .is_none_or(|logged| logged.swap(true, Ordering::Relaxed))
        {
            return;
        }
        let expected = kind.expected();
        let kind = kind.label();
        if expected {
            tracing::debug!(kind, %detail, channel = %self.channel, "Phoenix PubSub message ignored (further ones of this kind are only counted)");
        } else {
            tracing::warn!(kind, %detail, channel = %self.channel, "Phoenix PubSub message ignored (further ones of this kind are only counted in phx_phoenix_pubsub_ignored_total)");
        }
    }

    /// A message from the Phoenix channel: delivered to this node's subscribers through
    /// `inbound`, or ignored and counted. `wanted` says whether a topic has local
    /// subscribers.
    pub(crate) fn incoming(
        &self,
        data: &[u8],
        inbound: &dyn Inbound,
        wanted: impl FnOnce(&str) -> bool,
    ) {
        self.count(|c| &c.received);
        match message::read(data, &self.options.node_name, &self.limits, wanted) {
            Read::Deliver(broadcast) => {
                self.count(|c| &c.delivered);
                inbound.foreign_broadcast(
                    &broadcast.topic,
                    &broadcast.event,
                    broadcast.payload,
                    broadcast.dispatch,
                );
            }
            Read::FromPhxRs | Read::NoSubscribers => {}
            Read::Ignored(kind, detail) => self.ignore(kind, &detail),
        }
    }

    /// The Phoenix form of a phx-rs envelope this node publishes, if it is a broadcast
    /// (presence replication stays among phx-rs nodes).
    pub(crate) fn outgoing(&self, envelope: &Bytes) -> Option<Bytes> {
        let broadcast = wire::decode_broadcast(envelope.clone()).ok()?;
        match message::write(
            &self.options.node_name,
            &broadcast.topic,
            &broadcast.event,
            broadcast.payload.as_ref(),
            self.options.compression_level,
        ) {
            Ok(bytes) => {
                self.count(|c| &c.published);
                Some(Bytes::from(bytes))
            }
            Err(error) => {
                self.ignore(Ignored::NotConvertible, &error.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use phx_protocol::Payload;

    use super::*;
    use crate::etf::Term;
    use crate::pubsub::adapter::Dispatch;

    /// Records what the bridge hands the node.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<(String, String, Dispatch)>>);

    impl Inbound for Recorded {
        fn topic_message(&self, _: &str, _: Bytes) {}
        fn control_message(&self, _: Bytes) {}
        fn link(&self, _: bool) {}
        fn foreign_broadcast(&self, topic: &str, event: &str, _: Payload, dispatch: Dispatch) {
            self.0
                .lock()
                .unwrap()
                .push((topic.to_owned(), event.to_owned(), dispatch));
        }
    }

    /// A writer for a tracing subscriber that keeps the text.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_bridge_delivers_counts_and_logs_each_ignored_kind_once() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let inbound = Recorded::default();
        let published = tracing::subscriber::with_default(subscriber, || {
            metrics::with_local_recorder(&recorder, || {
                let bridge = Bridge::new(PhoenixPubSub::new("MyApp.PubSub", "phx_rs@h").unwrap());
                bridge.start();
                for _ in 0..3 {
                    bridge.incoming(b"garbage", &inbound, |_| true);
                }
                let broadcast = crate::etf::encode(&Term::Tuple(vec![
                    Term::Int(3),
                    Term::atom("except"),
                    Term::atom("phx_app@h"),
                    Term::binary("room:1"),
                    Term::Map(vec![
                        (
                            Term::atom("__struct__"),
                            Term::atom("Elixir.Phoenix.Socket.Broadcast"),
                        ),
                        (Term::atom("event"), Term::binary("e")),
                        (Term::atom("payload"), Term::Map(vec![])),
                        (Term::atom("topic"), Term::binary("room:1")),
                    ]),
                    Term::atom(message::CHANNEL_SERVER),
                ]));
                bridge.incoming(&broadcast, &inbound, |_| true);
                let envelope =
                    wire::encode_broadcast(7, "room:1", "e", Payload::empty_object().as_ref());
                bridge.outgoing(&envelope)
            })
        });
        let published = published.expect("a broadcast is published for Phoenix");
        assert_eq!(published.get(1..8), Some(&message::PHX_RS_MARK[..]));
        assert_eq!(
            *inbound.0.lock().unwrap(),
            vec![("room:1".to_owned(), "e".to_owned(), Dispatch::Fastlane)]
        );
        let snapshot = snapshotter.snapshot().into_vec();
        let counter = |name: &str, kind: Option<&str>| {
            snapshot
                .iter()
                .find(|(key, ..)| {
                    key.key().name() == name
                        && kind.is_none_or(|k| key.key().labels().any(|l| l.value() == k))
                })
                .map(|(.., value)| match value {
                    DebugValue::Counter(n) => *n,
                    other => panic!("{name} is not a counter: {other:?}"),
                })
        };
        assert_eq!(counter("phx_phoenix_pubsub_received_total", None), Some(4));
        assert_eq!(counter("phx_phoenix_pubsub_delivered_total", None), Some(1));
        assert_eq!(counter("phx_phoenix_pubsub_published_total", None), Some(1));
        assert_eq!(
            counter("phx_phoenix_pubsub_ignored_total", Some("undecodable")),
            Some(3)
        );
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.matches("kind=\"undecodable\"").count(), 1, "{logs}");
    }

    #[test]
    fn the_channel_is_named_as_phoenix_pubsub_redis_names_it() {
        for name in ["MyApp.PubSub", "Elixir.MyApp.PubSub", " MyApp.PubSub "] {
            let options = PhoenixPubSub::new(name, "phx_rs@h").unwrap();
            assert_eq!(
                options.channel(),
                "phx:Elixir.MyApp.PubSub.Adapter",
                "{name}"
            );
        }
        // Module.concat(:my_pubsub, "Adapter") is :"Elixir.my_pubsub.Adapter".
        let options = PhoenixPubSub::new(":my_pubsub", "phx_rs@h").unwrap();
        assert_eq!(options.channel(), "phx:Elixir.my_pubsub.Adapter");
    }

    #[test]
    fn bad_names_and_levels_are_refused() {
        let long = "a".repeat(256);
        for name in ["", " ", "My App", "Elixir.", &long] {
            assert!(
                matches!(
                    PhoenixPubSub::new(name, "n@h"),
                    Err(PhoenixPubSubError::PubSubName(_))
                ),
                "{name:?}"
            );
        }
        for node in ["", "a b", "nonode@nohost", &long] {
            assert!(
                matches!(
                    PhoenixPubSub::new("P", node),
                    Err(PhoenixPubSubError::NodeName(_))
                ),
                "{node:?}"
            );
        }
        let options = PhoenixPubSub::new("P", "n@h").unwrap();
        assert_eq!(
            options.clone().compression_level(10),
            Err(PhoenixPubSubError::CompressionLevel(10))
        );
        assert_eq!(options.compression_level(9).unwrap().level(), 9);
    }
}
