//! The cluster boundary with an engine of our own: nodes in one process joined by an
//! in-memory bus that implements `phx_server::cluster::Adapter`. It shows the boundary is
//! enough for an engine other than Redis, and tests what PubSub and presence replication
//! do with it in milliseconds, with no Redis and no processes (the Redis adapter and real
//! nodes are tested in conformance-tests' cluster suite).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use phx_server::cluster::{Adapter, Inbound};
use phx_server::testing::{BroadcastProbe, TestSocket};
use phx_server::{Channel, ChannelContext, Endpoint, HandleResult, Payload, SocketConfig};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// What the bus carries to a node.
enum Delivery {
    Topic(String, Bytes),
    Control(Bytes),
}

struct Node {
    topics: HashSet<String>,
    to_node: mpsc::UnboundedSender<Delivery>,
    /// While set, nothing this node sends reaches anyone (a paused or cut-off node).
    muted: Arc<AtomicBool>,
}

/// Every node's subscriptions and inbox; topic messages go to every node subscribed,
/// the sender included (as Redis does: receivers drop their own).
#[derive(Default)]
struct Bus {
    nodes: Mutex<Vec<Node>>,
    /// `+topic` / `-topic` per node, in the order the adapters asked.
    log: Mutex<Vec<(usize, String)>>,
}

#[derive(Debug)]
struct BusAdapter {
    bus: Arc<BusHandle>,
    node: usize,
    muted: Arc<AtomicBool>,
    from_bus: Mutex<Option<mpsc::UnboundedReceiver<Delivery>>>,
}

/// `Bus` behind a `Debug` the adapter trait asks for.
struct BusHandle(Bus);

impl std::fmt::Debug for BusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bus")
    }
}

impl BusHandle {
    fn join(self: &Arc<Self>) -> BusAdapter {
        let (to_node, from_bus) = mpsc::unbounded_channel();
        let muted = Arc::new(AtomicBool::new(false));
        let mut nodes = self.0.nodes.lock().unwrap();
        nodes.push(Node {
            topics: HashSet::new(),
            to_node,
            muted: muted.clone(),
        });
        BusAdapter {
            bus: self.clone(),
            node: nodes.len() - 1,
            muted,
            from_bus: Mutex::new(Some(from_bus)),
        }
    }

    fn log(&self) -> Vec<(usize, String)> {
        self.0.log.lock().unwrap().clone()
    }

    fn mute(&self, node: usize, muted: bool) {
        self.0.nodes.lock().unwrap()[node]
            .muted
            .store(muted, Ordering::SeqCst);
    }
}

impl Adapter for BusAdapter {
    fn publish(&self, topic: &str, message: Bytes) {
        if self.muted.load(Ordering::SeqCst) {
            return;
        }
        for node in self.bus.0.nodes.lock().unwrap().iter() {
            if node.topics.contains(topic) {
                let _ = node
                    .to_node
                    .send(Delivery::Topic(topic.to_owned(), message.clone()));
            }
        }
    }

    fn subscribe(&self, topic: &str) {
        self.bus.0.nodes.lock().unwrap()[self.node]
            .topics
            .insert(topic.to_owned());
        self.bus
            .0
            .log
            .lock()
            .unwrap()
            .push((self.node, format!("+{topic}")));
    }

    fn unsubscribe(&self, topic: &str) {
        self.bus.0.nodes.lock().unwrap()[self.node]
            .topics
            .remove(topic);
        self.bus
            .0
            .log
            .lock()
            .unwrap()
            .push((self.node, format!("-{topic}")));
    }

    fn publish_control(&self, message: Bytes) {
        if self.muted.load(Ordering::SeqCst) {
            return;
        }
        for node in self.bus.0.nodes.lock().unwrap().iter() {
            let _ = node.to_node.send(Delivery::Control(message.clone()));
        }
    }

    fn start(&self, inbound: Arc<dyn Inbound>) {
        let mut from_bus = self.from_bus.lock().unwrap().take().expect("started once");
        let muted = self.muted.clone();
        tokio::spawn(async move {
            inbound.link(true);
            while let Some(delivery) = from_bus.recv().await {
                // A muted node hears nothing either (SIGSTOP stops both directions).
                if muted.load(Ordering::SeqCst) {
                    continue;
                }
                match delivery {
                    Delivery::Topic(topic, message) => inbound.topic_message(&topic, message),
                    Delivery::Control(message) => inbound.control_message(message),
                }
            }
        });
    }
}

/// Joins any `room:*` topic and tracks the `user` join param in presence.
struct Room;

impl Channel for Room {
    type Assigns = ();
    type Info = ();

    async fn join(
        &mut self,
        _: &str,
        params: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        let params: Value = params.parse().unwrap_or(Value::Null);
        if let Some(user) = params["user"].as_str() {
            ctx.presence()
                .track(user, json!({}))
                .map_err(|e| Payload::from(json!({ "reason": e.to_string() })))?;
        }
        Ok(Payload::empty_object())
    }

    async fn handle_in(
        &mut self,
        _: &str,
        _: Payload,
        _: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::NoReply
    }
}

/// A node on `bus` with a `/socket` mount for `Room`, heartbeating every 50 ms and
/// declaring a silent peer down after 600 ms.
fn node(bus: &Arc<BusHandle>) -> Endpoint {
    Endpoint::builder()
        .socket(
            "/socket",
            SocketConfig::new(phx_server::AcceptAll).channel("room:*", || Room),
        )
        .cluster(bus.join())
        .cluster_heartbeat(Duration::from_millis(50))
        .cluster_down_after(Duration::from_millis(600))
        .build()
}

/// The keys of `topic`'s presence list on `endpoint`.
fn keys(endpoint: &Endpoint, topic: &str) -> Vec<String> {
    let list: Value = endpoint
        .presence_list(topic)
        .parse()
        .expect("presence list is JSON");
    let mut keys: Vec<String> = list
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Waits (up to 10 s) until `topic`'s keys on `endpoint` are `want`.
async fn until_keys(endpoint: &Endpoint, topic: &str, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = keys(endpoint, topic);
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "presence on {topic} stayed {now:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_broadcast_reaches_other_nodes_and_its_own_node_once() {
    let bus = Arc::new(BusHandle(Bus::default()));
    let (a, b) = (node(&bus), node(&bus));
    let mut on_b = BroadcastProbe::subscribe(&b, "room:1");
    let mut on_a = TestSocket::connect(&a, "/socket", json!({}))
        .await
        .expect("connects");
    on_a.join("room:1", json!({})).await.expect("joins");

    a.broadcast("room:1", "news", json!({"n": 1}))
        .expect("broadcasts");
    assert_eq!(on_b.assert_broadcast("news").await, json!({"n": 1}));
    assert_eq!(on_a.assert_push("room:1", "news").await, json!({"n": 1}));
    // The bus echoed the broadcast back to node A too: A must drop its own.
    on_a.refute_push("room:1", "news", Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn a_node_subscribes_on_its_first_local_subscriber_and_unsubscribes_after_its_last() {
    let bus = Arc::new(BusHandle(Bus::default()));
    let b = node(&bus);
    let first = BroadcastProbe::subscribe(&b, "room:7");
    let second = BroadcastProbe::subscribe(&b, "room:7");
    assert_eq!(bus.log(), vec![(0, "+room:7".to_owned())]);
    drop(first);
    assert_eq!(
        bus.log(),
        vec![(0, "+room:7".to_owned())],
        "one subscriber left"
    );
    drop(second);
    assert_eq!(
        bus.log(),
        vec![(0, "+room:7".to_owned()), (0, "-room:7".to_owned())]
    );
}

#[tokio::test]
async fn presence_replicates_and_a_silent_node_leaves_then_comes_back() {
    let bus = Arc::new(BusHandle(Bus::default()));
    let (a, b) = (node(&bus), node(&bus));
    let mut alice = TestSocket::connect(&a, "/socket", json!({}))
        .await
        .expect("connects");
    alice
        .join("room:p", json!({"user": "alice"}))
        .await
        .expect("joins");
    let mut bob = TestSocket::connect(&b, "/socket", json!({}))
        .await
        .expect("connects");
    bob.join("room:p", json!({"user": "bob"}))
        .await
        .expect("joins");
    until_keys(&a, "room:p", &["alice", "bob"]).await;
    until_keys(&b, "room:p", &["alice", "bob"]).await;

    // Node A goes silent (as if paused): past the down period B drops its presences,
    // and A keeps its own.
    bus.mute(0, true);
    until_keys(&b, "room:p", &["bob"]).await;
    assert!(keys(&a, "room:p").contains(&"alice".to_owned()));

    // A speaks again: both lists converge on both nodes, without a restart.
    bus.mute(0, false);
    until_keys(&b, "room:p", &["alice", "bob"]).await;
    until_keys(&a, "room:p", &["alice", "bob"]).await;

    // A leave replicates too.
    alice.leave("room:p").await;
    until_keys(&b, "room:p", &["bob"]).await;
}
