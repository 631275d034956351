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
pub(crate) mod replica;
mod tracker;

pub(crate) use burst::BurstPolicy;

pub(crate) use tracker::{NodeInbound, Tracker};
pub use tracker::{PresenceError, PresenceFetch};

use phx_protocol::Payload;
use serde_json::{Map, Value};

use crate::pubsub::{InstanceId, PubSub};

/// Presence of one channel's topic, from
/// [`ChannelContext::presence`](crate::ChannelContext::presence).
///
/// The usual pattern: track after the join reply, then push the list (docs/protocol.md
/// §6.2), as Phoenix's `handle_info(:after_join, socket)` does.
///
/// ```
/// use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload};
/// use serde_json::json;
///
/// struct AfterJoin;
///
/// #[derive(Default)]
/// struct Room;
///
/// impl Channel for Room {
///     type Assigns = String; // the user's name, from connect
///     type Info = AfterJoin;
///
///     async fn join(&mut self, _topic: &str, _p: Payload, ctx: &mut ChannelContext<'_, Self>) -> JoinResult {
///         ctx.send_info(AfterJoin);
///         Ok(json!({}).into())
///     }
///
///     async fn handle_info(&mut self, _: AfterJoin, ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
///         let user = ctx.assigns().clone();
///         let _ = ctx.presence().track(&user, json!({"online_at": "1732400000"}));
///         let _ = ctx.push("presence_state", ctx.presence().list());
///         HandleResult::noreply()
///     }
///
///     async fn handle_in(&mut self, _e: &str, _p: Payload, _ctx: &mut ChannelContext<'_, Self>) -> HandleResult {
///         HandleResult::noreply()
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Presence<'a> {
    pubsub: &'a PubSub,
    tracker: &'a Tracker,
    topic: &'a str,
    instance: InstanceId,
}

impl<'a> Presence<'a> {
    pub(crate) fn new(
        pubsub: &'a PubSub,
        tracker: &'a Tracker,
        topic: &'a str,
        instance: InstanceId,
    ) -> Self {
        Self {
            pubsub,
            tracker,
            topic,
            instance,
        }
    }

    /// Tracks this channel under `key` with `meta` (a JSON object); returns the new
    /// meta's `phx_ref`. A channel tracked twice under one key is refused, as Phoenix
    /// answers `{:error, {:already_tracked, …}}`.
    pub fn track(&self, key: &str, meta: impl Into<Value>) -> Result<String, PresenceError> {
        let meta = object(meta.into())?;
        self.tracker
            .track(self.pubsub, self.topic, key, self.instance, meta)
    }

    /// Replaces this channel's meta under `key`: one diff with the new meta (carrying
    /// `phx_ref_prev`) in joins and the old one in leaves.
    pub fn update(&self, key: &str, meta: impl Into<Value>) -> Result<String, PresenceError> {
        let meta = object(meta.into())?;
        self.tracker
            .update(self.pubsub, self.topic, key, self.instance, meta)
    }

    /// Stops tracking this channel under `key` (a leave diff); no-op if not tracked.
    pub fn untrack(&self, key: &str) {
        self.tracker
            .untrack(self.pubsub, self.topic, key, self.instance)
    }

    /// The topic's full presence map, `{key: {"metas": [...]}}`, decorated by the
    /// endpoint's [`PresenceFetch`] hook: the `presence_state` payload.
    pub fn list(&self) -> Payload {
        self.tracker.list(self.topic)
    }
}

fn object(meta: Value) -> Result<Map<String, Value>, PresenceError> {
    match meta {
        Value::Object(map) => Ok(map),
        _ => Err(PresenceError::MetaNotAnObject),
    }
}
