//! V2 JSON (`vsn=2.0.0`, §2.3): `[join_ref, ref, topic, event, payload]` text frames.

use serde_json::value::RawValue;

use super::{
    decode_ref, decode_string, write_ref, write_reply_payload, write_str, DecodeError, EncodeError,
};
use crate::event;
use crate::message::{Message, Outbound, Payload, PayloadRef};

/// Decodes a text frame: an array of at least five elements (extras ignored).
pub(super) fn decode(text: &[u8]) -> Result<Message, DecodeError> {
    let text = std::str::from_utf8(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    if !text.trim_start().starts_with('[') {
        // Still reject invalid JSON as such, so errors say what was wrong.
        serde_json::from_str::<&RawValue>(text)
            .map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
        return Err(DecodeError::NotAnArray);
    }
    let items: Vec<&RawValue> =
        serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let [join_ref, r#ref, topic, event, payload, ..] = items.as_slice() else {
        return Err(DecodeError::TooFewElements(items.len()));
    };
    Ok(Message {
        join_ref: decode_ref(Some(join_ref), "join_ref")?,
        r#ref: decode_ref(Some(r#ref), "ref")?,
        topic: decode_string(topic, "topic")?,
        event: decode_string(event, "event")?,
        payload: Payload::Json((*payload).to_owned()),
    })
}

/// Encodes a message whose payload is JSON.
pub(super) fn encode(msg: &Outbound<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match *msg {
        Outbound::Message {
            join_ref,
            r#ref,
            topic,
            event,
            payload,
        } => {
            let PayloadRef::Json(payload) = payload else {
                return Err(EncodeError::BinaryNotSupported);
            };
            head(out, join_ref, r#ref, topic, event);
            out.extend_from_slice(payload.get().as_bytes());
        }
        Outbound::Reply {
            join_ref,
            r#ref,
            topic,
            status,
            response,
        } => {
            let PayloadRef::Json(response) = response else {
                return Err(EncodeError::BinaryNotSupported);
            };
            head(out, join_ref, r#ref, topic, event::REPLY);
            write_reply_payload(out, status, response);
        }
    }
    out.push(b']');
    Ok(())
}

fn head(
    out: &mut Vec<u8>,
    join_ref: Option<&crate::Ref>,
    r#ref: Option<&crate::Ref>,
    topic: &str,
    event: &str,
) {
    out.push(b'[');
    write_ref(out, join_ref);
    out.push(b',');
    write_ref(out, r#ref);
    out.push(b',');
    write_str(out, topic);
    out.push(b',');
    write_str(out, event);
    out.push(b',');
}
