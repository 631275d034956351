//! V2 JSON (`vsn=2.0.0`, §2.3): `[join_ref, ref, topic, event, payload]` text frames.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    decode_ref, decode_string, first_byte, invalid_json, put_payload, utf8, write_ref,
    write_reply_payload, write_str, wrong_shape, DecodeError, EncodeError, PayloadBytes,
};
use crate::event;
use crate::message::{Message, Outbound, Payload, PayloadRef};

/// The top-level array, borrowed from the frame text: its first five elements, or how
/// many there were when fewer.
enum Elements<'a> {
    Five([&'a RawValue; 5]),
    Short(usize),
}

struct ElementsVisitor;

impl<'de> Visitor<'de> for ElementsVisitor {
    type Value = Elements<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(join_ref) = seq.next_element()? else {
            return Ok(Elements::Short(0));
        };
        let Some(r#ref) = seq.next_element()? else {
            return Ok(Elements::Short(1));
        };
        let Some(topic) = seq.next_element()? else {
            return Ok(Elements::Short(2));
        };
        let Some(event) = seq.next_element()? else {
            return Ok(Elements::Short(3));
        };
        let Some(payload) = seq.next_element()? else {
            return Ok(Elements::Short(4));
        };
        // Phoenix matches `[join_ref, ref, topic, event, payload | _]`: extra elements are
        // ignored, but must still be valid JSON.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Elements::Five([join_ref, r#ref, topic, event, payload]))
    }
}

/// Decodes a text frame: an array of at least five elements (extras ignored, §2.3).
pub(super) fn decode(text: &[u8]) -> Result<Message, DecodeError> {
    let text = utf8(text)?;
    if first_byte(text) != Some(b'[') {
        return Err(wrong_shape(text, DecodeError::NotAnArray));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let elements = de.deserialize_seq(ElementsVisitor).map_err(invalid_json)?;
    de.end().map_err(invalid_json)?;
    let [join_ref, r#ref, topic, event, payload] = match elements {
        Elements::Five(five) => five,
        Elements::Short(n) => return Err(DecodeError::TooFewElements(n)),
    };
    Ok(Message {
        join_ref: decode_ref(Some(join_ref))?,
        r#ref: decode_ref(Some(r#ref))?,
        topic: decode_string(topic, "topic")?,
        event: decode_string(event, "event")?,
        payload: Payload::Json(payload.to_owned().into()),
    })
}

/// Encodes a message whose payload is JSON; returns where the payload's (or reply
/// response's) text starts in `out`.
pub(super) fn encode(
    msg: &Outbound<'_>,
    out: &mut Vec<u8>,
    bytes: PayloadBytes,
) -> Result<usize, EncodeError> {
    let at = match *msg {
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
            put_payload(out, payload.get().as_bytes(), bytes)
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
            write_reply_payload(out, status, response, bytes)
        }
    };
    out.push(b']');
    Ok(at)
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
