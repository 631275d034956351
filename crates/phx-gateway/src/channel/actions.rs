//! The actions of a hook's answer (docs/gateway.md, "Actions"): broadcast, push,
//! presence, channel assigns, stop, each a JSON object with a `type`.

use phx_server::{ChannelContext, Payload, StopReason};
use serde_json::{Map, Value};

use super::GatewayChannel;
use crate::protocol::answer_payload;

/// Why an action was skipped (logged with the request id).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("an action must be an object with a \"type\"")]
    NotAnAction,
    #[error("unknown action type {0:?}")]
    UnknownType(String),
    #[error("{0} needs a string \"{1}\"")]
    Missing(&'static str, &'static str),
    #[error(transparent)]
    Payload(#[from] crate::protocol::PayloadError),
    #[error("{0}")]
    Failed(String),
    #[error("no presence key: give \"key\" or configure the channel's presence")]
    NoPresenceKey,
}

/// The stop reason of a `stop` action's `reason`.
pub fn stop_reason(reason: Option<&str>) -> StopReason {
    match reason.unwrap_or("normal") {
        "normal" => StopReason::Normal,
        "shutdown" => StopReason::Shutdown,
        other => match other.strip_prefix("shutdown:") {
            Some(why) => StopReason::ShutdownWith(why.to_owned()),
            None => StopReason::Error(other.to_owned()),
        },
    }
}

fn string<'a>(
    action: &'a Map<String, Value>,
    key: &'static str,
    kind: &'static str,
) -> Result<&'a str, ActionError> {
    action
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(ActionError::Missing(kind, key))
}

fn payload(action: &Map<String, Value>) -> Result<Payload, ActionError> {
    Ok(answer_payload(
        action.get("payload"),
        action.get("payload_base64"),
        "payload",
    )?)
}

fn meta(action: &Map<String, Value>) -> Map<String, Value> {
    match action.get("meta") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    }
}

impl GatewayChannel {
    fn presence_key(&self, action: &Map<String, Value>) -> Result<String, ActionError> {
        match action.get("key") {
            Some(Value::String(k)) if !k.is_empty() => Ok(k.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => self.presence_key.clone().ok_or(ActionError::NoPresenceKey),
        }
    }

    /// Runs `actions` in order; a `stop` ends the list and is returned.
    pub(super) fn run_actions(
        &mut self,
        actions: &[Value],
        ctx: &mut ChannelContext<'_, Self>,
        request_id: &str,
    ) -> Option<StopReason> {
        for action in actions {
            match self.run_action(action, ctx) {
                Ok(Some(stop)) => return Some(stop),
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    request_id,
                    topic = ctx.topic(),
                    %error,
                    action = %truncate(action),
                    "action skipped"
                ),
            }
        }
        None
    }

    fn run_action(
        &mut self,
        action: &Value,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Option<StopReason>, ActionError> {
        let action = action.as_object().ok_or(ActionError::NotAnAction)?;
        let kind = action
            .get("type")
            .and_then(Value::as_str)
            .ok_or(ActionError::NotAnAction)?;
        let failed = |e: &dyn std::fmt::Display| ActionError::Failed(e.to_string());
        match kind {
            "broadcast" => {
                let event = string(action, "event", "broadcast")?;
                let payload = payload(action)?;
                match action.get("topic").and_then(Value::as_str) {
                    Some(topic) if topic != ctx.topic() => ctx
                        .pubsub()
                        .broadcast(topic, event, payload)
                        .map_err(|e| failed(&e))?,
                    _ => ctx.broadcast(event, payload).map_err(|e| failed(&e))?,
                }
            }
            "broadcast_from" => {
                let event = string(action, "event", "broadcast_from")?;
                ctx.broadcast_from(event, payload(action)?)
                    .map_err(|e| failed(&e))?;
            }
            "push" => {
                let event = string(action, "event", "push")?;
                ctx.push(event, payload(action)?).map_err(|e| failed(&e))?;
            }
            "track" => {
                let key = self.presence_key(action)?;
                ctx.presence()
                    .track(&key, meta(action))
                    .map_err(|e| failed(&e))?;
                self.presence_key.get_or_insert(key);
            }
            "update" => {
                let key = self.presence_key(action)?;
                ctx.presence()
                    .update(&key, meta(action))
                    .map_err(|e| failed(&e))?;
            }
            "untrack" => {
                let key = self.presence_key(action)?;
                ctx.presence().untrack(&key);
            }
            "assign" => match action.get("assigns") {
                Some(Value::Object(changes)) => {
                    for (k, v) in changes {
                        if v.is_null() {
                            self.assigns.remove(k);
                        } else {
                            self.assigns.insert(k.clone(), v.clone());
                        }
                    }
                }
                _ => return Err(ActionError::Missing("assign", "assigns")),
            },
            "stop" => {
                return Ok(Some(stop_reason(
                    action.get("reason").and_then(Value::as_str),
                )))
            }
            other => return Err(ActionError::UnknownType(other.to_owned())),
        }
        Ok(None)
    }
}

/// An action for a log line, cut to a readable length.
fn truncate(action: &Value) -> String {
    let mut text = action.to_string();
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_follow_phoenix() {
        assert_eq!(stop_reason(None), StopReason::Normal);
        assert_eq!(stop_reason(Some("shutdown")), StopReason::Shutdown);
        assert_eq!(
            stop_reason(Some("shutdown:kicked")),
            StopReason::ShutdownWith("kicked".into())
        );
        assert_eq!(stop_reason(Some("boom")), StopReason::Error("boom".into()));
        assert!(!stop_reason(Some("boom")).is_clean());
    }
}
