//! V2 binary frames (§2.4). Header sizes are one byte each, so every header string is at
//! most 255 bytes; kind 0 has a different layout in each direction.

use bytes::Bytes;

use super::{DecodeError, EncodeError};
use crate::message::{Message, Outbound, Payload, PayloadRef, Ref};

const KIND_PUSH: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_BROADCAST: u8 = 2;

/// Decodes a client push: `0, join_ref_size, ref_size, topic_size, event_size`, the four
/// strings, then the payload.
pub(super) fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
    let (&kind, rest) = frame.split_first().ok_or(DecodeError::Truncated)?;
    if kind != KIND_PUSH {
        return Err(DecodeError::UnknownBinaryKind(kind));
    }
    let (sizes, mut rest) = rest.split_at_checked(4).ok_or(DecodeError::Truncated)?;
    let mut field = |index: usize, name: &'static str| -> Result<&str, DecodeError> {
        let size = usize::from(sizes[index]);
        let (bytes, tail) = rest.split_at_checked(size).ok_or(DecodeError::Truncated)?;
        rest = tail;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8(name))
    };
    let join_ref = field(0, "join_ref")?;
    let r#ref = field(1, "ref")?;
    let topic = field(2, "topic")?.to_owned();
    let event = field(3, "event")?.to_owned();
    let optional = |s: &str| (!s.is_empty()).then(|| Ref::from(s));
    Ok(Message {
        join_ref: optional(join_ref),
        r#ref: optional(r#ref),
        topic,
        event,
        payload: Payload::Binary(Bytes::copy_from_slice(rest)),
    })
}

fn size(s: &str, name: &'static str) -> Result<u8, EncodeError> {
    u8::try_from(s.len()).map_err(|_| EncodeError::FieldTooLong(name))
}

fn ref_field(r: Option<&Ref>) -> &str {
    r.map_or("", Ref::binary_field)
}

/// Encodes a message with a binary payload or response.
pub(super) fn encode(msg: &Outbound<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match *msg {
        Outbound::Message {
            join_ref: Some(join_ref),
            topic,
            event,
            payload: PayloadRef::Binary(data),
            ..
        } => {
            let join_ref = join_ref.binary_field();
            let sizes = [
                size(join_ref, "join_ref")?,
                size(topic, "topic")?,
                size(event, "event")?,
            ];
            out.push(KIND_PUSH);
            out.extend_from_slice(&sizes);
            for s in [join_ref, topic, event] {
                out.extend_from_slice(s.as_bytes());
            }
            out.extend_from_slice(data);
        }
        Outbound::Message {
            join_ref: None,
            topic,
            event,
            payload: PayloadRef::Binary(data),
            ..
        } => {
            let sizes = [size(topic, "topic")?, size(event, "event")?];
            out.push(KIND_BROADCAST);
            out.extend_from_slice(&sizes);
            out.extend_from_slice(topic.as_bytes());
            out.extend_from_slice(event.as_bytes());
            out.extend_from_slice(data);
        }
        Outbound::Reply {
            join_ref,
            r#ref,
            topic,
            status,
            response: PayloadRef::Binary(data),
        } => {
            let (join_ref, r#ref) = (ref_field(join_ref), ref_field(r#ref));
            let sizes = [
                size(join_ref, "join_ref")?,
                size(r#ref, "ref")?,
                size(topic, "topic")?,
                size(status, "status")?,
            ];
            out.push(KIND_REPLY);
            out.extend_from_slice(&sizes);
            for s in [join_ref, r#ref, topic, status] {
                out.extend_from_slice(s.as_bytes());
            }
            out.extend_from_slice(data);
        }
        // JSON payloads never reach the binary encoder (see `Serializer::encode`).
        _ => return Err(EncodeError::BinaryNotSupported),
    }
    Ok(())
}
