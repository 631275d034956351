//! The one channel type behind every `[[socket.channel]]` route (docs/gateway.md,
//! "Channels"): join by rule or hook, events forwarded or broadcast or refused,
//! presence, outgoing rules, leave notifications.
//!
//! Hook calls are awaited inside the callbacks. phx-server runs a socket's callbacks one
//! at a time and answers heartbeats while one awaits (docs/protocol.md §3.8), so a
//! socket's messages keep their order, its heartbeats are never late, and each call is
//! bounded by its hook's timeout.

mod actions;
mod outgoing;
mod rate;

use std::sync::Arc;
use std::time::Instant;

use phx_server::{Channel, ChannelContext, HandleResult, JoinResult, Payload, TerminateReason};
use serde_json::{json, Map, Value};

use crate::auth::SocketState;
use crate::backend::notify::Notifier;
use crate::backend::{request_id, Backend, HookKind};
use crate::config::{ChannelSpec, Field, Handle, JoinPolicy};
use crate::protocol::{
    answer_payload, EventAnswer, EventRequest, JoinAnswer, JoinRequest, PayloadField, SocketInfo,
    Status,
};
use crate::vars::Vars;

/// What every channel of one route shares.
pub struct Route {
    pub spec: ChannelSpec,
    /// The pattern without its `*`: what `subtopic` is cut from.
    prefix: String,
    intercepts: &'static [&'static str],
    backend: Option<Arc<Backend>>,
    notifier: Option<Notifier>,
}

impl Route {
    pub fn new(
        spec: ChannelSpec,
        backend: Option<Arc<Backend>>,
        notifier: Option<Notifier>,
    ) -> Self {
        let prefix = spec.topic.strip_suffix('*').unwrap_or("").to_owned();
        // The events with outgoing rules, leaked once for the process's life: a channel
        // type's intercepts must be 'static (phx-server's `Channel::intercepts`).
        let mut events: Vec<&'static str> = Vec::new();
        for rule in &spec.outgoing {
            if !events.contains(&rule.event.as_str()) {
                events.push(Box::leak(rule.event.clone().into_boxed_str()));
            }
        }
        Self {
            spec,
            prefix,
            intercepts: Box::leak(events.into_boxed_slice()),
            backend,
            notifier,
        }
    }

    fn subtopic<'t>(&self, topic: &'t str) -> Option<&'t str> {
        if self.spec.topic.ends_with('*') {
            topic.strip_prefix(self.prefix.as_str())
        } else {
            None
        }
    }
}

/// One joined topic of one socket.
pub struct GatewayChannel {
    route: Arc<Route>,
    /// The channel assigns: from the join answer, changed by `assign` actions.
    assigns: Map<String, Value>,
    presence_key: Option<String>,
    on_terminate: Vec<Value>,
    /// One token bucket per `broadcast` rule with a `rate_limit`, by rule index.
    buckets: Vec<(usize, rate::Bucket)>,
}

impl GatewayChannel {
    pub fn new(route: Arc<Route>) -> Self {
        Self {
            route,
            assigns: Map::new(),
            presence_key: None,
            on_terminate: Vec::new(),
            buckets: Vec::new(),
        }
    }
}

/// Sent to itself from `join`: what runs once the join reply is out.
pub struct AfterJoin {
    presence: Option<(String, Map<String, Value>)>,
    actions: Vec<Value>,
    request_id: String,
}

fn reason(text: &str) -> Payload {
    Payload::json(&json!({ "reason": text }))
}

fn vars<'v>(
    state: &'v SocketState,
    route: &'v Route,
    topic: &'v str,
    channel_assigns: &'v Map<String, Value>,
    payload: Option<&'v Value>,
) -> Vars<'v> {
    Vars {
        assigns: Some(&state.assigns),
        channel_assigns: Some(channel_assigns),
        topic: Some(topic),
        subtopic: route.subtopic(topic),
        transport: Some(state.transport),
        socket_id: state.socket_id.as_deref(),
        payload,
    }
}

fn render_fields(fields: &[(String, Field)], vars: &Vars<'_>) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, f)| {
            let v = match f {
                Field::Template(t) => t.render_value(vars),
                Field::Literal(v) => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

impl GatewayChannel {
    fn socket_info<'a>(state: &'a SocketState) -> SocketInfo<'a> {
        SocketInfo {
            mount: &state.mount,
            transport: state.transport,
            socket_id: state.socket_id.as_deref(),
            assigns: &state.assigns,
        }
    }

    /// The join hook; `Err` is the error reply.
    async fn join_hook(
        &mut self,
        topic: &str,
        payload: &Payload,
        state: &SocketState,
        id: &str,
    ) -> Result<(Payload, JoinAnswer), Payload> {
        let Some(backend) = &self.route.backend else {
            return Err(reason("unavailable"));
        };
        let request = JoinRequest {
            socket: Self::socket_info(state),
            topic,
            payload: PayloadField::of(payload),
        };
        let mut answer: JoinAnswer = backend
            .call(HookKind::Join, &request, id)
            .await
            .map_err(|_| reason("unavailable"))?;
        let response = match answer.response.take() {
            None | Some(Value::Null) => Payload::empty_object(),
            Some(Value::Object(map)) => Payload::json(&map),
            Some(_) => {
                tracing::warn!(request_id = id, "join answer: response must be an object");
                return Err(reason("unavailable"));
            }
        };
        match answer.status {
            Status::Ok => Ok((response, answer)),
            Status::Error => Err(response),
        }
    }
}

impl Channel for GatewayChannel {
    type Assigns = SocketState;
    type Info = AfterJoin;

    fn intercepts(&self) -> &'static [&'static str] {
        self.route.intercepts
    }

    async fn join(
        &mut self,
        topic: &str,
        payload: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        let id = request_id();
        let route = self.route.clone();
        let state = ctx.assigns();
        let parsed: Option<Value> = payload.parse();
        let (response, answer) = match &route.spec.join {
            JoinPolicy::All => (Payload::empty_object(), None),
            JoinPolicy::When(expr) => {
                let empty = Map::new();
                if expr.eval(&vars(state, &route, topic, &empty, parsed.as_ref())) {
                    (Payload::empty_object(), None)
                } else {
                    return Err(reason("unauthorized"));
                }
            }
            JoinPolicy::Hook => {
                let (response, answer) = self.join_hook(topic, &payload, state, &id).await?;
                (response, Some(answer))
            }
        };
        let (presence_answer, actions) = match answer {
            Some(answer) => {
                self.assigns = answer.assigns.unwrap_or_default();
                self.on_terminate = answer.on_terminate;
                (answer.presence, answer.actions)
            }
            None => (None, Vec::new()),
        };
        let now = Instant::now();
        self.buckets = route
            .spec
            .events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.handle {
                Handle::Broadcast {
                    rate: Some(rate), ..
                } => Some((i, rate::Bucket::new(*rate, now))),
                _ => None,
            })
            .collect();
        // Presence: the channel's template and metas, the answer's key and metas over
        // them. Tracked after the reply, with presence_state (Phoenix's after_join).
        let mut presence = None;
        if route.spec.presence.is_some() || presence_answer.is_some() {
            let v = vars(state, &route, topic, &self.assigns, parsed.as_ref());
            let answer = presence_answer.unwrap_or_default();
            let key = match (answer.key, &route.spec.presence) {
                (Some(key), _) => Some(key),
                (None, Some(spec)) => match spec.key.render(&v) {
                    Ok(key) => Some(key),
                    Err(error) => {
                        tracing::warn!(request_id = %id, %topic, %error, "join refused: no presence key");
                        return Err(reason("unauthorized"));
                    }
                },
                (None, None) => None,
            };
            if let Some(key) = key {
                let mut meta = route
                    .spec
                    .presence
                    .as_ref()
                    .map(|p| render_fields(&p.meta, &v))
                    .unwrap_or_default();
                meta.extend(answer.meta.unwrap_or_default());
                self.presence_key = Some(key.clone());
                presence = Some((key, meta));
            }
        }
        if presence.is_some() || !actions.is_empty() {
            ctx.send_info(AfterJoin {
                presence,
                actions,
                request_id: id,
            });
        }
        Ok(response)
    }

    async fn handle_info(
        &mut self,
        info: AfterJoin,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        if let Some((key, meta)) = info.presence {
            if let Err(error) = ctx.presence().track(&key, meta) {
                tracing::warn!(request_id = %info.request_id, %error, "presence not tracked");
            }
            let list = ctx.presence().list();
            let _ = ctx.push("presence_state", list);
        }
        match self.run_actions(&info.actions, ctx, &info.request_id) {
            Some(stop) => HandleResult::stop(stop),
            None => HandleResult::NoReply,
        }
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let route = self.route.clone();
        let Some((index, rule)) = route
            .spec
            .events
            .iter()
            .enumerate()
            .find(|(_, r)| r.name == event || r.name == "*")
        else {
            return HandleResult::error(reason("refused"));
        };
        match &rule.handle {
            Handle::Refuse => HandleResult::error(reason("refused")),
            Handle::Broadcast { include_self, .. } => {
                if let Some((_, bucket)) = self.buckets.iter_mut().find(|(i, _)| *i == index) {
                    if !bucket.take(Instant::now()) {
                        return HandleResult::error(reason("rate limited"));
                    }
                }
                let sent = if *include_self {
                    ctx.broadcast(event, payload)
                } else {
                    ctx.broadcast_from(event, payload)
                };
                match sent {
                    Ok(()) => HandleResult::ok_empty(),
                    Err(_) => HandleResult::error(reason("payload must be an object")),
                }
            }
            Handle::Forward => self.forward(event, payload, ctx).await,
        }
    }

    async fn handle_out(
        &mut self,
        event: &str,
        payload: &Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let route = self.route.clone();
        let state = ctx.assigns();
        let topic = ctx.topic().to_owned();
        let v = vars(state, &route, &topic, &self.assigns, None);
        if let Some(out) = outgoing::apply(&route.spec.outgoing, event, payload, v) {
            let _ = ctx.push(event, out);
        }
        HandleResult::NoReply
    }

    async fn terminate(&mut self, reason: TerminateReason, ctx: &mut ChannelContext<'_, Self>) {
        let clean = match &reason {
            TerminateReason::Left => true,
            TerminateReason::Stopped(stop) => stop.is_clean(),
            TerminateReason::Crashed | TerminateReason::Closed => false,
        };
        if clean && !self.on_terminate.is_empty() {
            let actions = std::mem::take(&mut self.on_terminate);
            let _ = self.run_actions(&actions, ctx, "on_terminate");
        }
        if self.route.spec.notify_leave {
            if let Some(notifier) = &self.route.notifier {
                let state = ctx.assigns();
                let why = match reason {
                    TerminateReason::Left => "left",
                    TerminateReason::Closed => "closed",
                    TerminateReason::Stopped(_) => "stopped",
                    TerminateReason::Crashed => "crashed",
                };
                notifier.send(json!({
                    "type": "leave",
                    "at": crate::unix_millis(),
                    "mount": &*state.mount,
                    "transport": state.transport,
                    "socket_id": state.socket_id,
                    "assigns": state.assigns,
                    "topic": ctx.topic(),
                    "channel_assigns": self.assigns,
                    "reason": why,
                }));
            }
        }
    }
}

impl GatewayChannel {
    /// `handle = "forward"`: the event hook's actions, then its reply.
    async fn forward(
        &mut self,
        event: &str,
        payload: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let Some(backend) = self.route.backend.clone() else {
            return HandleResult::error(reason("unavailable"));
        };
        let id = request_id();
        let answer: Result<EventAnswer, _> = {
            let state = ctx.assigns();
            let request = EventRequest {
                socket: Self::socket_info(state),
                topic: ctx.topic(),
                channel_assigns: &self.assigns,
                event,
                payload: PayloadField::of(&payload),
            };
            backend.call(HookKind::Event, &request, &id).await
        };
        let Ok(answer) = answer else {
            return HandleResult::error(reason("unavailable"));
        };
        let stop = self.run_actions(&answer.actions, ctx, &id);
        let reply = match answer.reply {
            None => HandleResult::NoReply,
            Some(reply) => match answer_payload(
                reply.response.as_ref(),
                reply
                    .response_base64
                    .as_ref()
                    .map(|s| Value::String(s.clone()))
                    .as_ref(),
                "response",
            ) {
                Ok(response) => HandleResult::reply(reply.status, response),
                Err(error) => {
                    tracing::warn!(request_id = %id, %error, "event answer: reply not sent");
                    HandleResult::error(reason("unavailable"))
                }
            },
        };
        match stop {
            Some(stop) => reply.and_stop(stop),
            None => reply,
        }
    }
}
