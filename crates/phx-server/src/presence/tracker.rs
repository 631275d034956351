//! The presence tracker: state per topic, diffs, `phx_ref`s.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dashmap::DashMap;
use phx_protocol::presence::format_phx_ref;
use phx_protocol::{event, Payload};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::burst::{Burst, BurstPolicy, Merge};
use super::replica::{Change, Cluster, Replicated};
use crate::pubsub::adapter::{Dispatch, Inbound};
use crate::pubsub::{InstanceId, PubSub};

/// Why a presence call was refused.
///
/// ```
/// # use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
/// use phx_server::PresenceError;
/// # #[derive(Default)] struct Room;
/// # impl Channel for Room {
/// #   type Assigns = (); type Info = ();
/// #   async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelContext<'_, Self>) -> JoinResult { Ok(Payload::empty_object()) }
/// #   async fn handle_in(&mut self, _: &str, _: Payload, ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
/// match ctx.presence().track("ann", serde_json::json!({"status": "online"})) {
///     Ok(_phx_ref) => {}
///     // A second track of the same key from this channel: update it instead.
///     Err(PresenceError::AlreadyTracked(key)) => {
///         let _ = ctx.presence().update(&key, serde_json::json!({"status": "online"}));
///     }
///     Err(error) => tracing::warn!(%error, "presence not tracked"),
/// }
/// #     HandleResult::noreply()
/// #   }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    /// This channel is already tracked under that key (use `update`).
    #[error("already tracked under {0:?}")]
    AlreadyTracked(String),
    /// `update` of a key this channel does not track.
    #[error("not tracked under {0:?}")]
    NotTracked(String),
    /// Presence metas are JSON objects (Phoenix's maps).
    #[error("presence metas must be JSON objects")]
    MetaNotAnObject,
}

/// Decorates presence entries before they are sent (Phoenix's `fetch/2`): called once
/// per list and once per diff, with only the keys concerned, never once per client.
/// Give it to [`EndpointBuilder::presence_fetch`](crate::EndpointBuilder::presence_fetch).
///
/// ```
/// use phx_server::{Endpoint, PresenceFetch};
/// use serde_json::{json, Map, Value};
///
/// /// Adds each user's display name beside their metas.
/// struct DisplayNames;
///
/// impl PresenceFetch for DisplayNames {
///     fn fetch(&self, _topic: &str, entries: &mut Map<String, Value>) {
///         for (user_id, entry) in entries.iter_mut() {
///             if let Some(entry) = entry.as_object_mut() {
///                 entry.insert("name".into(), json!(format!("User {user_id}")));
///             }
///         }
///     }
/// }
///
/// let endpoint = Endpoint::builder().presence_fetch(DisplayNames).build();
/// # let _ = endpoint;
/// ```
pub trait PresenceFetch: Send + Sync + 'static {
    /// `entries` maps each key to `{"metas": [...]}`; add fields beside `metas`.
    fn fetch(&self, topic: &str, entries: &mut Map<String, Value>);
}

/// Who a meta belongs to: a channel of this node, or another node of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Local(InstanceId),
    Remote(u64),
}

struct Meta {
    owner: Owner,
    phx_ref: String,
    /// The meta object with `phx_ref` (and `phx_ref_prev`) as JSON text.
    json: Box<RawValue>,
}

type TopicState = HashMap<String, Vec<Meta>>;

/// A topic in a burst: its merging state, and the list joiners get meanwhile.
///
/// A storm of N joins would render the whole list N times (N² work). While a topic's
/// changes are being merged, every change since the last flush is in the pending diff,
/// which every subscriber (a channel that joins now included) receives at the window's
/// end. So the list as it was at that flush, plus the pending diff, is the current list:
/// the list is rendered once per window, at the flush, and joiners share it. A change
/// sent on its own (outside a merge) drops the snapshot, since a later joiner would not
/// receive it. Not used with a fetch hook (user code must not run under the flush).
#[derive(Default)]
struct TopicBurst {
    burst: Burst<Diff>,
    /// The list at the last flush, valid while every later change is held back; one
    /// shared buffer, so handing it to a joiner copies nothing.
    snapshot: Option<Payload>,
    /// `list` was asked during this window: render a snapshot at the next flush.
    listed: AtomicBool,
}

/// Presence state of the whole node.
pub(crate) struct Tracker {
    topics: DashMap<String, TopicState>,
    /// Which (topic, key) pairs each channel instance is tracked under, to untrack all
    /// of them when the channel ends.
    by_instance: DashMap<InstanceId, Vec<(String, String)>>,
    node_hash: u16,
    unique: AtomicU16,
    fetch: Option<Arc<dyn PresenceFetch>>,
    /// When diffs of one topic are merged (only under a burst, see [`super::burst`]).
    burst_policy: BurstPolicy,
    bursts: DashMap<String, TopicBurst>,
    /// Replication to the other nodes, when in a cluster (see [`super::replica`]).
    pub(super) cluster: OnceLock<Cluster>,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("topics", &self.topics.len())
            .finish_non_exhaustive()
    }
}

type Entries = HashMap<String, Vec<Box<RawValue>>>;

/// `{key: {"metas": [meta, …]}, …}` from borrowed keys and meta JSON texts.
fn render<'a, M>(len: usize, entries: impl Iterator<Item = (&'a str, M)>) -> String
where
    M: Iterator<Item = &'a RawValue>,
{
    let mut out: Vec<u8> = Vec::with_capacity(96 * len + 2);
    out.push(b'{');
    for (i, (key, metas)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a &str into a Vec cannot fail.
        serde_json::to_writer(&mut out, key).expect("key serializes");
        out.extend_from_slice(br#":{"metas":["#);
        for (j, meta) in metas.enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(meta.get().as_bytes());
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b'}');
    // Built from a JSON string literal and JSON texts: valid UTF-8.
    String::from_utf8(out).expect("UTF-8 JSON")
}

/// A presence diff under construction: `joins` and `leaves`, key → metas.
#[derive(Default)]
struct Diff {
    joins: Entries,
    leaves: Entries,
}

impl Diff {
    fn join(key: &str, meta: Box<RawValue>) -> Self {
        let mut diff = Self::default();
        diff.joins.insert(key.to_owned(), vec![meta]);
        diff
    }

    fn leave(key: &str, meta: Box<RawValue>) -> Self {
        let mut diff = Self::default();
        diff.leaves.insert(key.to_owned(), vec![meta]);
        diff
    }
}

impl Merge for Diff {
    /// Appends a later diff. phoenix.js applies all joins of a diff, then all leaves,
    /// matching metas by `phx_ref`, so a meta that joined and left within one merged
    /// diff ends up absent, and an update (join B, leave A) leaves B: the merge is the
    /// same as applying the diffs one after the other.
    fn merge(&mut self, later: Self) {
        for (key, metas) in later.joins {
            self.joins.entry(key).or_default().extend(metas);
        }
        for (key, metas) in later.leaves {
            self.leaves.entry(key).or_default().extend(metas);
        }
    }
}

impl Tracker {
    pub(crate) fn new(fetch: Option<Arc<dyn PresenceFetch>>, burst_policy: BurstPolicy) -> Self {
        Self {
            topics: DashMap::new(),
            by_instance: DashMap::new(),
            node_hash: rand::random(),
            unique: AtomicU16::new(rand::random()),
            fetch,
            burst_policy,
            bursts: DashMap::new(),
            cluster: OnceLock::new(),
        }
    }

    /// Replicates this tracker to the other nodes of a cluster (once).
    pub(crate) fn join_cluster(&self, cluster: Cluster) {
        let _ = self.cluster.set(cluster);
    }

    /// Sends this node's changes to the others (in a cluster).
    fn replicate(&self, changes: Vec<Change>) {
        if let Some(cluster) = self.cluster.get() {
            cluster.publish_delta(changes);
        }
    }

    /// Every heartbeat: send ours, and declare down the nodes silent for too long.
    pub(crate) fn cluster_tick(&self, pubsub: &PubSub, now: Instant) {
        if let Some(cluster) = self.cluster.get() {
            cluster.tick(self, pubsub, now);
        }
    }

    /// The link to the other nodes is (back) up: exchange states.
    pub(crate) fn cluster_link_up(&self) {
        if let Some(cluster) = self.cluster.get() {
            cluster.link_up(self);
        }
    }

    /// A control message from the cluster.
    pub(crate) fn cluster_message(&self, pubsub: &PubSub, data: Bytes, now: Instant) {
        if let Some(cluster) = self.cluster.get() {
            cluster.message(self, pubsub, data, now);
        }
    }

    fn next_ref(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        format_phx_ref(
            nanos,
            self.node_hash,
            self.unique.fetch_add(1, Ordering::Relaxed),
        )
    }

    fn meta_json(mut meta: Map<String, Value>, phx_ref: &str, prev: Option<&str>) -> Box<RawValue> {
        meta.insert("phx_ref".into(), Value::String(phx_ref.to_owned()));
        if let Some(prev) = prev {
            meta.insert("phx_ref_prev".into(), Value::String(prev.to_owned()));
        }
        // Serializing a Map of Values cannot fail.
        serde_json::value::to_raw_value(&meta).expect("JSON map serializes")
    }

    pub(crate) fn track(
        &self,
        pubsub: &PubSub,
        topic: &str,
        key: &str,
        instance: InstanceId,
        meta: Map<String, Value>,
    ) -> Result<String, PresenceError> {
        let phx_ref = self.next_ref();
        let json = Self::meta_json(meta, &phx_ref, None);
        let owner = Owner::Local(instance);
        {
            let mut state = self.topics.entry(topic.to_owned()).or_default();
            let metas = state.entry(key.to_owned()).or_default();
            if metas.iter().any(|m| m.owner == owner) {
                return Err(PresenceError::AlreadyTracked(key.to_owned()));
            }
            metas.push(Meta {
                owner,
                phx_ref: phx_ref.clone(),
                json: json.clone(),
            });
        }
        self.by_instance
            .entry(instance)
            .or_default()
            .push((topic.to_owned(), key.to_owned()));
        pubsub.telemetry().presence_entries.increment(1.0);
        self.replicate(vec![Change::join(topic, key, &phx_ref, &json)]);
        self.broadcast(pubsub, topic, Diff::join(key, json));
        Ok(phx_ref)
    }

    pub(crate) fn update(
        &self,
        pubsub: &PubSub,
        topic: &str,
        key: &str,
        instance: InstanceId,
        meta: Map<String, Value>,
    ) -> Result<String, PresenceError> {
        let phx_ref = self.next_ref();
        let owner = Owner::Local(instance);
        let (diff, changes) = {
            let mut state = self
                .topics
                .get_mut(topic)
                .ok_or_else(|| PresenceError::NotTracked(key.to_owned()))?;
            let slot = state
                .get_mut(key)
                .and_then(|metas| metas.iter_mut().find(|m| m.owner == owner))
                .ok_or_else(|| PresenceError::NotTracked(key.to_owned()))?;
            let json = Self::meta_json(meta, &phx_ref, Some(&slot.phx_ref));
            let old = std::mem::replace(&mut slot.json, json.clone());
            let old_ref = std::mem::replace(&mut slot.phx_ref, phx_ref.clone());
            let changes = vec![
                Change::leave(topic, key, &old_ref),
                Change::join(topic, key, &phx_ref, &json),
            ];
            let mut diff = Diff::join(key, json);
            diff.leaves.insert(key.to_owned(), vec![old]);
            (diff, changes)
        };
        self.replicate(changes);
        self.broadcast(pubsub, topic, diff);
        Ok(phx_ref)
    }

    pub(crate) fn untrack(&self, pubsub: &PubSub, topic: &str, key: &str, instance: InstanceId) {
        if let Some((left_ref, left)) = self.remove(topic, key, Owner::Local(instance), None) {
            if let Some(mut pairs) = self.by_instance.get_mut(&instance) {
                pairs.retain(|(t, k)| !(t == topic && k == key));
            }
            pubsub.telemetry().presence_entries.decrement(1.0);
            self.replicate(vec![Change::leave(topic, key, &left_ref)]);
            self.broadcast(pubsub, topic, Diff::leave(key, left));
        }
    }

    /// Removes every presence of a channel instance that ended (leave, crash, duplicate
    /// join, socket close): one leave diff per topic.
    pub(crate) fn untrack_instance_with(&self, pubsub: &PubSub, instance: InstanceId) {
        let Some((_, pairs)) = self.by_instance.remove(&instance) else {
            return;
        };
        let mut per_topic: HashMap<&str, Diff> = HashMap::new();
        let mut changes = Vec::new();
        for (topic, key) in &pairs {
            if let Some((left_ref, left)) = self.remove(topic, key, Owner::Local(instance), None) {
                changes.push(Change::leave(topic, key, &left_ref));
                per_topic
                    .entry(topic)
                    .or_default()
                    .merge(Diff::leave(key, left));
            }
        }
        pubsub
            .telemetry()
            .presence_entries
            .decrement(changes.len() as f64);
        self.replicate(changes);
        for (topic, diff) in per_topic {
            self.broadcast(pubsub, topic, diff);
        }
    }

    /// Removes the meta of `owner` under `topic`/`key` (the one with `phx_ref`, if
    /// given); returns its ref and JSON.
    fn remove(
        &self,
        topic: &str,
        key: &str,
        owner: Owner,
        phx_ref: Option<&str>,
    ) -> Option<(String, Box<RawValue>)> {
        let mut state = self.topics.get_mut(topic)?;
        let metas = state.get_mut(key)?;
        let at = metas
            .iter()
            .position(|m| m.owner == owner && phx_ref.is_none_or(|r| m.phx_ref == r))?;
        let left = metas.remove(at);
        if metas.is_empty() {
            state.remove(key);
        }
        let topic_empty = state.is_empty();
        drop(state);
        if topic_empty {
            self.topics.remove_if(topic, |_, s| s.is_empty());
        }
        Some((left.phx_ref, left.json))
    }

    /// `{key: {"metas": [...]}}` for the whole topic: during a burst, the list at the
    /// last flush (see [`TopicBurst`]).
    pub(crate) fn list(&self, topic: &str) -> Payload {
        if let Some(entry) = self.bursts.get(topic) {
            entry.listed.store(true, Ordering::Relaxed);
            if let Some(snapshot) = &entry.snapshot {
                return snapshot.clone();
            }
        }
        self.render_list(topic)
    }

    /// The topic's list as it is now.
    fn render_list(&self, topic: &str) -> Payload {
        // Rendered straight from the state, under the shard's read lock (no user code
        // runs while it is held: the fetch hook comes after).
        let out = match self.topics.get(topic) {
            Some(state) => render(
                state.len(),
                state
                    .iter()
                    .map(|(k, metas)| (k.as_str(), metas.iter().map(|m| &*m.json))),
            ),
            None => "{}".to_owned(),
        };
        self.finish(topic, out)
    }

    fn render_entries(&self, topic: &str, entries: &Entries) -> Payload {
        let out = render(
            entries.len(),
            entries
                .iter()
                .map(|(k, metas)| (k.as_str(), metas.iter().map(|m| &**m))),
        );
        self.finish(topic, out)
    }

    /// Applies the fetch hook (if any) to rendered entries.
    fn finish(&self, topic: &str, mut out: String) -> Payload {
        if let Some(fetch) = &self.fetch {
            if let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&out) {
                fetch.fetch(topic, &mut map);
                out = Value::Object(map).to_string();
            }
        }
        // The text was built from valid JSON pieces.
        Payload::Json(
            RawValue::from_string(out)
                .expect("valid presence JSON")
                .into(),
        )
    }

    /// Sends `diff` now, as Phoenix does, unless the topic is in a burst: then it is
    /// merged into the topic's pending diff (see [`super::burst`]).
    fn broadcast(&self, pubsub: &PubSub, topic: &str, diff: Diff) {
        if self.burst_policy.window.is_zero() {
            return self.send(pubsub, topic, diff);
        }
        self.broadcast_at(pubsub, topic, diff, Instant::now());
    }

    fn broadcast_at(&self, pubsub: &PubSub, topic: &str, diff: Diff, now: Instant) {
        // The burst entry stays locked while sending, so one topic's diffs never
        // overtake each other between this path and `flush_due`.
        let mut entry = self.bursts.entry(topic.to_owned()).or_default();
        if let Some(diff) = entry.burst.admit(self.burst_policy, now, diff) {
            entry.snapshot = None;
            self.send(pubsub, topic, diff);
        }
    }

    /// Sends every pending merged diff whose window has ended; forgets topics with
    /// nothing pending. Called every burst window by the endpoint's flusher task.
    pub(crate) fn flush_due(&self, pubsub: &PubSub) {
        self.flush_due_at(pubsub, Instant::now());
    }

    fn flush_due_at(&self, pubsub: &PubSub, now: Instant) {
        let policy = self.burst_policy;
        self.bursts.retain(|topic, entry| {
            let Some(diff) = entry.burst.due(policy, now) else {
                return !entry.burst.is_idle(policy, now);
            };
            self.send(pubsub, topic, diff);
            // The flushed changes are not in the old snapshot; the list now holds them
            // all, and everything from here on is merged until the burst ends.
            let listed = entry.listed.swap(false, Ordering::Relaxed);
            // Shared: every joiner of the window gets a reference to one buffer, written
            // behind each joiner's own frame head (see `SocketCore::push`).
            entry.snapshot =
                (listed && self.fetch.is_none()).then(|| self.render_list(topic).into_shared());
            !entry.burst.is_idle(policy, now)
        });
    }

    fn send(&self, pubsub: &PubSub, topic: &str, diff: Diff) {
        let joins = self.render_entries(topic, &diff.joins);
        let leaves = self.render_entries(topic, &diff.leaves);
        let (Payload::Json(joins), Payload::Json(leaves)) = (joins, leaves) else {
            return;
        };
        let text = format!(r#"{{"joins":{},"leaves":{}}}"#, joins.get(), leaves.get());
        let Ok(payload) = RawValue::from_string(text) else {
            return;
        };
        // Local only: every node computes the diffs of replicated changes itself.
        if let Err(error) =
            pubsub.broadcast_local(topic, event::PRESENCE_DIFF, Payload::from(payload))
        {
            tracing::error!(%error, topic, "presence diff not broadcast");
        }
    }

    /// Number of keys present in a topic.
    #[cfg(test)]
    pub(crate) fn key_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |s| s.len())
    }
}

/// Replication's access to the tracker (see [`Replicated`]).
impl Replicated for Tracker {
    /// Adds a meta another node owns; `false` if it is already there.
    fn insert_remote(
        &self,
        pubsub: &PubSub,
        node: u64,
        topic: &str,
        key: &str,
        phx_ref: &str,
        meta: Box<RawValue>,
    ) -> bool {
        {
            let mut state = self.topics.entry(topic.to_owned()).or_default();
            let metas = state.entry(key.to_owned()).or_default();
            if metas.iter().any(|m| m.phx_ref == phx_ref) {
                return false;
            }
            metas.push(Meta {
                owner: Owner::Remote(node),
                phx_ref: phx_ref.to_owned(),
                json: meta.clone(),
            });
        }
        pubsub.telemetry().presence_entries.increment(1.0);
        self.broadcast(pubsub, topic, Diff::join(key, meta));
        true
    }

    /// Removes a meta another node owned; `false` if it was not there.
    fn remove_remote(
        &self,
        pubsub: &PubSub,
        node: u64,
        topic: &str,
        key: &str,
        phx_ref: &str,
    ) -> bool {
        match self.remove(topic, key, Owner::Remote(node), Some(phx_ref)) {
            Some((_, left)) => {
                pubsub.telemetry().presence_entries.decrement(1.0);
                self.broadcast(pubsub, topic, Diff::leave(key, left));
                true
            }
            None => false,
        }
    }

    /// Every meta this node owns, for a state message to the other nodes.
    fn local_entries(&self) -> Vec<Change> {
        let mut out = Vec::new();
        for topic in self.topics.iter() {
            for (key, metas) in topic.value() {
                for meta in metas {
                    if let Owner::Local(_) = meta.owner {
                        out.push(Change::join(topic.key(), key, &meta.phx_ref, &meta.json));
                    }
                }
            }
        }
        out
    }
}

/// What the adapter delivers to: broadcasts to the local PubSub, control messages to
/// the tracker.
pub(crate) struct NodeInbound {
    pub(crate) pubsub: PubSub,
    pub(crate) tracker: Arc<Tracker>,
}

impl Inbound for NodeInbound {
    fn topic_message(&self, _topic: &str, message: Bytes) {
        self.pubsub.deliver_remote(message);
    }

    fn control_message(&self, message: Bytes) {
        self.tracker
            .cluster_message(&self.pubsub, message, Instant::now());
    }

    fn foreign_broadcast(&self, topic: &str, event: &str, payload: Payload, dispatch: Dispatch) {
        self.pubsub.deliver_foreign(topic, event, payload, dispatch);
    }

    fn link(&self, up: bool) {
        self.pubsub
            .telemetry()
            .cluster_link
            .set(if up { 1.0 } else { 0.0 });
        if up {
            self.tracker.cluster_link_up();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use phx_protocol::Serializer;
    use serde_json::{json, Value};

    use super::*;
    use crate::outbox::LongPollBuffer;
    use crate::outbox::Outbox;
    use crate::pubsub::{Subscriber, Target};

    /// A pubsub with one V2 listener on `topic`, whose frames the test reads.
    fn listener(pubsub: &PubSub, topic: &str) -> Arc<LongPollBuffer> {
        listener_as(pubsub, topic, InstanceId(u64::MAX))
    }

    fn listener_as(pubsub: &PubSub, topic: &str, instance: InstanceId) -> Arc<LongPollBuffer> {
        let buffer = Arc::new(LongPollBuffer::new(1000));
        let inbox: Arc<dyn crate::pubsub::Mailbox> = Arc::new(crate::socket::Inbox::default());
        pubsub.subscribe(
            topic,
            Subscriber {
                instance,
                target: Target::Channel {
                    outbox: Outbox::LongPoll(buffer.clone()),
                    serializer: Serializer::V2,
                    mailbox: inbox,
                    intercepts: &[],
                },
            },
        );
        buffer
    }

    fn diffs(buffer: &LongPollBuffer) -> Vec<Value> {
        buffer
            .take()
            .iter()
            .map(|b| {
                let frame: Value = serde_json::from_slice(b).unwrap();
                assert_eq!(frame[3], "presence_diff");
                assert_eq!(frame[0], Value::Null, "diffs are broadcasts");
                frame[4].clone()
            })
            .collect()
    }

    fn meta(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// Every change on its own, always.
    const EXACT: BurstPolicy = BurstPolicy {
        limit: 1,
        window: Duration::ZERO,
    };

    #[test]
    fn track_update_untrack_produce_phoenix_diffs() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, EXACT);
        let out = listener(&pubsub, "t");
        let a = InstanceId(1);

        let r1 = tracker
            .track(&pubsub, "t", "alice", a, meta(json!({"s": 1})))
            .unwrap();
        assert_eq!(r1.len(), 16);
        assert_eq!(
            diffs(&out),
            vec![json!({"joins": {"alice": {"metas": [{"s": 1, "phx_ref": r1}]}}, "leaves": {}})]
        );

        let r2 = tracker
            .update(&pubsub, "t", "alice", a, meta(json!({"s": 2})))
            .unwrap();
        assert_ne!(r1, r2);
        assert_eq!(
            diffs(&out),
            vec![json!({
                "joins": {"alice": {"metas": [{"s": 2, "phx_ref": r2, "phx_ref_prev": r1}]}},
                "leaves": {"alice": {"metas": [{"s": 1, "phx_ref": r1}]}}
            })]
        );

        tracker.untrack(&pubsub, "t", "alice", a);
        assert_eq!(
            diffs(&out),
            vec![
                json!({"joins": {}, "leaves": {"alice": {"metas": [{"s": 2, "phx_ref": r2, "phx_ref_prev": r1}]}}})
            ]
        );
        assert_eq!(tracker.key_count("t"), 0);
    }

    #[test]
    fn two_tabs_are_one_key_with_two_metas_until_both_leave() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, EXACT);
        tracker
            .track(&pubsub, "t", "bob", InstanceId(1), Map::new())
            .unwrap();
        tracker
            .track(&pubsub, "t", "bob", InstanceId(2), Map::new())
            .unwrap();
        let Payload::Json(list) = tracker.list("t") else {
            panic!()
        };
        let list: Value = serde_json::from_str(list.get()).unwrap();
        assert_eq!(list["bob"]["metas"].as_array().unwrap().len(), 2);
        tracker.untrack_instance_with(&pubsub, InstanceId(1));
        assert_eq!(tracker.key_count("t"), 1);
        tracker.untrack_instance_with(&pubsub, InstanceId(2));
        assert_eq!(tracker.key_count("t"), 0);
    }

    #[test]
    fn tracking_twice_is_refused_and_update_needs_a_track() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, EXACT);
        tracker
            .track(&pubsub, "t", "c", InstanceId(1), Map::new())
            .unwrap();
        assert!(matches!(
            tracker.track(&pubsub, "t", "c", InstanceId(1), Map::new()),
            Err(PresenceError::AlreadyTracked(_))
        ));
        assert!(matches!(
            tracker.update(&pubsub, "t", "d", InstanceId(1), Map::new()),
            Err(PresenceError::NotTracked(_))
        ));
    }

    #[test]
    fn an_ended_instance_leaves_every_topic_it_was_in() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, EXACT);
        let out_a = listener(&pubsub, "a");
        let out_b = listener(&pubsub, "b");
        tracker
            .track(&pubsub, "a", "k", InstanceId(5), Map::new())
            .unwrap();
        tracker
            .track(&pubsub, "b", "k", InstanceId(5), Map::new())
            .unwrap();
        diffs(&out_a);
        diffs(&out_b);
        tracker.untrack_instance_with(&pubsub, InstanceId(5));
        assert_eq!(
            diffs(&out_a)[0]["leaves"]["k"]["metas"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            diffs(&out_b)[0]["leaves"]["k"]["metas"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    struct Decorate;
    impl PresenceFetch for Decorate {
        fn fetch(&self, _topic: &str, entries: &mut Map<String, Value>) {
            for (key, entry) in entries.iter_mut() {
                entry["user"] = json!({"name": key.to_uppercase()});
            }
        }
    }

    /// A burst policy whose window never ends by itself in a test (flushes are driven
    /// with `flush_due_at`).
    fn bursty(limit: usize) -> BurstPolicy {
        BurstPolicy {
            limit,
            window: Duration::from_secs(3600),
        }
    }

    fn keys(entries: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = entries
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn a_join_then_a_leave_within_the_window_are_two_diffs() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, bursty(20));
        let out = listener(&pubsub, "t");
        let r = tracker
            .track(&pubsub, "t", "quick", InstanceId(1), Map::new())
            .unwrap();
        tracker.untrack(&pubsub, "t", "quick", InstanceId(1));
        assert_eq!(
            diffs(&out),
            vec![
                json!({"joins": {"quick": {"metas": [{"phx_ref": r}]}}, "leaves": {}}),
                json!({"joins": {}, "leaves": {"quick": {"metas": [{"phx_ref": r}]}}}),
            ],
            "each change on its own, as Phoenix sends them"
        );
    }

    #[test]
    fn a_burst_past_the_limit_sends_the_first_n_alone_and_merges_the_rest_in_order() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, bursty(3));
        let out = listener(&pubsub, "t");
        for i in 0..6 {
            tracker
                .track(&pubsub, "t", &format!("k{i}"), InstanceId(i), Map::new())
                .unwrap();
        }
        let alone = diffs(&out);
        assert_eq!(alone.len(), 3, "the first three go out at once");
        for (i, diff) in alone.iter().enumerate() {
            assert_eq!(keys(&diff["joins"]), [format!("k{i}").as_str()]);
        }
        // Later changes join the pending diff, whatever they are: never ahead of it.
        tracker.untrack(&pubsub, "t", "k4", InstanceId(4));
        tracker
            .update(&pubsub, "t", "k0", InstanceId(0), meta(json!({"v": 2})))
            .unwrap();
        assert!(diffs(&out).is_empty(), "held until the window ends");

        let later = Instant::now() + Duration::from_secs(7200);
        tracker.flush_due_at(&pubsub, later);
        let merged = diffs(&out);
        assert_eq!(merged.len(), 1, "the rest of the burst is one diff");
        let diff = &merged[0];
        assert_eq!(keys(&diff["joins"]), ["k0", "k3", "k4", "k5"]);
        assert_eq!(keys(&diff["leaves"]), ["k0", "k4"]);
        assert_eq!(diff["joins"]["k0"]["metas"][0]["v"], 2);
        assert!(diffs(&out).is_empty());
    }

    #[test]
    fn after_a_burst_ends_changes_are_exact_again() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, bursty(1));
        let out = listener(&pubsub, "t");
        tracker
            .track(&pubsub, "t", "a", InstanceId(1), Map::new())
            .unwrap();
        tracker
            .track(&pubsub, "t", "b", InstanceId(2), Map::new())
            .unwrap();
        assert_eq!(diffs(&out).len(), 1);
        let t0 = Instant::now();
        tracker.flush_due_at(&pubsub, t0 + Duration::from_secs(3600));
        assert_eq!(diffs(&out).len(), 1, "the held-back join");
        // A window with nothing held back (stretched to two hours after one merged
        // window) ends the burst and forgets the topic.
        tracker.flush_due_at(&pubsub, t0 + Duration::from_secs(3 * 3600));
        assert!(tracker.bursts.is_empty());
        tracker.untrack(&pubsub, "t", "a", InstanceId(1));
        assert_eq!(keys(&diffs(&out)[0]["leaves"]), ["a"], "sent at once");
    }

    /// A list as phoenix.js holds it: key → `phx_ref`s.
    type View = std::collections::BTreeMap<String, Vec<String>>;

    fn view(list: &Value) -> View {
        let refs = |entry: &Value| -> Vec<String> {
            entry["metas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["phx_ref"].as_str().unwrap().to_owned())
                .collect()
        };
        list.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), refs(v)))
            .collect()
    }

    /// phoenix.js' `syncDiff` (docs/protocol.md §6.4): joins (merging metas by
    /// `phx_ref`), then leaves.
    fn apply(view: &mut View, diff: &Value) {
        for (key, refs) in self::view(&diff["joins"]) {
            let metas = view.entry(key).or_default();
            metas.retain(|r| !refs.contains(r));
            metas.extend(refs);
        }
        for (key, refs) in self::view(&diff["leaves"]) {
            if let Some(metas) = view.get_mut(&key) {
                metas.retain(|r| !refs.contains(r));
                if metas.is_empty() {
                    view.remove(&key);
                }
            }
        }
    }

    fn listed(tracker: &Tracker, topic: &str) -> Value {
        let Payload::Json(list) = tracker.list(topic) else {
            panic!("a list is JSON")
        };
        serde_json::from_str(list.get()).unwrap()
    }

    fn live(tracker: &Tracker, topic: &str) -> View {
        let Payload::Json(list) = tracker.render_list(topic) else {
            panic!("a list is JSON")
        };
        view(&serde_json::from_str(list.get()).unwrap())
    }

    #[test]
    fn during_a_burst_joiners_share_the_flushed_list_and_the_pending_diff_completes_it() {
        let policy = BurstPolicy {
            limit: 1,
            window: Duration::from_millis(25),
        };
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, policy);
        let first = listener_as(&pubsub, "t", InstanceId(1000));
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            tracker
                .track(&pubsub, "t", key, InstanceId(i as u64), Map::new())
                .unwrap();
        }
        // Held back since "b": a list asked now is rendered live (no flush yet).
        assert_eq!(view(&listed(&tracker, "t")), live(&tracker, "t"));
        // The flushes' clock is an hour ahead of the real one: the tracks below (real
        // time) then always fall inside the current window, however long this machine
        // stalls between two lines, so the test never depends on timing.
        let t0 = Instant::now() + Duration::from_secs(3600);
        tracker.flush_due_at(&pubsub, t0 + Duration::from_millis(25));
        let at_flush = live(&tracker, "t");
        assert_eq!(diffs(&first).len(), 2, "a's diff, then b, c, d merged");

        // The storm goes on: e and f join, a leaves, all held back.
        for (i, key) in ["e", "f"].into_iter().enumerate() {
            tracker
                .track(&pubsub, "t", key, InstanceId(10 + i as u64), Map::new())
                .unwrap();
        }
        tracker.untrack(&pubsub, "t", "a", InstanceId(0));
        // A channel joining now subscribes, then lists: it gets the list at the flush.
        let joiner = listener_as(&pubsub, "t", InstanceId(1001));
        let mut joined = view(&listed(&tracker, "t"));
        assert_eq!(joined, at_flush, "the shared snapshot");
        assert_ne!(joined, live(&tracker, "t"));
        // The next (stretched, 50 ms) flush brings it the rest.
        tracker.flush_due_at(&pubsub, t0 + Duration::from_millis(74));
        assert!(diffs(&joiner).is_empty());
        tracker.flush_due_at(&pubsub, t0 + Duration::from_millis(75));
        for diff in diffs(&joiner) {
            apply(&mut joined, &diff);
        }
        assert_eq!(joined, live(&tracker, "t"));
        assert_eq!(
            keys(&serde_json::to_value(&joined).unwrap()),
            ["b", "c", "d", "e", "f"]
        );

        assert!(tracker.bursts.get("t").unwrap().snapshot.is_some());

        // Nothing more for a window (100 ms now), and the flusher has not run yet: the
        // next change goes out at once, so a later joiner must not get the snapshot.
        let quiet = t0 + Duration::from_millis(175);
        let meta = RawValue::from_string(r#"{"phx_ref":"z1"}"#.to_owned()).unwrap();
        tracker.broadcast_at(&pubsub, "t", Diff::join("z", meta), quiet);
        assert!(tracker.bursts.get("t").unwrap().snapshot.is_none());
        assert_eq!(view(&listed(&tracker, "t")), live(&tracker, "t"));
    }

    #[test]
    fn fetch_decorates_lists_and_diffs_once_per_key() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(Some(Arc::new(Decorate)), EXACT);
        let out = listener(&pubsub, "t");
        tracker
            .track(&pubsub, "t", "eve", InstanceId(1), Map::new())
            .unwrap();
        assert_eq!(
            diffs(&out)[0]["joins"]["eve"]["user"],
            json!({"name": "EVE"})
        );
        let Payload::Json(list) = tracker.list("t") else {
            panic!()
        };
        let list: Value = serde_json::from_str(list.get()).unwrap();
        assert_eq!(list["eve"]["user"], json!({"name": "EVE"}));
    }
    /// The `phx_ref`s of `key`'s metas in `topic`'s list, in order.
    fn refs(tracker: &Tracker, topic: &str, key: &str) -> Vec<String> {
        let Payload::Json(list) = tracker.list(topic) else {
            panic!("a list is JSON")
        };
        let list: Value = serde_json::from_str(list.get()).unwrap();
        list[key]["metas"]
            .as_array()
            .map(|metas| {
                metas
                    .iter()
                    .map(|m| m["phx_ref"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn raw(v: Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    #[test]
    fn untracking_one_topic_leaves_the_instance_s_other_topics_to_its_end() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, EXACT);
        let out_b = listener(&pubsub, "b");
        for topic in ["a", "b"] {
            tracker
                .track(&pubsub, topic, "k", InstanceId(7), Map::new())
                .unwrap();
        }
        tracker.untrack(&pubsub, "a", "k", InstanceId(7));
        assert_eq!(tracker.key_count("a"), 0);
        diffs(&out_b);
        // The instance ends: its presence in "b" must still leave.
        tracker.untrack_instance_with(&pubsub, InstanceId(7));
        assert_eq!(tracker.key_count("b"), 0);
        assert_eq!(diffs(&out_b).len(), 1, "one leave diff for b");
    }

    #[test]
    fn remote_metas_are_added_once_and_removed_only_by_their_node_and_ref() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, EXACT);
        let out = listener(&pubsub, "t");
        let local = tracker
            .track(&pubsub, "t", "k", InstanceId(1), Map::new())
            .unwrap();
        // A meta's JSON carries its phx_ref, as the owner node rendered it.
        assert!(tracker.insert_remote(
            &pubsub,
            9,
            "t",
            "k",
            "r1",
            raw(json!({"n": 1, "phx_ref": "r1"}))
        ));
        assert!(
            !tracker.insert_remote(
                &pubsub,
                9,
                "t",
                "k",
                "r1",
                raw(json!({"n": 1, "phx_ref": "r1"}))
            ),
            "the same ref twice is one meta"
        );
        assert!(tracker.insert_remote(
            &pubsub,
            9,
            "t",
            "k",
            "r2",
            raw(json!({"n": 2, "phx_ref": "r2"}))
        ));
        assert_eq!(refs(&tracker, "t", "k"), [local.as_str(), "r1", "r2"]);
        assert_eq!(diffs(&out).len(), 3, "one join diff per new meta");

        // Node 9's r2, not its earlier r1 nor the local meta.
        assert!(tracker.remove_remote(&pubsub, 9, "t", "k", "r2"));
        assert_eq!(refs(&tracker, "t", "k"), [local.as_str(), "r1"]);
        assert_eq!(
            diffs(&out),
            vec![json!({"joins": {}, "leaves": {"k": {"metas": [{"n": 2, "phx_ref": "r2"}]}}})]
        );
        // Another node cannot remove node 9's meta, nor anyone a ref that is not there.
        assert!(!tracker.remove_remote(&pubsub, 8, "t", "k", "r1"));
        assert!(!tracker.remove_remote(&pubsub, 9, "t", "k", "r9"));
        assert!(!tracker.remove_remote(&pubsub, 9, "t", "k", &local));
        assert_eq!(refs(&tracker, "t", "k"), [local.as_str(), "r1"]);
        assert!(diffs(&out).is_empty());
    }

    #[test]
    fn local_entries_are_this_node_s_own_metas_only() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, EXACT);
        let mine = tracker
            .track(&pubsub, "t", "a", InstanceId(1), meta(json!({"x": 1})))
            .unwrap();
        tracker.insert_remote(&pubsub, 9, "t", "b", "r1", raw(json!({"phx_ref": "r1"})));
        let entries = tracker.local_entries();
        assert_eq!(entries.len(), 1, "{entries:?}");
        let Change::Join {
            topic,
            key,
            phx_ref,
            meta,
        } = &entries[0]
        else {
            panic!("a join: {entries:?}")
        };
        assert_eq!((topic.as_str(), key.as_str()), ("t", "a"));
        assert_eq!(phx_ref, &mine);
        assert_eq!(
            serde_json::from_str::<Value>(meta.get()).unwrap(),
            json!({"x": 1, "phx_ref": mine})
        );
    }

    #[test]
    fn flush_due_sends_the_diffs_a_burst_held_back() {
        let pubsub = PubSub::default();
        let window = Duration::from_millis(300);
        let tracker = Tracker::new(None, BurstPolicy { limit: 1, window });
        let out = listener(&pubsub, "t");
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            tracker
                .track(&pubsub, "t", key, InstanceId(i as u64 + 1), Map::new())
                .unwrap();
        }
        // "a" went out alone; "b" and "c" (unless this thread was paused for a whole
        // window between the tracks) wait for the window's end, which only the flusher
        // acts on.
        std::thread::sleep(window + Duration::from_millis(100));
        tracker.flush_due(&pubsub);
        let mut joined: Vec<String> = diffs(&out)
            .iter()
            .flat_map(|d| {
                d["joins"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        joined.sort();
        assert_eq!(joined, ["a", "b", "c"]);
    }
}
