//! Presence (§6): who is in a topic, with one meta per tracked channel instance.
//!
//! The tracker keeps, per topic, `key → [meta]` where each meta carries its `phx_ref`.
//! Every change (track, update, untrack, the channel ending) broadcasts one
//! `presence_diff` on the topic at once, as Phoenix does; only a burst of changes in one
//! topic is merged ([`burst`]). A joining channel pushes `presence_state`
//! (the full list) after its join reply. Work per change is O(1) in the number of
//! members: only the changed key's metas are touched and encoded, and the diff is
//! encoded once per serializer for the whole fan-out like any broadcast (§5).

mod burst;
mod tracker;

pub(crate) use burst::BurstPolicy;

pub(crate) use tracker::Tracker;
pub use tracker::{PresenceError, PresenceFetch};

use phx_protocol::Payload;
use serde_json::{Map, Value};

use crate::channel::InstanceId;
use crate::endpoint::Endpoint;

/// Presence of one channel's topic, from [`crate::ChannelContext::presence`].
///
/// The usual pattern: track after the join reply, then push the list (§6.2).
///
/// ```
/// use phx_server::{Channel, ChannelContext, HandleResult, Info, Payload};
/// use serde_json::{Map, Value};
///
/// struct AfterJoin;
///
/// #[derive(Default)]
/// struct Room {
///     user: String,
/// }
///
/// #[async_trait::async_trait]
/// impl Channel for Room {
///     async fn join(&mut self, _t: &str, _p: Payload, ctx: &mut ChannelContext<'_>) -> Result<Payload, Payload> {
///         self.user = "alice".into();
///         ctx.send_info(AfterJoin);
///         Ok(Payload::empty_object())
///     }
///     async fn handle_info(&mut self, _info: Info, ctx: &mut ChannelContext<'_>) -> HandleResult {
///         let mut meta = Map::new();
///         meta.insert("online_at".into(), Value::from("1732400000"));
///         let _ = ctx.presence().track(&self.user, meta);
///         let state = ctx.presence().list();
///         let _ = ctx.push("presence_state", state);
///         HandleResult::NoReply
///     }
///     async fn handle_in(&mut self, _e: &str, _p: Payload, _c: &mut ChannelContext<'_>) -> HandleResult {
///         HandleResult::NoReply
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Presence<'a> {
    endpoint: &'a Endpoint,
    topic: &'a str,
    instance: InstanceId,
}

impl<'a> Presence<'a> {
    pub(crate) fn new(endpoint: &'a Endpoint, topic: &'a str, instance: InstanceId) -> Self {
        Self {
            endpoint,
            topic,
            instance,
        }
    }

    /// Tracks this channel under `key` with `meta` (a JSON object); returns the new
    /// meta's `phx_ref`. A channel tracked twice under one key is refused, as Phoenix
    /// answers `{:error, {:already_tracked, …}}`.
    pub fn track(&mut self, key: &str, meta: Map<String, Value>) -> Result<String, PresenceError> {
        self.endpoint
            .tracker()
            .track(self.endpoint.pubsub(), self.topic, key, self.instance, meta)
    }

    /// Replaces this channel's meta under `key`: one diff with the new meta (carrying
    /// `phx_ref_prev`) in joins and the old one in leaves.
    pub fn update(&mut self, key: &str, meta: Map<String, Value>) -> Result<String, PresenceError> {
        self.endpoint
            .tracker()
            .update(self.endpoint.pubsub(), self.topic, key, self.instance, meta)
    }

    /// Stops tracking this channel under `key` (a leave diff); no-op if not tracked.
    pub fn untrack(&mut self, key: &str) {
        self.endpoint
            .tracker()
            .untrack(self.endpoint.pubsub(), self.topic, key, self.instance)
    }

    /// The topic's full presence map, `{key: {"metas": [...]}}`, decorated by the
    /// endpoint's [`PresenceFetch`] hook: the `presence_state` payload.
    pub fn list(&self) -> Payload {
        self.endpoint.tracker().list(self.topic)
    }
}
