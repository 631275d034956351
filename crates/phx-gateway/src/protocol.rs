//! The hook protocol's JSON (docs/gateway.md, "The hook protocol"): what the gateway
//! sends and what it accepts back. Answers are read leniently (unknown fields ignored,
//! optional fields defaulted) and checked strictly where the client would see the
//! difference (payloads must be objects or binary).

use base64::Engine;
use bytes::Bytes;
use phx_server::Payload;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields every request carries.
#[derive(Debug, Serialize, Clone)]
pub struct SocketInfo<'a> {
    pub mount: &'a str,
    pub transport: &'a str,
    pub socket_id: Option<&'a str>,
    pub assigns: &'a Map<String, Value>,
}

/// `peer` of a connect request.
#[derive(Debug, Serialize)]
pub struct Peer {
    pub address: String,
    pub port: u16,
}

/// The connect hook's request.
#[derive(Debug, Serialize)]
pub struct ConnectRequest<'a> {
    pub mount: &'a str,
    pub transport: &'a str,
    pub params: &'a Map<String, Value>,
    pub auth_token: Option<&'a str>,
    pub headers: Map<String, Value>,
    pub origin: Option<&'a str>,
    pub peer: Option<Peer>,
}

/// `ok` or `error`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
}

/// The connect hook's answer.
#[derive(Debug, Deserialize)]
pub struct ConnectAnswer {
    pub status: Status,
    #[serde(default)]
    pub assigns: Option<Map<String, Value>>,
    #[serde(default)]
    pub socket_id: Option<String>,
    #[serde(default)]
    pub http_status: Option<u16>,
}

/// A client payload in a request: JSON as JSON, binary as base64.
#[derive(Debug, Serialize)]
pub struct PayloadField<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
}

impl<'a> PayloadField<'a> {
    pub fn of(payload: &'a Payload) -> Self {
        match payload {
            Payload::Json(raw) => Self {
                payload: Some(raw),
                payload_base64: None,
            },
            Payload::Binary(bytes) => Self {
                payload: None,
                payload_base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            },
        }
    }
}

/// The join hook's request.
#[derive(Debug, Serialize)]
pub struct JoinRequest<'a> {
    #[serde(flatten)]
    pub socket: SocketInfo<'a>,
    pub topic: &'a str,
    #[serde(flatten)]
    pub payload: PayloadField<'a>,
}

/// `presence` of a join answer.
#[derive(Debug, Deserialize, Default)]
pub struct PresenceAnswer {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub meta: Option<Map<String, Value>>,
}

/// The join hook's answer.
#[derive(Debug, Deserialize)]
pub struct JoinAnswer {
    pub status: Status,
    #[serde(default)]
    pub response: Option<Value>,
    #[serde(default)]
    pub assigns: Option<Map<String, Value>>,
    #[serde(default)]
    pub presence: Option<PresenceAnswer>,
    #[serde(default)]
    pub actions: Vec<Value>,
    #[serde(default)]
    pub on_terminate: Vec<Value>,
}

/// The event hook's request.
#[derive(Debug, Serialize)]
pub struct EventRequest<'a> {
    #[serde(flatten)]
    pub socket: SocketInfo<'a>,
    pub topic: &'a str,
    pub channel_assigns: &'a Map<String, Value>,
    pub event: &'a str,
    #[serde(flatten)]
    pub payload: PayloadField<'a>,
}

/// `reply` of an event answer.
#[derive(Debug, Deserialize)]
pub struct ReplyAnswer {
    pub status: String,
    #[serde(default)]
    pub response: Option<Value>,
    #[serde(default)]
    pub response_base64: Option<String>,
}

/// The event hook's answer.
#[derive(Debug, Deserialize)]
pub struct EventAnswer {
    #[serde(default)]
    pub reply: Option<ReplyAnswer>,
    #[serde(default)]
    pub actions: Vec<Value>,
}

/// Why a payload in an answer cannot be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("{0} must be a JSON object")]
    NotAnObject(&'static str),
    #[error("{0}_base64 is not valid base64")]
    BadBase64(&'static str),
    #[error("both {0} and {0}_base64 are given")]
    Both(&'static str),
}

/// A payload from an answer: `name` (a JSON object) or `name_base64` (binary); neither
/// is `{}`.
pub fn answer_payload(
    json: Option<&Value>,
    base64: Option<&Value>,
    name: &'static str,
) -> Result<Payload, PayloadError> {
    match (json, base64) {
        (Some(_), Some(_)) => Err(PayloadError::Both(name)),
        (Some(Value::Object(map)), None) => Ok(Payload::json(map)),
        (Some(Value::Null) | None, None) => Ok(Payload::empty_object()),
        (Some(_), None) => Err(PayloadError::NotAnObject(name)),
        (None, Some(Value::String(text))) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(|bytes| Payload::Binary(Bytes::from(bytes)))
            .map_err(|_| PayloadError::BadBase64(name)),
        (None, Some(_)) => Err(PayloadError::BadBase64(name)),
    }
}

/// The leave and disconnect notifications' envelope.
#[derive(Debug, Serialize)]
pub struct NotifyRequest<'a> {
    pub notifications: &'a [Value],
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answer_payloads_are_objects_or_binary() {
        let obj = json!({"a": 1});
        assert_eq!(
            answer_payload(Some(&obj), None, "payload")
                .unwrap()
                .as_json(),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(
            answer_payload(None, None, "payload").unwrap().as_json(),
            Some("{}")
        );
        assert_eq!(
            answer_payload(Some(&json!([1])), None, "payload").unwrap_err(),
            PayloadError::NotAnObject("payload")
        );
        let bin = answer_payload(None, Some(&json!("AAE=")), "payload").unwrap();
        assert!(matches!(bin, Payload::Binary(b) if b.as_ref() == [0, 1]));
        assert_eq!(
            answer_payload(None, Some(&json!("!!")), "payload").unwrap_err(),
            PayloadError::BadBase64("payload")
        );
        assert_eq!(
            answer_payload(Some(&obj), Some(&json!("AA==")), "payload").unwrap_err(),
            PayloadError::Both("payload")
        );
    }

    #[test]
    fn requests_carry_binary_as_base64() {
        let assigns = Map::new();
        let binary = Payload::Binary(Bytes::from_static(&[1, 2, 3]));
        let request = EventRequest {
            socket: SocketInfo {
                mount: "/socket",
                transport: "websocket",
                socket_id: None,
                assigns: &assigns,
            },
            topic: "room:1",
            channel_assigns: &assigns,
            event: "bin",
            payload: PayloadField::of(&binary),
        };
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(value["payload_base64"], json!("AQID"));
        assert!(value.get("payload").is_none());
        assert_eq!(value["socket_id"], Value::Null);
    }
}
