//! The presence tracker: state per topic, diffs, `phx_ref`s.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use phx_protocol::presence::format_phx_ref;
use phx_protocol::{event, Payload};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::channel::InstanceId;
use crate::pubsub::PubSub;

/// Why a presence call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    /// This channel is already tracked under that key (use `update`).
    #[error("already tracked under {0:?}")]
    AlreadyTracked(String),
    /// `update` of a key this channel does not track.
    #[error("not tracked under {0:?}")]
    NotTracked(String),
}

/// Decorates presence entries before they are sent (Phoenix's `fetch/2`): called once
/// per list and once per diff, with only the keys concerned, never once per client.
pub trait PresenceFetch: Send + Sync + 'static {
    /// `entries` maps each key to `{"metas": [...]}`; add fields beside `metas`.
    fn fetch(&self, topic: &str, entries: &mut Map<String, Value>);
}

struct Meta {
    instance: InstanceId,
    phx_ref: String,
    /// The meta object with `phx_ref` (and `phx_ref_prev`) as JSON text.
    json: Box<RawValue>,
}

type TopicState = HashMap<String, Vec<Meta>>;

/// Presence state of the whole node.
pub(crate) struct Tracker {
    topics: DashMap<String, TopicState>,
    /// Which (topic, key) pairs each channel instance is tracked under, to untrack all
    /// of them when the channel ends.
    by_instance: DashMap<InstanceId, Vec<(String, String)>>,
    node_hash: u16,
    unique: AtomicU16,
    fetch: Option<Arc<dyn PresenceFetch>>,
    /// Diffs of one topic closer together than this are merged (zero: never).
    batch_window: Duration,
    batches: DashMap<String, Batch>,
}

/// Per-topic throttle of diffs: the first change after a quiet window goes out at once;
/// changes within the window wait in `pending` and leave as one diff at its end.
#[derive(Default)]
struct Batch {
    last_flush: Option<Instant>,
    pending: Option<Diff>,
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
    pub(crate) fn new(fetch: Option<Arc<dyn PresenceFetch>>, batch_window: Duration) -> Self {
        Self {
            topics: DashMap::new(),
            by_instance: DashMap::new(),
            node_hash: rand::random(),
            unique: AtomicU16::new(rand::random()),
            fetch,
            batch_window,
            batches: DashMap::new(),
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
        {
            let mut state = self.topics.entry(topic.to_owned()).or_default();
            let metas = state.entry(key.to_owned()).or_default();
            if metas.iter().any(|m| m.instance == instance) {
                return Err(PresenceError::AlreadyTracked(key.to_owned()));
            }
            metas.push(Meta {
                instance,
                phx_ref: phx_ref.clone(),
                json: json.clone(),
            });
        }
        self.by_instance
            .entry(instance)
            .or_default()
            .push((topic.to_owned(), key.to_owned()));
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
        let diff = {
            let mut state = self
                .topics
                .get_mut(topic)
                .ok_or_else(|| PresenceError::NotTracked(key.to_owned()))?;
            let slot = state
                .get_mut(key)
                .and_then(|metas| metas.iter_mut().find(|m| m.instance == instance))
                .ok_or_else(|| PresenceError::NotTracked(key.to_owned()))?;
            let json = Self::meta_json(meta, &phx_ref, Some(&slot.phx_ref));
            let old = std::mem::replace(&mut slot.json, json.clone());
            slot.phx_ref = phx_ref.clone();
            let mut diff = Diff::join(key, json);
            diff.leaves.insert(key.to_owned(), vec![old]);
            diff
        };
        self.broadcast(pubsub, topic, diff);
        Ok(phx_ref)
    }

    pub(crate) fn untrack(&self, pubsub: &PubSub, topic: &str, key: &str, instance: InstanceId) {
        if let Some(left) = self.remove(topic, key, instance) {
            if let Some(mut pairs) = self.by_instance.get_mut(&instance) {
                pairs.retain(|(t, k)| !(t == topic && k == key));
            }
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
        for (topic, key) in &pairs {
            if let Some(left) = self.remove(topic, key, instance) {
                per_topic
                    .entry(topic)
                    .or_default()
                    .merge(Diff::leave(key, left));
            }
        }
        for (topic, diff) in per_topic {
            self.broadcast(pubsub, topic, diff);
        }
    }

    fn remove(&self, topic: &str, key: &str, instance: InstanceId) -> Option<Box<RawValue>> {
        let mut state = self.topics.get_mut(topic)?;
        let metas = state.get_mut(key)?;
        let at = metas.iter().position(|m| m.instance == instance)?;
        let left = metas.remove(at).json;
        if metas.is_empty() {
            state.remove(key);
        }
        let topic_empty = state.is_empty();
        drop(state);
        if topic_empty {
            self.topics.remove_if(topic, |_, s| s.is_empty());
        }
        Some(left)
    }

    /// `{key: {"metas": [...]}}` for the whole topic.
    pub(crate) fn list(&self, topic: &str) -> Payload {
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
        Payload::Json(RawValue::from_string(out).expect("valid presence JSON"))
    }

    /// Sends `diff` now, or merges it into the topic's pending batch (see [`Batch`]).
    fn broadcast(&self, pubsub: &PubSub, topic: &str, diff: Diff) {
        if self.batch_window.is_zero() {
            return self.send(pubsub, topic, diff);
        }
        let now = Instant::now();
        // The batch entry stays locked while sending, so one topic's diffs never
        // overtake each other between this path and `flush_due`.
        let mut batch = self.batches.entry(topic.to_owned()).or_default();
        if let Some(pending) = &mut batch.pending {
            pending.merge(diff);
        } else if batch
            .last_flush
            .is_none_or(|t| now.duration_since(t) >= self.batch_window)
        {
            batch.last_flush = Some(now);
            self.send(pubsub, topic, diff);
        } else {
            batch.pending = Some(diff);
        }
    }

    /// Sends every batch whose window has passed; forgets topics quiet for a while.
    /// Called every `batch_window` by the endpoint's flusher task.
    pub(crate) fn flush_due(&self, pubsub: &PubSub) {
        let now = Instant::now();
        let window = self.batch_window;
        self.batches.retain(|topic, batch| {
            let due = batch
                .last_flush
                .is_none_or(|t| now.duration_since(t) >= window);
            if due {
                if let Some(diff) = batch.pending.take() {
                    batch.last_flush = Some(now);
                    self.send(pubsub, topic, diff);
                }
            }
            batch.pending.is_some()
                || batch
                    .last_flush
                    .is_some_and(|t| now.duration_since(t) < window * 20)
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
        if let Err(error) =
            pubsub.broadcast(topic, event::PRESENCE_DIFF, Payload::Json(payload), None)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use phx_protocol::Serializer;
    use serde_json::{json, Value};

    use super::*;
    use crate::longpoll::LongPollBuffer;
    use crate::outbox::Outbox;
    use crate::pubsub::{Subscriber, Target};

    /// A pubsub with one V2 listener on `topic`, whose frames the test reads.
    fn listener(pubsub: &PubSub, topic: &str) -> Arc<LongPollBuffer> {
        let buffer = Arc::new(LongPollBuffer::new(1000));
        let inbox = crate::socket::SocketInbox::default();
        pubsub.subscribe(
            topic,
            Subscriber {
                instance: InstanceId(u64::MAX),
                target: Target::Channel {
                    outbox: Outbox::LongPoll(buffer.clone()),
                    serializer: Serializer::V2,
                    inbox,
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

    #[test]
    fn track_update_untrack_produce_phoenix_diffs() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, Duration::ZERO);
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
        let tracker = Tracker::new(None, Duration::ZERO);
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
        let tracker = Tracker::new(None, Duration::ZERO);
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
        let tracker = Tracker::new(None, Duration::ZERO);
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

    #[test]
    fn a_burst_within_the_window_is_one_merged_diff_after_an_immediate_first() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(None, Duration::from_secs(3600));
        let out = listener(&pubsub, "t");
        tracker
            .track(&pubsub, "t", "first", InstanceId(1), Map::new())
            .unwrap();
        assert_eq!(
            diffs(&out).len(),
            1,
            "the first change after a quiet window goes at once"
        );
        let r2 = tracker
            .track(&pubsub, "t", "a", InstanceId(2), Map::new())
            .unwrap();
        tracker
            .track(&pubsub, "t", "a", InstanceId(3), Map::new())
            .unwrap();
        tracker
            .track(&pubsub, "t", "b", InstanceId(4), Map::new())
            .unwrap();
        tracker.untrack_instance_with(&pubsub, InstanceId(4));
        tracker
            .update(&pubsub, "t", "a", InstanceId(2), meta(json!({"v": 2})))
            .unwrap();
        assert!(diffs(&out).is_empty(), "held until the window ends");
        // Force the window closed.
        if let Some(mut batch) = tracker.batches.get_mut("t") {
            batch.last_flush = Some(Instant::now() - Duration::from_secs(7200));
        }
        tracker.flush_due(&pubsub);
        let merged = diffs(&out);
        assert_eq!(merged.len(), 1);
        let diff = &merged[0];
        assert_eq!(
            diff["joins"]["a"]["metas"].as_array().unwrap().len(),
            3,
            "two tracks and the update"
        );
        assert_eq!(
            diff["leaves"]["a"]["metas"][0]["phx_ref"], r2,
            "the updated meta's old ref leaves"
        );
        assert_eq!(diff["joins"]["b"]["metas"].as_array().unwrap().len(), 1);
        assert_eq!(
            diff["leaves"]["b"]["metas"].as_array().unwrap().len(),
            1,
            "joined and left: net absent"
        );
    }

    #[test]
    fn fetch_decorates_lists_and_diffs_once_per_key() {
        let pubsub = PubSub::default();
        let tracker = Tracker::new(Some(Arc::new(Decorate)), Duration::ZERO);
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
}
