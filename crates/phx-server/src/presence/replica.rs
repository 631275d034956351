//! Presence across nodes, in the manner of Phoenix.Tracker.
//!
//! Each node owns the presences of its own sockets. Its changes travel to the other nodes
//! as numbered deltas on the cluster's control channel; every node applies them to its
//! view and sends its own local `presence_diff`s, so each node's `presence_state` lists
//! everyone once replication caught up.
//!
//! - **Heartbeats** every `heartbeat` (1.5 s by default) carry the node's last delta
//!   number. A node silent for `down_after` (5 s here; Phoenix's is 30 s) is declared
//!   down: its presences leave, and clients see ordinary leave diffs.
//! - **Gaps.** The engine may lose messages (Redis pub/sub is fire-and-forget). A delta or
//!   heartbeat whose number is not the next expected one makes the receiver ask that
//!   node for its whole state, which replaces the receiver's view of it (the difference
//!   goes out as diffs). So nodes never disagree for longer than a heartbeat or two.
//! - **Joining.** A node that comes up, or whose link comes back, asks every node for its
//!   state and sends its own; a node heard of for the first time is asked too. A node
//!   that was paused past `down_after` is a stranger when it speaks again, and its
//!   presences come back the same way.
//!
//! Messages (after the [`wire`](crate::pubsub::wire) header, kinds 2–5):
//!
//! ```text
//! heartbeat:      seq:u64 | name:str16
//! delta:          seq:u64 | count:u32 | change*
//! state request:  target:u64 (0: every node)
//! state:          seq:u64 | name:str16 | count:u32 | join*
//! change:         op:u8 (1 join, 2 leave) | topic:str16 | key:str16 | phx_ref:str16 | meta:bytes32 (joins)
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::pubsub::adapter::Adapter;
use crate::pubsub::wire::{kind, Reader, WireError, Writer};
use crate::pubsub::PubSub;

/// Replication settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplicaPolicy {
    pub(crate) heartbeat: Duration,
    pub(crate) down_after: Duration,
}

/// One presence change, as it travels to other nodes.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    Join {
        topic: String,
        key: String,
        phx_ref: String,
        meta: Box<RawValue>,
    },
    Leave {
        topic: String,
        key: String,
        phx_ref: String,
    },
}

impl Change {
    pub(crate) fn join(topic: &str, key: &str, phx_ref: &str, meta: &RawValue) -> Self {
        Self::Join {
            topic: topic.to_owned(),
            key: key.to_owned(),
            phx_ref: phx_ref.to_owned(),
            meta: meta.to_owned(),
        }
    }
    pub(crate) fn leave(topic: &str, key: &str, phx_ref: &str) -> Self {
        Self::Leave {
            topic: topic.to_owned(),
            key: key.to_owned(),
            phx_ref: phx_ref.to_owned(),
        }
    }
}

const OP_JOIN: u8 = 1;
const OP_LEAVE: u8 = 2;

fn write_changes(writer: &mut Writer, changes: &[Change]) {
    writer.u32(u32::try_from(changes.len()).unwrap_or(u32::MAX));
    for change in changes {
        match change {
            Change::Join {
                topic,
                key,
                phx_ref,
                meta,
            } => {
                writer.u8(OP_JOIN).str16(topic).str16(key).str16(phx_ref);
                writer.bytes32(meta.get().as_bytes());
            }
            Change::Leave {
                topic,
                key,
                phx_ref,
            } => {
                writer.u8(OP_LEAVE).str16(topic).str16(key).str16(phx_ref);
            }
        }
    }
}

fn read_changes(reader: &mut Reader) -> Result<Vec<Change>, WireError> {
    let count = reader.u32()? as usize;
    // Each change takes at least 7 bytes: a count beyond that is a lie, not a reason
    // to allocate.
    let mut changes = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let op = reader.u8()?;
        let (topic, key, phx_ref) = (reader.str16()?, reader.str16()?, reader.str16()?);
        changes.push(match op {
            OP_JOIN => {
                let meta = reader.bytes32()?;
                let text = String::from_utf8(meta.to_vec()).map_err(|_| WireError::NotUtf8)?;
                Change::Join {
                    topic,
                    key,
                    phx_ref,
                    meta: RawValue::from_string(text).map_err(|_| WireError::NotJson)?,
                }
            }
            OP_LEAVE => Change::Leave {
                topic,
                key,
                phx_ref,
            },
            other => return Err(WireError::Kind(other)),
        });
    }
    Ok(changes)
}

/// What this node knows of another.
#[derive(Debug)]
struct RemoteNode {
    name: String,
    /// The last delta number applied.
    seq: u64,
    last_seen: Instant,
    /// Its presences in this node's view: phx_ref → (topic, key).
    presences: HashMap<String, (String, String)>,
    /// When this node last asked it for its state (asks at most once a heartbeat).
    asked_at: Option<Instant>,
}

/// What replication needs from the tracker it replicates: this node's own presences, and
/// its view of the other nodes' presences, which it changes as their deltas and states
/// arrive (each change goes out to this node's sockets as a `presence_diff`). The
/// tracker implements it; replication never names the tracker, so imports point one way.
pub(crate) trait Replicated {
    /// Every presence this node owns, as joins.
    fn local_entries(&self) -> Vec<Change>;
    /// Adds a presence `node` owns; `false` if it is already there.
    fn insert_remote(
        &self,
        pubsub: &PubSub,
        node: u64,
        topic: &str,
        key: &str,
        phx_ref: &str,
        meta: Box<RawValue>,
    ) -> bool;
    /// Removes a presence `node` owned; `false` if it was not there.
    fn remove_remote(
        &self,
        pubsub: &PubSub,
        node: u64,
        topic: &str,
        key: &str,
        phx_ref: &str,
    ) -> bool;
}

/// A tracker's replication (see the module docs).
#[derive(Debug)]
pub(crate) struct Cluster {
    adapter: Arc<dyn Adapter>,
    node: u64,
    name: String,
    policy: ReplicaPolicy,
    /// The last delta number sent; held while publishing so numbers go out in order.
    seq: Mutex<u64>,
    remotes: Mutex<HashMap<u64, RemoteNode>>,
    /// When the last heartbeat tick ran: a tick far later than the previous one means
    /// this node itself was stalled (SIGSTOP, a suspended VM), not that the others fell
    /// silent.
    last_tick: Mutex<Option<Instant>>,
}

impl Cluster {
    pub(crate) fn new(
        adapter: Arc<dyn Adapter>,
        node: u64,
        name: String,
        policy: ReplicaPolicy,
    ) -> Self {
        Self {
            adapter,
            node,
            name,
            policy,
            seq: Mutex::new(0),
            remotes: Mutex::new(HashMap::new()),
            last_tick: Mutex::new(None),
        }
    }

    /// Sends this node's changes, numbered.
    pub(crate) fn publish_delta(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let Ok(mut seq) = self.seq.lock() else {
            return;
        };
        *seq += 1;
        let mut writer = Writer::new(kind::PRESENCE_DELTA, self.node);
        writer.u64(*seq);
        write_changes(&mut writer, &changes);
        self.adapter.publish_control(writer.finish());
    }

    fn publish_heartbeat(&self) {
        let Ok(seq) = self.seq.lock() else {
            return;
        };
        let mut writer = Writer::new(kind::PRESENCE_HEARTBEAT, self.node);
        writer.u64(*seq).str16(&self.name);
        self.adapter.publish_control(writer.finish());
    }

    fn publish_state(&self, view: &impl Replicated) {
        let Ok(seq) = self.seq.lock() else {
            return;
        };
        let entries = view.local_entries();
        let mut writer = Writer::new(kind::PRESENCE_STATE, self.node);
        writer.u64(*seq).str16(&self.name);
        write_changes(&mut writer, &entries);
        self.adapter.publish_control(writer.finish());
    }

    fn request_state(&self, target: u64) {
        let mut writer = Writer::new(kind::PRESENCE_STATE_REQUEST, self.node);
        writer.u64(target);
        self.adapter.publish_control(writer.finish());
    }

    /// Records this tick; true when the previous one is more than two heartbeats (or the
    /// down period, if shorter) ago, i.e. this node's own clock ran without it.
    fn woke_from_stall(&self, now: Instant) -> bool {
        let Ok(mut last) = self.last_tick.lock() else {
            return false;
        };
        let previous = last.replace(now);
        let limit = (self.policy.heartbeat * 2).min(self.policy.down_after);
        previous.is_some_and(|at| now.saturating_duration_since(at) > limit)
    }

    /// Asks `node` for its state unless asked within the last heartbeat.
    fn ask(&self, remote: &mut RemoteNode, node: u64, now: Instant) {
        let recently = remote
            .asked_at
            .is_some_and(|at| now.saturating_duration_since(at) < self.policy.heartbeat);
        if !recently {
            remote.asked_at = Some(now);
            self.request_state(node);
        }
    }
}

/// Node-level operations: what the tracker's replication does on a tick, on a control
/// message, and when the link comes up.
impl Cluster {
    /// Every heartbeat: send ours, and declare down the nodes silent for too long.
    pub(crate) fn tick(&self, view: &impl Replicated, pubsub: &PubSub, now: Instant) {
        self.publish_heartbeat();
        if self.woke_from_stall(now) {
            // What this node did not hear while it was stopped says nothing about the
            // others: give every known node a fresh down period, and exchange states
            // (the others may have declared this node down; deltas may be lost).
            tracing::warn!(
                "this node was stalled past its heartbeat: not declaring other nodes down, resynchronising presences"
            );
            if let Ok(mut remotes) = self.remotes.lock() {
                for remote in remotes.values_mut() {
                    remote.last_seen = now;
                    remote.asked_at = None;
                }
            }
            self.request_state(0);
            self.publish_state(view);
            return;
        }
        let down: Vec<(u64, RemoteNode)> = match self.remotes.lock() {
            Ok(mut remotes) => {
                let silent: Vec<u64> = remotes
                    .iter()
                    .filter(|(_, r)| {
                        now.saturating_duration_since(r.last_seen) > self.policy.down_after
                    })
                    .map(|(id, _)| *id)
                    .collect();
                silent
                    .into_iter()
                    .filter_map(|id| remotes.remove(&id).map(|r| (id, r)))
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for (id, remote) in down {
            tracing::warn!(
                node = %remote.name,
                presences = remote.presences.len(),
                "cluster node silent for {:?}: declared down, its presences leave",
                self.policy.down_after
            );
            for (phx_ref, (topic, key)) in remote.presences {
                view.remove_remote(pubsub, id, &topic, &key, &phx_ref);
            }
        }
    }

    /// The link to the other nodes is (back) up: exchange states.
    pub(crate) fn link_up(&self, view: &impl Replicated) {
        self.request_state(0);
        self.publish_state(view);
    }

    /// A control message from the self.
    pub(crate) fn message(
        &self,
        view: &impl Replicated,
        pubsub: &PubSub,
        data: Bytes,
        now: Instant,
    ) {
        let result = (|| -> Result<(), WireError> {
            let (mut reader, kind, node) = Reader::open(data)?;
            if node == self.node {
                return Ok(());
            }
            match kind {
                kind::PRESENCE_HEARTBEAT => {
                    let seq = reader.u64()?;
                    let name = reader.str16()?;
                    self.on_heartbeat(node, seq, name, now);
                }
                kind::PRESENCE_DELTA => {
                    let seq = reader.u64()?;
                    let changes = read_changes(&mut reader)?;
                    self.on_delta(view, pubsub, node, seq, changes, now);
                }
                kind::PRESENCE_STATE_REQUEST => {
                    let target = reader.u64()?;
                    if target == 0 || target == self.node {
                        self.publish_state(view);
                    }
                }
                kind::PRESENCE_STATE => {
                    let seq = reader.u64()?;
                    let name = reader.str16()?;
                    let entries = read_changes(&mut reader)?;
                    self.on_state(view, pubsub, node, seq, name, entries, now);
                }
                other => return Err(WireError::Kind(other)),
            }
            Ok(())
        })();
        if let Err(error) = result {
            tracing::warn!(%error, "cluster control message not understood");
        }
    }

    fn on_heartbeat(&self, node: u64, seq: u64, name: String, now: Instant) {
        let Ok(mut remotes) = self.remotes.lock() else {
            return;
        };
        match remotes.get_mut(&node) {
            Some(remote) => {
                remote.last_seen = now;
                if seq > remote.seq {
                    // Deltas were lost on the way.
                    self.ask(remote, node, now);
                }
            }
            None => {
                tracing::info!(node = %name, "cluster node heard from: asking for its presences");
                let remote = remotes.entry(node).or_insert(RemoteNode {
                    name,
                    seq: 0,
                    last_seen: now,
                    presences: HashMap::new(),
                    asked_at: None,
                });
                self.ask(remote, node, now);
            }
        }
    }

    fn on_delta(
        &self,
        view: &impl Replicated,
        pubsub: &PubSub,
        node: u64,
        seq: u64,
        changes: Vec<Change>,
        now: Instant,
    ) {
        let Ok(mut remotes) = self.remotes.lock() else {
            return;
        };
        let Some(remote) = remotes.get_mut(&node) else {
            // A stranger: its state will bring everything, this delta included.
            drop(remotes);
            self.request_state(node);
            return;
        };
        remote.last_seen = now;
        if seq <= remote.seq {
            return; // already applied (a state overtook it)
        }
        if seq != remote.seq + 1 {
            self.ask(remote, node, now);
            return;
        }
        remote.seq = seq;
        for change in changes {
            match change {
                Change::Join {
                    topic,
                    key,
                    phx_ref,
                    meta,
                } => {
                    if view.insert_remote(pubsub, node, &topic, &key, &phx_ref, meta) {
                        remote.presences.insert(phx_ref, (topic, key));
                    }
                }
                Change::Leave {
                    topic,
                    key,
                    phx_ref,
                } => {
                    remote.presences.remove(&phx_ref);
                    view.remove_remote(pubsub, node, &topic, &key, &phx_ref);
                }
            }
        }
    }

    /// Replaces this node's view of `node` with its full state.
    #[allow(clippy::too_many_arguments)]
    fn on_state(
        &self,
        view: &impl Replicated,
        pubsub: &PubSub,
        node: u64,
        seq: u64,
        name: String,
        entries: Vec<Change>,
        now: Instant,
    ) {
        let Ok(mut remotes) = self.remotes.lock() else {
            return;
        };
        let remote = remotes.entry(node).or_insert_with(|| {
            tracing::info!(node = %name, "cluster node joined");
            RemoteNode {
                name: name.clone(),
                seq: 0,
                last_seen: now,
                presences: HashMap::new(),
                asked_at: None,
            }
        });
        remote.last_seen = now;
        remote.seq = seq;
        remote.asked_at = None;
        let mut current: HashSet<String> = HashSet::new();
        for change in entries {
            if let Change::Join {
                topic,
                key,
                phx_ref,
                meta,
            } = change
            {
                current.insert(phx_ref.clone());
                if !remote.presences.contains_key(&phx_ref)
                    && view.insert_remote(pubsub, node, &topic, &key, &phx_ref, meta)
                {
                    remote.presences.insert(phx_ref, (topic, key));
                }
            }
        }
        let gone: Vec<String> = remote
            .presences
            .keys()
            .filter(|phx_ref| !current.contains(*phx_ref))
            .cloned()
            .collect();
        for phx_ref in gone {
            if let Some((topic, key)) = remote.presences.remove(&phx_ref) {
                view.remove_remote(pubsub, node, &topic, &key, &phx_ref);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::{NodeInbound, Tracker};
    use crate::pubsub::adapter::Inbound;

    #[test]
    fn changes_round_trip() {
        let meta = RawValue::from_string(r#"{"phx_ref":"r1","online_at":"1"}"#.into()).unwrap();
        let changes = vec![
            Change::join("room:1", "ann", "r1", &meta),
            Change::leave("room:1", "bob", "r0"),
        ];
        let mut writer = Writer::new(kind::PRESENCE_DELTA, 5);
        writer.u64(3);
        write_changes(&mut writer, &changes);
        let (mut reader, kind, node) = Reader::open(writer.finish()).unwrap();
        assert_eq!(
            (kind, node, reader.u64().unwrap()),
            (kind::PRESENCE_DELTA, 5, 3)
        );
        // Debug shows every field, the meta's JSON text included.
        assert_eq!(
            format!("{:?}", read_changes(&mut reader).unwrap()),
            format!("{changes:?}")
        );
        assert!(reader.is_empty());
    }

    #[derive(Debug)]
    struct Silent;
    impl Adapter for Silent {
        fn publish(&self, _: &str, _: Bytes) {}
        fn subscribe(&self, _: &str) {}
        fn unsubscribe(&self, _: &str) {}
        fn publish_control(&self, _: Bytes) {}
        fn start(&self, _: Arc<dyn Inbound>) {}
    }

    #[test]
    fn a_late_tick_means_this_node_stalled() {
        let policy = ReplicaPolicy {
            heartbeat: Duration::from_millis(1_500),
            down_after: Duration::from_secs(5),
        };
        let cluster = Cluster::new(Arc::new(Silent), 1, "a".into(), policy);
        let t0 = Instant::now();
        assert!(
            !cluster.woke_from_stall(t0),
            "the first tick has nothing to compare"
        );
        assert!(!cluster.woke_from_stall(t0 + Duration::from_millis(1_600)));
        assert!(!cluster.woke_from_stall(t0 + Duration::from_millis(3_400)));
        // SIGSTOP for 8 s, then SIGCONT.
        assert!(cluster.woke_from_stall(t0 + Duration::from_millis(11_400)));
        assert!(!cluster.woke_from_stall(t0 + Duration::from_millis(12_900)));
    }

    #[test]
    fn a_lying_count_is_an_error_not_an_allocation() {
        let mut writer = Writer::new(kind::PRESENCE_DELTA, 5);
        writer.u64(1).u32(u32::MAX);
        let (mut reader, _, _) = Reader::open(writer.finish()).unwrap();
        reader.u64().unwrap();
        assert!(matches!(
            read_changes(&mut reader),
            Err(WireError::Truncated)
        ));
    }
    /// An adapter that keeps every control message this node publishes.
    #[derive(Debug, Default)]
    struct Recording(Mutex<Vec<Bytes>>);
    impl Adapter for Recording {
        fn publish(&self, _: &str, _: Bytes) {}
        fn subscribe(&self, _: &str) {}
        fn unsubscribe(&self, _: &str) {}
        fn publish_control(&self, message: Bytes) {
            self.0.lock().unwrap().push(message);
        }
        fn start(&self, _: Arc<dyn Inbound>) {}
    }

    impl Recording {
        /// The control messages so far as (kind, first number: a sequence number or a
        /// state request's target), and forgets them.
        fn take(&self) -> Vec<(u8, u64)> {
            std::mem::take(&mut *self.0.lock().unwrap())
                .into_iter()
                .map(|m| {
                    let (mut reader, kind, _) = Reader::open(m).unwrap();
                    (kind, reader.u64().unwrap())
                })
                .collect()
        }
    }

    const SECOND: ReplicaPolicy = ReplicaPolicy {
        heartbeat: Duration::from_secs(1),
        down_after: Duration::from_secs(1),
    };

    fn heartbeat_from(node: u64, seq: u64) -> Bytes {
        let mut writer = Writer::new(kind::PRESENCE_HEARTBEAT, node);
        writer.u64(seq).str16("other");
        writer.finish()
    }

    /// A tracker in a cluster of `policy`, as node 1, recording what it publishes.
    fn clustered(policy: ReplicaPolicy) -> (Tracker, Arc<Recording>) {
        let recording = Arc::new(Recording::default());
        let tracker = Tracker::new(
            None,
            crate::presence::BurstPolicy {
                limit: 1,
                window: Duration::ZERO,
            },
        );
        tracker.join_cluster(Cluster::new(recording.clone(), 1, "a".into(), policy));
        (tracker, recording)
    }

    #[test]
    fn deltas_are_numbered_from_one_and_empty_ones_are_not_sent() {
        let recording = Arc::new(Recording::default());
        let cluster = Cluster::new(recording.clone(), 1, "a".into(), SECOND);
        let meta = RawValue::from_string(r#"{"phx_ref":"r1"}"#.into()).unwrap();
        for _ in 0..3 {
            cluster.publish_delta(vec![Change::join("t", "k", "r1", &meta)]);
            cluster.publish_delta(Vec::new());
        }
        let delta = kind::PRESENCE_DELTA;
        assert_eq!(recording.take(), [(delta, 1), (delta, 2), (delta, 3)]);
    }

    #[test]
    fn a_node_is_asked_for_its_state_at_most_once_a_heartbeat() {
        let recording = Arc::new(Recording::default());
        let cluster = Cluster::new(recording.clone(), 1, "a".into(), SECOND);
        let t0 = Instant::now();
        let mut remote = RemoteNode {
            name: "b".into(),
            seq: 0,
            last_seen: t0,
            presences: HashMap::new(),
            asked_at: None,
        };
        let request = (kind::PRESENCE_STATE_REQUEST, 7);
        cluster.ask(&mut remote, 7, t0);
        assert_eq!(recording.take(), [request], "asked at once");
        cluster.ask(&mut remote, 7, t0);
        cluster.ask(&mut remote, 7, t0 + Duration::from_millis(999));
        assert_eq!(recording.take(), [], "not again within the heartbeat");
        cluster.ask(&mut remote, 7, t0 + SECOND.heartbeat);
        assert_eq!(recording.take(), [request], "again once a heartbeat passed");
    }

    #[test]
    fn a_node_is_down_only_once_silent_for_longer_than_the_down_period() {
        let (tracker, recording) = clustered(SECOND);
        let pubsub = PubSub::default();
        let known = |tracker: &Tracker| {
            let cluster = tracker.cluster.get().unwrap();
            cluster.remotes.lock().unwrap().contains_key(&7)
        };
        let t0 = Instant::now();
        tracker.cluster_tick(&pubsub, t0);
        tracker.cluster_message(&pubsub, heartbeat_from(7, 0), t0);
        assert!(known(&tracker));
        recording.take();

        // Exactly one heartbeat (and one down period) later: neither a stall of this
        // node nor a silent node yet.
        tracker.cluster_tick(&pubsub, t0 + SECOND.down_after);
        assert!(known(&tracker), "silent for exactly the down period");
        assert_eq!(
            recording.take(),
            [(kind::PRESENCE_HEARTBEAT, 0)],
            "only a heartbeat: no stall resync"
        );
        tracker.cluster_tick(&pubsub, t0 + SECOND.down_after + Duration::from_millis(1));
        assert!(!known(&tracker), "silent for longer: down");
    }

    #[test]
    fn a_link_coming_up_asks_every_node_and_sends_this_node_s_state() {
        let (tracker, recording) = clustered(SECOND);
        tracker.cluster_link_up();
        assert_eq!(
            recording.take(),
            [(kind::PRESENCE_STATE_REQUEST, 0), (kind::PRESENCE_STATE, 0)]
        );
    }
    fn delta_from(node: u64, seq: u64, joins: &[&str]) -> Bytes {
        let changes: Vec<Change> = joins
            .iter()
            .map(|r| {
                let meta = RawValue::from_string(format!(r#"{{"phx_ref":"{r}"}}"#)).unwrap();
                Change::join("t", "k", r, &meta)
            })
            .collect();
        let mut writer = Writer::new(kind::PRESENCE_DELTA, node);
        writer.u64(seq);
        write_changes(&mut writer, &changes);
        writer.finish()
    }

    /// The phx_refs under key `k` of topic `t`.
    fn refs(tracker: &Tracker) -> Vec<String> {
        let crate::Payload::Json(list) = tracker.list("t") else {
            panic!("a list is JSON")
        };
        let list: serde_json::Value = serde_json::from_str(list.get()).unwrap();
        list["k"]["metas"]
            .as_array()
            .map(|metas| {
                metas
                    .iter()
                    .map(|m| m["phx_ref"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn heartbeats_keep_a_node_alive() {
        let (tracker, _recording) = clustered(SECOND);
        let pubsub = PubSub::default();
        let known = |tracker: &Tracker| {
            let cluster = tracker.cluster.get().unwrap();
            cluster.remotes.lock().unwrap().contains_key(&7)
        };
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        tracker.cluster_tick(&pubsub, t0);
        tracker.cluster_message(&pubsub, heartbeat_from(7, 0), t0);
        assert!(known(&tracker), "a heartbeat introduces a node");
        tracker.cluster_tick(&pubsub, at(500));
        tracker.cluster_message(&pubsub, heartbeat_from(7, 0), at(900));
        tracker.cluster_tick(&pubsub, at(1_000));
        tracker.cluster_tick(&pubsub, at(1_500));
        assert!(known(&tracker), "heard 0.6 s ago: alive");
        tracker.cluster_tick(&pubsub, at(2_000));
        assert!(!known(&tracker), "silent 1.1 s: down");
    }

    #[test]
    fn a_heartbeat_ahead_of_the_deltas_applied_asks_for_the_state() {
        let (tracker, recording) = clustered(SECOND);
        let pubsub = PubSub::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let request = (kind::PRESENCE_STATE_REQUEST, 7);
        tracker.cluster_message(&pubsub, heartbeat_from(7, 0), t0);
        assert_eq!(recording.take(), [request], "a new node is asked");
        tracker.cluster_message(&pubsub, heartbeat_from(7, 0), at(1_100));
        assert_eq!(recording.take(), [], "nothing missed: not asked");
        tracker.cluster_message(&pubsub, heartbeat_from(7, 3), at(1_200));
        assert_eq!(recording.take(), [request], "deltas 1 to 3 missed: asked");
    }

    #[test]
    fn deltas_apply_in_order_once_and_a_gap_asks_for_the_state() {
        let (tracker, recording) = clustered(SECOND);
        let pubsub = PubSub::default();
        let t0 = Instant::now();
        tracker.cluster_message(&pubsub, heartbeat_from(7, 0), t0);
        recording.take();
        tracker.cluster_message(&pubsub, delta_from(7, 1, &["r1"]), t0);
        assert_eq!(refs(&tracker), ["r1"]);
        tracker.cluster_message(&pubsub, delta_from(7, 1, &["dup"]), t0);
        assert_eq!(refs(&tracker), ["r1"], "a delta already applied is skipped");
        tracker.cluster_message(&pubsub, delta_from(7, 2, &["r2"]), t0);
        assert_eq!(refs(&tracker), ["r1", "r2"]);
        assert_eq!(recording.take(), []);
        tracker.cluster_message(
            &pubsub,
            delta_from(7, 4, &["r4"]),
            t0 + Duration::from_millis(1_100),
        );
        assert_eq!(refs(&tracker), ["r1", "r2"], "not applied past a gap");
        assert_eq!(recording.take(), [(kind::PRESENCE_STATE_REQUEST, 7)]);
        // This node's own messages, echoed back by the engine, change nothing.
        tracker.cluster_message(&pubsub, delta_from(1, 1, &["mine"]), t0);
        assert_eq!(refs(&tracker), ["r1", "r2"]);
    }

    #[test]
    fn a_state_request_is_answered_when_it_names_this_node_or_every_node() {
        let (tracker, recording) = clustered(SECOND);
        let pubsub = PubSub::default();
        let request = |target: u64| {
            let mut writer = Writer::new(kind::PRESENCE_STATE_REQUEST, 7);
            writer.u64(target);
            writer.finish()
        };
        let now = Instant::now();
        let state = (kind::PRESENCE_STATE, 0);
        tracker.cluster_message(&pubsub, request(0), now);
        assert_eq!(recording.take(), [state], "every node");
        tracker.cluster_message(&pubsub, request(1), now);
        assert_eq!(recording.take(), [state], "this node (id 1)");
        tracker.cluster_message(&pubsub, request(5), now);
        assert_eq!(recording.take(), [], "another node");
    }
    #[test]
    fn the_link_coming_up_through_the_adapter_exchanges_states_and_going_down_does_not() {
        let (tracker, recording) = clustered(SECOND);
        let inbound = NodeInbound {
            pubsub: PubSub::default(),
            tracker: Arc::new(tracker),
        };
        inbound.link(false);
        assert_eq!(recording.take(), []);
        inbound.link(true);
        assert_eq!(
            recording.take(),
            [(kind::PRESENCE_STATE_REQUEST, 0), (kind::PRESENCE_STATE, 0)]
        );
    }
}
