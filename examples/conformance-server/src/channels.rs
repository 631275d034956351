//! The `room:*`, `custom:*` and `presence:*` channels of docs/conformance.md.

use bytes::Bytes;
use phx_server::{
    Channel, ChannelContext, HandleResult, JoinResult, Payload, StopReason, TerminateReason,
};
use serde_json::{json, Map, Value};

fn object(p: &Payload) -> Map<String, Value> {
    p.parse::<Map<String, Value>>().unwrap_or_default()
}

/// What a connection carries into every channel (the suite's `user_id` param and the
/// `authToken` phoenix.js passed).
#[derive(Debug, Default)]
pub struct Client {
    /// The `user_id` connect param; also names the socket (`user_sockets:<id>`).
    pub user_id: Option<String>,
    /// The decoded `authToken`, if any.
    pub auth_token: Option<String>,
}

/// Sent to itself from `join`: announce and push once joined.
pub struct AfterJoin;

/// `room:*`.
#[derive(Default)]
pub struct Room {
    user: Value,
}

impl Channel for Room {
    type Assigns = Client;
    type Info = AfterJoin;
    const INTERCEPTS: &'static [&'static str] = &["new_msg"];

    async fn join(
        &mut self,
        _topic: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        self.user = object(&p).remove("user").unwrap_or(Value::Null);
        ctx.send_info(AfterJoin);
        Ok(Payload::empty_object())
    }

    async fn handle_info(
        &mut self,
        _: AfterJoin,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let _ = ctx.broadcast("user_entered", json!({ "user": self.user }));
        let client = ctx.assigns();
        let joined = json!({
            "status": "connected",
            "user_id": client.user_id,
            "auth_token": client.auth_token,
        });
        let _ = ctx.push("joined", joined);
        HandleResult::noreply()
    }

    async fn handle_out(
        &mut self,
        event: &str,
        p: &Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let mut map = object(p);
        map.insert(
            "transport".into(),
            Value::String(ctx.transport().as_atom().into()),
        );
        let _ = ctx.push(event, map);
        HandleResult::NoReply
    }

    async fn handle_in(
        &mut self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
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
                let _ = ctx.push(&event, inner);
                HandleResult::ok_empty()
            }
            "boom" => panic!("boom requested by the client"),
            "stop" => HandleResult::stop(StopReason::Normal),
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

    async fn terminate(&mut self, reason: TerminateReason, ctx: &mut ChannelContext<'_, Self>) {
        if reason != TerminateReason::Crashed {
            let _ = ctx.push("you_left", json!({ "message": "bye!" }));
        }
    }
}

/// `custom:*`.
#[derive(Default)]
pub struct Custom;

impl Channel for Custom {
    type Assigns = Client;
    type Info = ();

    async fn join(
        &mut self,
        _topic: &str,
        p: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        match object(&p).get("action").and_then(Value::as_str) {
            Some("ok") => Ok(json!({"action": "ok"}).into()),
            Some("ignore") => Err(json!({"action": "ignore"}).into()),
            _ => panic!("join crashed on purpose"),
        }
    }

    async fn handle_in(
        &mut self,
        event: &str,
        _p: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        match event {
            "close" => HandleResult::stop(StopReason::Normal),
            other => panic!("no handle_in for {other:?}"),
        }
    }
}

/// Sent to itself from `join`: track with this meta once joined.
pub struct TrackAfterJoin {
    meta: Map<String, Value>,
}

/// `presence:*`.
#[derive(Default)]
pub struct PresenceRoom {
    user: String,
}

impl Channel for PresenceRoom {
    type Assigns = Client;
    type Info = TrackAfterJoin;

    async fn join(
        &mut self,
        _topic: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        let mut map = object(&p);
        self.user = match map.remove("user") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => return Err(json!({"reason": "user required"}).into()),
        };
        let meta = match map.remove("meta") {
            Some(Value::Object(meta)) => meta,
            _ => Map::new(),
        };
        ctx.send_info(TrackAfterJoin { meta });
        Ok(Payload::empty_object())
    }

    async fn handle_info(
        &mut self,
        track: TrackAfterJoin,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        if let Err(error) = ctx.presence().track(&self.user, track.meta) {
            tracing::warn!(%error, "track failed");
        }
        let _ = ctx.push("presence_state", ctx.presence().list());
        HandleResult::noreply()
    }

    async fn handle_in(
        &mut self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        match event {
            "update" => match ctx.presence().update(&self.user, object(&p)) {
                Ok(_) => HandleResult::ok_empty(),
                Err(error) => HandleResult::error(json!({"reason": error.to_string()})),
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
