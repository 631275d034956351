//! The `room:*`, `custom:*` and `presence:*` channels of docs/conformance.md.

use async_trait::async_trait;
use bytes::Bytes;
use phx_server::{Channel, ChannelContext, HandleResult, Info, Payload, TerminateReason};
use serde_json::{json, Map, Value};

fn payload(value: Value) -> Payload {
    // A `json!` object always serializes.
    Payload::json(&value).expect("JSON value")
}

fn object(p: &Payload) -> Map<String, Value> {
    p.parse::<Map<String, Value>>().unwrap_or_default()
}

struct AfterJoin;

/// `room:*`.
#[derive(Default)]
pub struct Room {
    user: Value,
}

#[async_trait]
impl Channel for Room {
    async fn join(
        &mut self,
        _topic: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_>,
    ) -> Result<Payload, Payload> {
        self.user = object(&p).remove("user").unwrap_or(Value::Null);
        ctx.send_info(AfterJoin);
        Ok(Payload::empty_object())
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut ChannelContext<'_>) -> HandleResult {
        if info.downcast::<AfterJoin>().is_ok() {
            let _ = ctx.broadcast("user_entered", payload(json!({ "user": self.user })));
            let assigns = ctx.assigns();
            let joined = json!({
                "status": "connected",
                "user_id": assigns.get("user_id").cloned().unwrap_or(Value::Null),
                "auth_token": assigns.get("auth_token").cloned().unwrap_or(Value::Null),
            });
            let _ = ctx.push("joined", payload(joined));
        }
        HandleResult::NoReply
    }

    fn intercepts(&self) -> &'static [&'static str] {
        &["new_msg"]
    }

    async fn handle_out(
        &mut self,
        event: &str,
        p: &Payload,
        ctx: &mut ChannelContext<'_>,
    ) -> HandleResult {
        let mut map = object(p);
        map.insert(
            "transport".into(),
            Value::String(ctx.transport().as_atom().into()),
        );
        let _ = ctx.push(event, payload(Value::Object(map)));
        HandleResult::NoReply
    }

    async fn handle_in(
        &mut self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_>,
    ) -> HandleResult {
        match event {
            "new_msg" => {
                let _ = ctx.broadcast("new_msg", p);
                HandleResult::ok_empty()
            }
            "echo" => HandleResult::ok(p),
            "error_reply" => HandleResult::error(p),
            "noreply" => HandleResult::NoReply,
            "broadcast_from" => {
                let _ = ctx.broadcast_from("broadcast_from", p);
                HandleResult::ok_empty()
            }
            "push" => {
                let map = object(&p);
                let event = map
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or("push")
                    .to_owned();
                let inner = map.get("payload").cloned().unwrap_or_else(|| json!({}));
                let _ = ctx.push(&event, payload(inner));
                HandleResult::ok_empty()
            }
            "boom" => panic!("boom requested by the client"),
            "stop" => HandleResult::stop(),
            "binary_event" => {
                let Payload::Binary(bytes) = p else {
                    panic!("binary_event needs a binary payload");
                };
                let _ = ctx.push("binary_event", Payload::Binary(Bytes::from_static(&[0, 1])));
                let mut reply = bytes.to_vec();
                reply.extend_from_slice(&[3, 4]);
                HandleResult::ok(Payload::Binary(reply.into()))
            }
            "bin" => {
                let _ = ctx.broadcast("bin_ack", Payload::empty_object());
                HandleResult::NoReply
            }
            // Phoenix: no matching handle_in clause → the channel crashes.
            other => panic!("no handle_in for {other:?}"),
        }
    }

    async fn terminate(&mut self, reason: &TerminateReason, ctx: &mut ChannelContext<'_>) {
        if *reason != TerminateReason::Crashed {
            let _ = ctx.push("you_left", payload(json!({ "message": "bye!" })));
        }
    }
}

/// `custom:*`.
#[derive(Default)]
pub struct Custom;

#[async_trait]
impl Channel for Custom {
    async fn join(
        &mut self,
        _topic: &str,
        p: Payload,
        _ctx: &mut ChannelContext<'_>,
    ) -> Result<Payload, Payload> {
        match object(&p).get("action").and_then(Value::as_str) {
            Some("ok") => Ok(payload(json!({"action": "ok"}))),
            Some("ignore") => Err(payload(json!({"action": "ignore"}))),
            _ => panic!("join crashed on purpose"),
        }
    }

    async fn handle_in(
        &mut self,
        event: &str,
        _p: Payload,
        _ctx: &mut ChannelContext<'_>,
    ) -> HandleResult {
        match event {
            "close" => HandleResult::stop(),
            other => panic!("no handle_in for {other:?}"),
        }
    }
}

struct TrackAfterJoin {
    meta: Map<String, Value>,
}

/// `presence:*`.
#[derive(Default)]
pub struct PresenceRoom {
    user: String,
}

#[async_trait]
impl Channel for PresenceRoom {
    async fn join(
        &mut self,
        _topic: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_>,
    ) -> Result<Payload, Payload> {
        let mut map = object(&p);
        self.user = match map.remove("user") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => return Err(payload(json!({"reason": "user required"}))),
        };
        let meta = match map.remove("meta") {
            Some(Value::Object(meta)) => meta,
            _ => Map::new(),
        };
        ctx.send_info(TrackAfterJoin { meta });
        Ok(Payload::empty_object())
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut ChannelContext<'_>) -> HandleResult {
        if let Ok(track) = info.downcast::<TrackAfterJoin>() {
            if let Err(error) = ctx.presence().track(&self.user, track.meta) {
                tracing::warn!(%error, "track failed");
            }
            let state = ctx.presence().list();
            let _ = ctx.push("presence_state", state);
        }
        HandleResult::NoReply
    }

    async fn handle_in(
        &mut self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_>,
    ) -> HandleResult {
        match event {
            "update" => match ctx.presence().update(&self.user, object(&p)) {
                Ok(_) => HandleResult::ok_empty(),
                Err(error) => HandleResult::error(payload(json!({"reason": error.to_string()}))),
            },
            "untrack" => {
                ctx.presence().untrack(&self.user);
                HandleResult::ok_empty()
            }
            "boom" => panic!("boom requested by the client"),
            other => panic!("no handle_in for {other:?}"),
        }
    }
}
