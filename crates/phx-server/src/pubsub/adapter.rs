//! The cluster boundary: how a node's PubSub and presence tracker reach other nodes
//! (Phoenix's `Phoenix.PubSub.Adapter`).
//!
//! Local delivery never goes through an adapter: a broadcast is written to this node's
//! subscribers first, encoded once per serializer, then handed to the adapter as one
//! compact [`wire`](super::wire) envelope for the other nodes. An adapter only moves
//! bytes: it knows topics (to subscribe a node only to topics it has local subscribers
//! for) and a control channel every node listens on (presence replication). The Redis
//! adapter ([`RedisAdapter`](super::redis::RedisAdapter)) is one; another engine (NATS,
//! say) implements [`Adapter`] the same way — publish and subscribe per topic, one
//! control subject — without touching channels or presence.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use phx_protocol::Payload;

/// A cluster transport between the nodes of one application.
///
/// Every method is called from inside the server's hot paths (a broadcast, a join): it
/// must return at once, queueing the work (and dropping it, counted, when the engine is
/// unreachable and its queue full: nothing may grow without bound while it is away).
pub trait Adapter: Send + Sync + fmt::Debug + 'static {
    /// Sends a topic message to every other node subscribed to `topic`. Fire and forget;
    /// messages of one node to one topic arrive in the order they were sent.
    fn publish(&self, topic: &str, message: Bytes);
    /// This node got its first local subscriber of `topic`: receive the topic's messages.
    fn subscribe(&self, topic: &str);
    /// Resolves once the engine confirmed that this node receives `topic` (after
    /// [`subscribe`](Self::subscribe)); `None` when there is nothing to wait for
    /// (confirmed already, or the link is down and the node serves locally). A join is
    /// replied to only after this, so a broadcast another node sends right after the
    /// reply is not missed. Default: nothing to wait for.
    fn subscribed(&self, _topic: &str) -> Option<Subscribed> {
        None
    }
    /// This node's last local subscriber of `topic` left.
    fn unsubscribe(&self, topic: &str);
    /// Sends a control message (presence replication) to every node, this one included.
    fn publish_control(&self, message: Bytes);
    /// Whether the link to the engine is up now (readiness; default: always).
    fn is_up(&self) -> bool {
        true
    }
    /// Starts delivering what arrives to `inbound`; called once, when the endpoint is
    /// built inside a tokio runtime.
    fn start(&self, inbound: Arc<dyn Inbound>);
}

/// A wait for a subscription's confirmation (see [`Adapter::subscribed`]).
pub type Subscribed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where an adapter delivers what it receives.
pub trait Inbound: Send + Sync + 'static {
    /// A topic message from another node (or this one: the receiver drops its own).
    fn topic_message(&self, topic: &str, message: Bytes);
    /// A control message.
    fn control_message(&self, message: Bytes);
    /// The link to the engine came up (again, after an outage: resubscribed) or went
    /// down.
    fn link(&self, up: bool);
    /// A broadcast the adapter read from nodes of another framework (Phoenix nodes, in
    /// the Redis adapter's [Phoenix mode](crate::cluster::PhoenixPubSub)): delivered to
    /// this node's subscribers of `topic` only, the way `dispatch` says.
    fn foreign_broadcast(&self, topic: &str, event: &str, payload: Payload, dispatch: Dispatch);
}

/// How a broadcast from a Phoenix node is handed to subscribers: the dispatcher the
/// Phoenix side published it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dispatch {
    /// `Phoenix.Channel.Server`, the fastlane (every `Endpoint.broadcast` and channel
    /// `broadcast`): written to each socket, encoded once per serializer; a channel
    /// that intercepts the event gets it in `handle_out` instead. The same as a
    /// broadcast that starts on this node.
    Fastlane,
    /// `Phoenix.PubSub` (a `%Phoenix.Socket.Broadcast{}` passed to
    /// `Phoenix.PubSub.broadcast/3` directly): Phoenix sends the struct to every channel
    /// process, so every channel's `handle_out` runs, whatever the event.
    HandleOut,
}
