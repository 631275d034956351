//! Runs a socket's callbacks while its transport keeps reading.
//!
//! In Phoenix every channel is its own process and the transport process answers
//! heartbeats itself, so a channel blocked on a database call never delays a heartbeat.
//! Here one task serves the socket, so the socket is moved into the future of the callback
//! in progress and handed back when it finishes; meanwhile the transport goes on reading:
//!
//! - heartbeats are answered at once (docs/protocol.md §3.1), busy or not;
//! - other client messages wait in a small queue and run one at a time, in order (§3.8);
//! - when that queue is full the transport stops reading (backpressure: the client's own
//!   TCP window fills, as it would in front of a busy Phoenix channel);
//! - the socket's inbound rate limit, if any, is applied as messages arrive.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phx_protocol::{event, Message, Outbound, Payload, PayloadRef, Serializer};
use serde_json::value::RawValue;

use super::{Flow, Socket, SocketInbox};
use crate::outbox::Outbox;
use crate::rate_limit::{RateLimit, RateLimiter, Verdict};
use crate::telemetry::Telemetry;

/// Client messages waiting while a callback runs, at most (and [`MAX_PENDING_BYTES`]).
const MAX_PENDING: usize = 32;
/// Payload bytes waiting while a callback runs, at most; one message of any accepted
/// size always fits an empty queue.
const MAX_PENDING_BYTES: usize = 1024 * 1024;
/// How long closing waits for the callback in progress before dropping it.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Close code for a client that keeps sending past its rate limit: 1008, policy
/// violation (any code but 1000 makes phoenix.js reconnect, with its backoff).
pub(crate) const CLOSE_POLICY_VIOLATION: u16 = 1008;

type Callback = Pin<Box<dyn Future<Output = (Socket, Flow)> + Send>>;

/// A client message waiting for its turn.
enum Pending {
    /// To be handled by the socket.
    Message(Message),
    /// Over the rate limit: answered `{"reason":"rate limited"}` in its turn, so replies
    /// keep the order of the messages (§3.8).
    Refused(Message),
}

impl Pending {
    fn message(&self) -> &Message {
        match self {
            Self::Message(msg) | Self::Refused(msg) => msg,
        }
    }
}

/// A socket and the callback it is running, if any.
pub(crate) struct Driver {
    /// `Some` while no callback runs.
    socket: Option<Socket>,
    /// The callback in progress; it owns the socket until it finishes.
    busy: Option<Callback>,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    serializer: Serializer,
    outbox: Outbox,
    inbox: SocketInbox,
    limiter: Option<RateLimiter>,
    telemetry: Arc<Telemetry>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("busy", &self.busy.is_some())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

fn payload_len(msg: &Message) -> usize {
    match &msg.payload {
        Payload::Json(raw) => raw.get().len(),
        Payload::Binary(bytes) => bytes.len(),
    }
}

fn json(text: &'static str) -> &'static RawValue {
    // Only called with the literal JSON constants of this module.
    serde_json::from_str(text).expect("static JSON")
}

/// Writes a reply straight to the outbox, without the socket (it may be busy).
/// Returns whether it was queued.
fn reply(
    serializer: Serializer,
    outbox: &Outbox,
    msg: &Message,
    join_ref: bool,
    status: &str,
    response: &'static str,
) -> bool {
    let mut buf = Vec::new();
    let reply = Outbound::Reply {
        join_ref: if join_ref {
            msg.join_ref.as_ref()
        } else {
            None
        },
        r#ref: msg.r#ref.as_ref(),
        topic: &msg.topic,
        status,
        response: PayloadRef::Json(json(response)),
    };
    let written = serializer
        .encode(&reply, &mut buf)
        .map_err(|e| e.to_string())
        .and_then(|kind| outbox.frame(kind, &buf).map_err(|e| e.to_string()))
        .and_then(|frame| outbox.send(frame).map_err(|e| e.to_string()));
    match written {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, "reply not written");
            false
        }
    }
}

/// §3.1: a heartbeat is answered by the socket itself, join_ref always null.
pub(crate) fn is_heartbeat(msg: &Message) -> bool {
    msg.topic == event::PHOENIX_TOPIC && msg.event == event::HEARTBEAT
}

/// Writes the reply to a heartbeat.
pub(crate) fn answer_heartbeat(serializer: Serializer, outbox: &Outbox, msg: &Message) -> bool {
    reply(serializer, outbox, msg, false, "ok", "{}")
}

impl Driver {
    pub(crate) fn new(socket: Socket, inbox: SocketInbox, limit: Option<RateLimit>) -> Self {
        Self {
            telemetry: socket.core.hub.telemetry.clone(),
            serializer: socket.serializer(),
            outbox: socket.core.outbox.clone(),
            socket: Some(socket),
            busy: None,
            pending: VecDeque::new(),
            pending_bytes: 0,
            inbox,
            limiter: limit.map(|l| RateLimiter::new(l, Instant::now())),
        }
    }

    /// The serializer the client speaks.
    pub(crate) fn serializer(&self) -> Serializer {
        self.serializer
    }

    /// Whether the transport should read another client message now.
    pub(crate) fn accepts(&self) -> bool {
        self.pending.len() < MAX_PENDING && self.pending_bytes <= MAX_PENDING_BYTES
    }

    /// Takes one decoded client message: a heartbeat is answered now, anything else
    /// waits its turn (see [`Driver::step`]). `Close` when the client ignores its rate
    /// limit.
    pub(crate) fn receive(&mut self, msg: Message, now: Instant) -> Flow {
        self.telemetry.message_in(self.outbox.transport());
        if is_heartbeat(&msg) {
            if answer_heartbeat(self.serializer, &self.outbox, &msg) {
                self.telemetry.messages_out.increment(1);
            }
            return Flow::Continue;
        }
        if let Some(limiter) = &mut self.limiter {
            match limiter.check(msg.event == event::JOIN, now) {
                Verdict::Allow => {}
                Verdict::Refuse => {
                    if msg.r#ref.is_some() {
                        self.pending_bytes += payload_len(&msg);
                        self.pending.push_back(Pending::Refused(msg));
                    }
                    return Flow::Continue;
                }
                Verdict::Close => {
                    tracing::warn!("client keeps sending past its rate limit: closing");
                    return Flow::Close(CLOSE_POLICY_VIOLATION);
                }
            }
        }
        self.pending_bytes += payload_len(&msg);
        self.pending.push_back(Pending::Message(msg));
        Flow::Continue
    }

    /// Runs the next callback to its end: the oldest waiting client message, else the
    /// next message from the socket's inbox (intercepted broadcasts, infos, disconnect).
    /// Waits if there is nothing to do.
    ///
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a callback in progress lives in `self` and continues at the next
    /// call; a message is only taken from a queue when its callback is started, with no
    /// await in between.
    /// With `may_start` false (the client's outbound queue is full) only a callback
    /// already in progress runs on: nothing new starts until the client reads.
    pub(crate) async fn step(&mut self, may_start: bool) -> Flow {
        if self.busy.is_none() {
            if !may_start {
                return std::future::pending().await;
            }
            if let Some(next) = self.pending.pop_front() {
                self.pending_bytes -= payload_len(next.message());
                if self.pending.is_empty() {
                    // An idle socket keeps no queue allocation.
                    self.pending = VecDeque::new();
                }
                let msg = match next {
                    Pending::Message(msg) => msg,
                    Pending::Refused(msg) => {
                        let response = r#"{"reason":"rate limited"}"#;
                        if reply(self.serializer, &self.outbox, &msg, true, "error", response) {
                            self.telemetry.messages_out.increment(1);
                        }
                        return Flow::Continue;
                    }
                };
                let mut socket = self.take_socket();
                self.busy = Some(Box::pin(async move {
                    let flow = socket.handle_message(msg).await;
                    (socket, flow)
                }));
            } else {
                let msg = self.inbox.recv().await;
                let mut socket = self.take_socket();
                self.busy = Some(Box::pin(async move {
                    let flow = socket.handle_msg(msg).await;
                    (socket, flow)
                }));
            }
        }
        let Some(busy) = self.busy.as_mut() else {
            return Flow::Continue;
        };
        let (socket, flow) = busy.await;
        self.busy = None;
        self.socket = Some(socket);
        flow
    }

    fn take_socket(&mut self) -> Socket {
        // Invariant: the socket is here whenever no callback runs, and `step` starts a
        // callback only when none runs.
        self.socket.take().expect("socket present while idle")
    }

    /// The connection ended: lets the callback in progress finish (for a bounded time),
    /// then terminates every channel (§3.7). Waiting client messages are dropped.
    pub(crate) async fn close(mut self) {
        self.pending.clear();
        if let Some(busy) = self.busy.take() {
            match tokio::time::timeout(CLOSE_WAIT, busy).await {
                Ok((socket, _)) => self.socket = Some(socket),
                // Dropping the callback drops the socket: its Drop releases presences
                // and subscriptions, without terminate.
                Err(_) => tracing::warn!("channel callback still running at close: dropped"),
            }
        }
        if let Some(mut socket) = self.socket.take() {
            socket.close().await;
        }
    }
}
