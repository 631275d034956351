//! Local PubSub: topic subscriptions and broadcast fan-out (§5).
//!
//! A channel subscribes with "fastlane" data: its socket's [`Outbox`], serializer and
//! intercepted events. A broadcast of an event the channel does not intercept is written
//! straight to the socket, encoded once per (serializer, transport) for the whole
//! fan-out; an intercepted one goes to the channel's `handle_out` through the socket task.

use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use phx_protocol::{Outbound, Payload, Serializer};

use crate::channel::InstanceId;
use crate::outbox::{Outbox, ENCODINGS};
use crate::socket::{SocketInbox, SocketMsg, CLOSE_DISCONNECT};

/// A broadcast as intercepting channels and socket-id subscribers receive it.
#[derive(Debug)]
pub(crate) struct Broadcast {
    pub(crate) event: String,
    pub(crate) payload: Payload,
}

#[derive(Debug)]
pub(crate) enum Target {
    /// A channel.
    Channel {
        outbox: Outbox,
        serializer: Serializer,
        inbox: SocketInbox,
        intercepts: &'static [&'static str],
    },
    /// A socket listening on its own id topic (§1.7).
    Socket { inbox: SocketInbox, outbox: Outbox },
}

#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) instance: InstanceId,
    pub(crate) target: Target,
}

/// Why a broadcast was not delivered to anyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// Payloads of pushes and broadcasts must be objects or binary (§5).
    #[error("broadcast payloads must be JSON objects or binary")]
    NotAnObject,
}

#[derive(Debug, Default)]
pub(crate) struct PubSub {
    topics: DashMap<String, Vec<Subscriber>>,
}

impl PubSub {
    pub(crate) fn subscribe(&self, topic: &str, subscriber: Subscriber) {
        self.topics
            .entry(topic.to_owned())
            .or_default()
            .push(subscriber);
    }

    pub(crate) fn unsubscribe(&self, topic: &str, instance: InstanceId) {
        let empty = match self.topics.get_mut(topic) {
            Some(mut subs) => {
                if let Some(at) = subs.iter().position(|s| s.instance == instance) {
                    subs.swap_remove(at);
                }
                subs.is_empty()
            }
            None => false,
        };
        if empty {
            self.topics.remove_if(topic, |_, subs| subs.is_empty());
        }
    }

    /// Number of subscribers of a topic.
    pub(crate) fn subscriber_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |s| s.len())
    }

    /// Delivers to every subscriber of `topic` except `from` (`broadcast_from`).
    pub(crate) fn broadcast(
        &self,
        topic: &str,
        event: &str,
        payload: Payload,
        from: Option<InstanceId>,
    ) -> Result<(), BroadcastError> {
        if let Payload::Json(raw) = &payload {
            if !raw.get().trim_start().starts_with('{') {
                return Err(BroadcastError::NotAnObject);
            }
        }
        let Some(subs) = self.topics.get(topic) else {
            return Ok(());
        };
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
                Target::Socket { inbox, outbox } => {
                    if event == phx_protocol::event::DISCONNECT {
                        outbox.close(CLOSE_DISCONNECT);
                        let _ = inbox.send(SocketMsg::Control(shared_broadcast()));
                    }
                }
                Target::Channel {
                    inbox, intercepts, ..
                } if intercepts.contains(&event) => {
                    let _ = inbox.send(SocketMsg::Intercepted(sub.instance, shared_broadcast()));
                }
                Target::Channel {
                    outbox, serializer, ..
                } => {
                    let slot = &mut encoded[outbox.encoding_index(*serializer)];
                    let frame = slot.get_or_insert_with(|| {
                        encode_broadcast(outbox, *serializer, topic, event, &payload, &mut scratch)
                    });
                    if let Some(frame) = frame {
                        let _ = outbox.send(frame.clone());
                    }
                }
            }
        }
        Ok(())
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
