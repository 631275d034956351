//! PubSub: topic subscriptions and broadcast fan-out (docs/protocol.md §5).
//!
//! A channel subscribes with "fastlane" data: its socket's [`Outbox`], serializer and
//! intercepted events. A broadcast of an event the channel does not intercept is written
//! straight to the socket, encoded once per (serializer, transport) for the whole
//! fan-out; an intercepted one goes to the channel's `handle_out` through the socket's
//! [`Mailbox`]. A socket with an id also subscribes to that id, for `disconnect`.
//!
//! This module knows nothing of sockets or channels beyond those two ways in: the
//! socket layer implements [`Mailbox`].

pub(crate) mod adapter;
pub(crate) mod phoenix;
pub(crate) mod redis;
pub(crate) mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use phx_protocol::{event, Outbound, Payload, Serializer};

use crate::outbox::{Outbox, ENCODINGS};
use crate::telemetry::Telemetry;
use adapter::{Adapter, Dispatch};

/// Close code for `disconnect` on a socket id (docs/protocol.md §1.7, Phoenix ≥ 1.8.8).
pub(crate) const CLOSE_DISCONNECT: u16 = 1001;

/// Channel identity within the process: tells a channel from the one that replaced it on
/// the same topic (duplicate join, rejoin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub(crate) u64);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A broadcast as intercepting channels receive it.
#[derive(Debug)]
pub(crate) struct Broadcast {
    pub(crate) event: String,
    pub(crate) payload: Payload,
}

/// How PubSub reaches a socket for what is not written straight to its outbox.
pub(crate) trait Mailbox: Send + Sync + fmt::Debug {
    /// An intercepted broadcast for one channel instance of the socket.
    fn intercepted(&self, instance: InstanceId, broadcast: Arc<Broadcast>);
    /// `disconnect` arrived on the socket's id topic; its outbox is already closed.
    fn disconnect(&self);
}

#[derive(Debug)]
pub(crate) enum Target {
    /// A channel.
    Channel {
        outbox: Outbox,
        serializer: Serializer,
        mailbox: Arc<dyn Mailbox>,
        intercepts: &'static [&'static str],
    },
    /// A socket listening on its own id topic (docs/protocol.md §1.7).
    Socket {
        mailbox: Arc<dyn Mailbox>,
        outbox: Outbox,
    },
    /// Code that is not a channel, getting every broadcast of the topic through its
    /// mailbox (a test probe).
    Listener(Arc<dyn Mailbox>),
}

#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) instance: InstanceId,
    pub(crate) target: Target,
}

/// Why a broadcast was not delivered to anyone.
///
/// ```
/// use phx_server::{BroadcastError, Endpoint};
/// use serde_json::json;
///
/// let endpoint = Endpoint::builder().build();
/// assert_eq!(endpoint.broadcast("room:1", "n", json!(7)), Err(BroadcastError::NotAnObject));
/// // A topic nobody joined is not an error.
/// assert_eq!(endpoint.broadcast("room:1", "n", json!({"n": 7})), Ok(()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// Payloads of pushes and broadcasts must be objects or binary (docs/protocol.md §5).
    #[error("broadcast payloads must be JSON objects or binary")]
    NotAnObject,
}

#[derive(Debug)]
struct Inner {
    topics: DashMap<String, Vec<Subscriber>>,
    instances: AtomicU64,
    /// This node's id in the cluster: random per process start, so a restarted node is
    /// a new node to the others.
    node: u64,
    /// The cluster, when there is one (set once, when the endpoint is built).
    adapter: OnceLock<Arc<dyn Adapter>>,
    /// Joins in a cluster waiting for the engine to confirm their topic's subscription,
    /// per topic (one per join in progress): the topic stays subscribed meanwhile.
    pending: Mutex<HashMap<String, usize>>,
    telemetry: Arc<Telemetry>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            topics: DashMap::new(),
            instances: AtomicU64::new(0),
            node: rand::random::<u64>().max(1),
            adapter: OnceLock::new(),
            pending: Mutex::new(HashMap::new()),
            telemetry: Arc::new(Telemetry::new()),
        }
    }
}

/// How long a join waits for its topic's subscription on the cluster engine at most;
/// past it, the join is replied to anyway (the subscription completes later).
pub(crate) const JOIN_SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);

/// A join waiting for its topic's cluster subscription (see [`PubSub::prepare_remote`]).
pub(crate) struct RemoteJoin {
    pubsub: PubSub,
    topic: String,
    wait: Option<adapter::Subscribed>,
}

impl RemoteJoin {
    /// Waits for the engine's confirmation, at most [`JOIN_SUBSCRIBE_WAIT`].
    pub(crate) async fn confirmed(&mut self) {
        if let Some(wait) = self.wait.take() {
            let _ = tokio::time::timeout(JOIN_SUBSCRIBE_WAIT, wait).await;
        }
    }
}

impl Drop for RemoteJoin {
    fn drop(&mut self) {
        let inner = &self.pubsub.inner;
        if let Ok(mut pending) = inner.pending.lock() {
            if let Some(count) = pending.get_mut(&self.topic) {
                *count -= 1;
                if *count == 0 {
                    pending.remove(&self.topic);
                }
            }
        }
        // The join failed or its socket went away before subscribing locally: undo.
        // Lock order as in `unsubscribe`: the topic, then `pending`.
        if let dashmap::Entry::Vacant(_) = inner.topics.entry(self.topic.clone()) {
            if let (false, Some(adapter)) =
                (self.pubsub.joins_pending(&self.topic), inner.adapter.get())
            {
                adapter.unsubscribe(&self.topic);
            }
        }
    }
}

/// The endpoint's PubSub (Phoenix's `Phoenix.PubSub` server): broadcast to a topic from
/// anywhere. Cheap to clone.
///
/// Channels reach it with [`ChannelContext::pubsub`](crate::ChannelContext::pubsub), other
/// code with [`Endpoint::pubsub`](crate::Endpoint::pubsub).
///
/// ```
/// # async fn run(endpoint: phx_server::Endpoint) {
/// let pubsub = endpoint.pubsub().clone();
/// tokio::spawn(async move {
///     // A background job announcing something to everyone in room:lobby.
///     let _ = pubsub.broadcast("room:lobby", "announcement", serde_json::json!({"text": "hi"}));
/// });
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct PubSub {
    inner: Arc<Inner>,
}

impl PubSub {
    /// Sends `event` with `payload` to every subscriber of `topic` (Phoenix's
    /// `Endpoint.broadcast/3`). The payload must be a JSON object or binary.
    pub fn broadcast(
        &self,
        topic: &str,
        event: &str,
        payload: impl Into<Payload>,
    ) -> Result<(), BroadcastError> {
        self.broadcast_from(topic, event, payload.into(), None)
    }

    /// Closes every socket whose connect gave it this id, with 1001 (Phoenix's
    /// `Endpoint.broadcast(id, "disconnect", %{})`, docs/protocol.md §1.7).
    pub fn disconnect(&self, socket_id: &str) {
        let _ = self.broadcast(socket_id, event::DISCONNECT, Payload::empty_object());
    }

    /// Number of subscribers of a topic on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.inner.topics.get(topic).map_or(0, |s| s.len())
    }

    /// A new channel or socket identity.
    pub(crate) fn next_instance(&self) -> InstanceId {
        InstanceId(self.inner.instances.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// A PubSub counting into `telemetry`.
    pub(crate) fn with_telemetry(telemetry: Arc<Telemetry>) -> Self {
        Self {
            inner: Arc::new(Inner {
                telemetry,
                ..Inner::default()
            }),
        }
    }

    /// The endpoint's metric handles.
    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// This node's id in the cluster.
    pub(crate) fn node(&self) -> u64 {
        self.inner.node
    }

    /// Joins a cluster: from now on broadcasts also go to other nodes, and this node
    /// receives theirs for the topics it has subscribers of. Once only.
    pub(crate) fn set_adapter(&self, adapter: Arc<dyn Adapter>) {
        for topic in self.inner.topics.iter() {
            adapter.subscribe(topic.key());
        }
        let _ = self.inner.adapter.set(adapter);
    }

    pub(crate) fn adapter(&self) -> Option<&Arc<dyn Adapter>> {
        self.inner.adapter.get()
    }

    pub(crate) fn subscribe(&self, topic: &str, subscriber: Subscriber) {
        // The adapter hears of a topic's first subscriber under the topic's lock, so
        // it never sees "first subscriber" and "last left" out of order.
        self.inner
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| {
                if let Some(adapter) = self.adapter() {
                    adapter.subscribe(topic);
                }
                Vec::new()
            })
            .push(subscriber);
    }

    pub(crate) fn unsubscribe(&self, topic: &str, instance: InstanceId) {
        let empty = match self.inner.topics.get_mut(topic) {
            Some(mut subs) => {
                if let Some(at) = subs.iter().position(|s| s.instance == instance) {
                    subs.swap_remove(at);
                }
                subs.is_empty()
            }
            None => false,
        };
        if empty {
            self.inner.topics.remove_if(topic, |_, subs| {
                let last = subs.is_empty();
                if let (true, Some(adapter)) = (last, self.adapter()) {
                    if self.joins_pending(topic) {
                        // A join is waiting for this very subscription.
                        return last;
                    }
                    adapter.unsubscribe(topic);
                }
                last
            });
        }
    }

    fn joins_pending(&self, topic: &str) -> bool {
        self.inner
            .pending
            .lock()
            .map(|pending| pending.contains_key(topic))
            .unwrap_or(false)
    }

    /// Before a join is replied to in a cluster: subscribes this node to `topic` on the
    /// engine and returns a wait for the engine's confirmation, so that a broadcast
    /// another node sends right after the reply reaches this node. Without a cluster:
    /// nothing. The guard undoes the subscription if no local subscriber follows.
    pub(crate) fn prepare_remote(&self, topic: &str) -> Option<RemoteJoin> {
        let adapter = self.adapter()?;
        if let Ok(mut pending) = self.inner.pending.lock() {
            *pending.entry(topic.to_owned()).or_default() += 1;
        }
        adapter.subscribe(topic);
        Some(RemoteJoin {
            pubsub: self.clone(),
            topic: topic.to_owned(),
            wait: adapter.subscribed(topic),
        })
    }

    /// A broadcast from another node: delivered to this node's subscribers only.
    pub(crate) fn deliver_remote(&self, data: Bytes) {
        match wire::decode_broadcast(data) {
            Ok(remote) if remote.node == self.inner.node => {}
            Ok(remote) => {
                let _ = self.fan_out(&remote.topic, &remote.event, remote.payload, None, false);
            }
            Err(error) => tracing::warn!(%error, "broadcast from another node not understood"),
        }
    }

    /// A broadcast from a Phoenix node (the Redis adapter's Phoenix mode): delivered to
    /// this node's subscribers only, as that node's dispatcher would.
    pub(crate) fn deliver_foreign(
        &self,
        topic: &str,
        event: &str,
        payload: Payload,
        dispatch: Dispatch,
    ) {
        let handle_out = dispatch == Dispatch::HandleOut;
        let _ = self.fan_out(topic, event, payload, None, handle_out);
    }

    /// Delivers to this node's subscribers only (presence diffs: every node computes
    /// its own from the replicated state, as Phoenix.Tracker does).
    pub(crate) fn broadcast_local(
        &self,
        topic: &str,
        event: &str,
        payload: Payload,
    ) -> Result<(), BroadcastError> {
        check_object(&payload)?;
        self.fan_out(topic, event, payload, None, false)
    }

    /// Delivers to every subscriber of `topic` except `from` (`broadcast_from`), on this
    /// node and, in a cluster, on every other node subscribed to the topic.
    pub(crate) fn broadcast_from(
        &self,
        topic: &str,
        event: &str,
        payload: Payload,
        from: Option<InstanceId>,
    ) -> Result<(), BroadcastError> {
        check_object(&payload)?;
        if let Some(adapter) = self.adapter() {
            adapter.publish(
                topic,
                wire::encode_broadcast(self.inner.node, topic, event, payload.as_ref()),
            );
        }
        self.fan_out(topic, event, payload, from, false)
    }

    /// Delivers to this node's subscribers of `topic`, but `from`. With `handle_out`,
    /// every channel gets the broadcast in `handle_out`, as if it intercepted the event.
    fn fan_out(
        &self,
        topic: &str,
        event: &str,
        payload: Payload,
        from: Option<InstanceId>,
        handle_out: bool,
    ) -> Result<(), BroadcastError> {
        let telemetry = &self.inner.telemetry;
        telemetry.broadcasts.increment(1);
        let Some(subs) = self.inner.topics.get(topic) else {
            return Ok(());
        };
        let (mut delivered, mut dropped) = (0u64, 0u64);
        let mut encoded: [Option<Option<Bytes>>; ENCODINGS] = Default::default();
        let mut shared: Option<Arc<Broadcast>> = None;
        let mut scratch = Vec::new();
        let mut shared_broadcast = || {
            shared
                .get_or_insert_with(|| {
                    Arc::new(Broadcast {
                        event: event.to_owned(),
                        payload: payload.clone(),
                    })
                })
                .clone()
        };
        for sub in subs.iter() {
            if Some(sub.instance) == from {
                continue;
            }
            match &sub.target {
                // §1.7: only `disconnect` means something on a socket id topic
                // (Phoenix ignores other events there). The outbox is closed here, in
                // the broadcaster's call, so nothing the socket produces afterwards is
                // written, even a reply its own channel is about to send.
                Target::Socket { mailbox, outbox } => {
                    if event == event::DISCONNECT {
                        outbox.close(CLOSE_DISCONNECT);
                        mailbox.disconnect();
                    }
                }
                Target::Listener(mailbox) => {
                    mailbox.intercepted(sub.instance, shared_broadcast());
                }
                Target::Channel {
                    mailbox,
                    intercepts,
                    ..
                } if handle_out || intercepts.contains(&event) => {
                    mailbox.intercepted(sub.instance, shared_broadcast());
                }
                Target::Channel {
                    outbox, serializer, ..
                } => {
                    let slot = &mut encoded[outbox.encoding_index(*serializer)];
                    let frame = slot.get_or_insert_with(|| {
                        encode_broadcast(outbox, *serializer, topic, event, &payload, &mut scratch)
                    });
                    if let Some(frame) = frame {
                        match outbox.send(frame.clone()) {
                            Ok(()) => delivered += 1,
                            Err(_) => dropped += 1,
                        }
                    }
                }
            }
        }
        telemetry.deliveries.increment(delivered);
        if dropped > 0 {
            telemetry.frames_dropped.increment(dropped);
        }
        Ok(())
    }
}

fn check_object(payload: &Payload) -> Result<(), BroadcastError> {
    match payload {
        Payload::Json(raw) if !raw.get().trim_start().starts_with('{') => {
            Err(BroadcastError::NotAnObject)
        }
        _ => Ok(()),
    }
}

fn encode_broadcast(
    outbox: &Outbox,
    serializer: Serializer,
    topic: &str,
    event: &str,
    payload: &Payload,
    scratch: &mut Vec<u8>,
) -> Option<Bytes> {
    scratch.clear();
    let message = Outbound::Message {
        join_ref: None,
        r#ref: None,
        topic,
        event,
        payload: payload.as_ref(),
    };
    let encoded = serializer
        .encode(&message, scratch)
        .map_err(|e| tracing::warn!(error = %e, topic, event, "broadcast not encodable"))
        .ok()?;
    outbox
        .frame(encoded, scratch)
        .map_err(
            |e| tracing::debug!(error = %e, topic, event, "broadcast skipped for a subscriber"),
        )
        .ok()
}
