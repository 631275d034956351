//! V1 JSON (`vsn=1.0.0`, §2.2): one JSON object per text frame; never binary, and the
//! server never writes `join_ref`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    decode_ref, decode_string, write_ref, write_reply_payload, write_str, DecodeError, EncodeError,
};
use crate::event;
use crate::message::{Message, Outbound, Payload, PayloadRef};

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    topic: Option<&'a RawValue>,
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    /// `Some(None)` would be an explicit null; serde maps both to the inner Option, so
    /// presence of the key is tracked through `RawValue` itself (`null` text).
    #[serde(borrow, default, rename = "ref")]
    r#ref: Option<&'a RawValue>,
    #[serde(borrow, default)]
    join_ref: Option<&'a RawValue>,
}

/// Decodes a text frame: an object with `topic`, `event`, `payload` and `ref`.
pub(super) fn decode(text: &[u8]) -> Result<Message, DecodeError> {
    let text = std::str::from_utf8(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    if !text.trim_start().starts_with('{') {
        serde_json::from_str::<&RawValue>(text)
            .map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
        return Err(DecodeError::NotAnObject);
    }
    let frame: Frame<'_> =
        serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let topic = frame.topic.ok_or(DecodeError::MissingKey("topic"))?;
    let event = frame.event.ok_or(DecodeError::MissingKey("event"))?;
    let payload = frame.payload.ok_or(DecodeError::MissingKey("payload"))?;
    if frame.r#ref.is_none() && !has_key(text, "ref") {
        return Err(DecodeError::MissingKey("ref"));
    }
    Ok(Message {
        join_ref: decode_ref(frame.join_ref, "join_ref")?,
        r#ref: decode_ref(frame.r#ref, "ref")?,
        topic: decode_string(topic, "topic")?,
        event: decode_string(event, "event")?,
        payload: Payload::Json(payload.to_owned()),
    })
}

/// serde turns `"ref": null` into `None` just like a missing key; tell them apart.
fn has_key(text: &str, key: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        .map(|m| m.contains_key(key))
        .unwrap_or(false)
}

/// Encodes `{"event":E,"payload":P,"ref":R,"topic":T}` (keys sorted, as Phoenix's Jason).
pub(super) fn encode(msg: &Outbound<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let (r#ref, topic) = match *msg {
        Outbound::Message {
            r#ref,
            topic,
            event,
            payload,
            ..
        } => {
            let PayloadRef::Json(payload) = payload else {
                return Err(EncodeError::BinaryNotSupported);
            };
            out.extend_from_slice(br#"{"event":"#);
            write_str(out, event);
            out.extend_from_slice(br#","payload":"#);
            out.extend_from_slice(payload.get().as_bytes());
            (r#ref, topic)
        }
        Outbound::Reply {
            r#ref,
            topic,
            status,
            response,
            ..
        } => {
            let PayloadRef::Json(response) = response else {
                return Err(EncodeError::BinaryNotSupported);
            };
            out.extend_from_slice(br#"{"event":"#);
            write_str(out, event::REPLY);
            out.extend_from_slice(br#","payload":"#);
            write_reply_payload(out, status, response);
            (r#ref, topic)
        }
    };
    out.extend_from_slice(br#","ref":"#);
    write_ref(out, r#ref);
    out.extend_from_slice(br#","topic":"#);
    write_str(out, topic);
    out.push(b'}');
    Ok(())
}
