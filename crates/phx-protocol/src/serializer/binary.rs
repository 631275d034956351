//! V2 binary frames (§2.4). Header sizes are one byte each, so every header string is at
//! most 255 bytes; kind 0 has a different layout in each direction.

use bytes::Bytes;

use super::{put_payload, DecodeError, EncodeError, PayloadBytes};
use crate::message::{Message, Outbound, Payload, PayloadRef, Ref};

const KIND_PUSH: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_BROADCAST: u8 = 2;

/// Decodes a client push: `0, join_ref_size, ref_size, topic_size, event_size`, the four
/// strings, then the payload (the rest, possibly empty). `payload` turns the payload
/// slice (a sub-slice of `frame`) into `Bytes`, by copying or by sharing.
pub(super) fn decode<'f>(
    frame: &'f [u8],
    payload: impl FnOnce(&'f [u8]) -> Bytes,
) -> Result<Message, DecodeError> {
    let (&kind, rest) = frame.split_first().ok_or(DecodeError::Truncated)?;
    if kind != KIND_PUSH {
        // The client only sends kind 0; Phoenix crashes on any other (§2.4).
        return Err(DecodeError::UnknownBinaryKind(kind));
    }
    let (&[join_ref_size, ref_size, topic_size, event_size], mut rest) = rest
        .split_first_chunk::<4>()
        .ok_or(DecodeError::Truncated)?;
    let mut field = |size: u8, name: &'static str| -> Result<&'f str, DecodeError> {
        let (bytes, tail) = rest
            .split_at_checked(usize::from(size))
            .ok_or(DecodeError::Truncated)?;
        rest = tail;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8(name))
    };
    let join_ref = field(join_ref_size, "join_ref")?;
    let r#ref = field(ref_size, "ref")?;
    let topic = field(topic_size, "topic")?;
    let event = field(event_size, "event")?;
    // An empty join_ref/ref is how a null one travels in a binary frame (§2.4).
    let optional = |s: &str| (!s.is_empty()).then(|| Ref::from(s));
    Ok(Message {
        join_ref: optional(join_ref),
        r#ref: optional(r#ref),
        topic: topic.to_owned(),
        event: event.to_owned(),
        payload: Payload::Binary(payload(rest)),
    })
}

fn size(s: &str, name: &'static str) -> Result<u8, EncodeError> {
    u8::try_from(s.len()).map_err(|_| EncodeError::FieldTooLong(name))
}

fn ref_field(r: Option<&Ref>) -> &str {
    r.map_or("", Ref::binary_field)
}

/// Encodes a message with a binary payload or response; returns where the payload's
/// bytes start in `out` (the payload ends the frame).
pub(super) fn encode(
    msg: &Outbound<'_>,
    out: &mut Vec<u8>,
    bytes: PayloadBytes,
) -> Result<usize, EncodeError> {
    let at = match *msg {
        Outbound::Message {
            join_ref: Some(join_ref),
            topic,
            event,
            payload: PayloadRef::Binary(data),
            ..
        } => {
            // The server push layout has no ref field (§2.4): a ref, if any, is dropped,
            // as Phoenix does (pushes carry a null ref anyway, §2.1).
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
            put_payload(out, data, bytes)
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
            put_payload(out, data, bytes)
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
            put_payload(out, data, bytes)
        }
        // JSON payloads never reach the binary encoder (see `Serializer::encode`).
        _ => return Err(EncodeError::BinaryNotSupported),
    };
    Ok(at)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::message::{Outbound, Payload, PayloadRef, Ref};
    use crate::serializer::{DecodeError, EncodeError, FrameKind, Serializer};

    fn encode(msg: &Outbound<'_>, out: &mut Vec<u8>) -> Result<FrameKind, EncodeError> {
        Serializer::V2.encode(msg, out)
    }

    fn encode_v2(msg: Outbound<'_>) -> (FrameKind, Vec<u8>) {
        let mut out = Vec::new();
        let kind = encode(&msg, &mut out).unwrap();
        (kind, out)
    }

    fn hex_frame(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn binary_examples_of_section_2_4() {
        // client push join_ref "3", ref "5", topic "room:lobby", event "bin", payload 01 02 03
        let frame = hex_frame(&[
            &[0, 1, 1, 10, 3],
            b"3",
            b"5",
            b"room:lobby",
            b"bin",
            &[1, 2, 3],
        ]);
        let m = Serializer::V2.decode_binary(&frame).unwrap();
        assert_eq!(
            (m.join_ref, m.r#ref),
            (Some(Ref::from("3")), Some(Ref::from("5")))
        );
        assert_eq!((m.topic.as_str(), m.event.as_str()), ("room:lobby", "bin"));
        assert!(
            matches!(m.payload, Payload::Binary(ref b) if b == &Bytes::from_static(&[1, 2, 3]))
        );

        let frame = hex_frame(&[&[0, 2, 3, 5, 5], b"12", b"123", b"topic", b"event", b"efg"]);
        let m = Serializer::V2.decode_binary(&frame).unwrap();
        assert_eq!(m.r#ref, Some(Ref::from("123")));

        let twelve = Ref::from("12");
        let one23 = Ref::from("123");
        let (kind, push) = encode_v2(Outbound::Message {
            join_ref: Some(&twelve),
            r#ref: None,
            topic: "topic",
            event: "event",
            payload: PayloadRef::Binary(b"efg"),
        });
        assert_eq!(kind, FrameKind::Binary);
        assert_eq!(
            push,
            hex_frame(&[&[0, 2, 5, 5], b"12", b"topic", b"event", b"efg"])
        );

        let (_, reply) = encode_v2(Outbound::Reply {
            join_ref: Some(&twelve),
            r#ref: Some(&one23),
            topic: "topic",
            status: "ok",
            response: PayloadRef::Binary(b"efg"),
        });
        assert_eq!(
            reply,
            hex_frame(&[&[1, 2, 3, 5, 2], b"12", b"123", b"topic", b"ok", b"efg"])
        );

        let (_, broadcast) = encode_v2(Outbound::Message {
            join_ref: None,
            r#ref: None,
            topic: "topic",
            event: "event",
            payload: PayloadRef::Binary(b"efg"),
        });
        assert_eq!(
            broadcast,
            hex_frame(&[&[2, 5, 5], b"topic", b"event", b"efg"])
        );
    }

    #[test]
    fn binary_empty_refs_decode_as_none_and_payload_may_be_empty() {
        let frame = hex_frame(&[&[0, 0, 0, 1, 1], b"t", b"e"]);
        let m = Serializer::V2.decode_binary(&frame).unwrap();
        assert_eq!((m.join_ref, m.r#ref), (None, None));
        assert!(matches!(m.payload, Payload::Binary(ref b) if b.is_empty()));
    }

    #[test]
    fn binary_decode_errors() {
        let err = |f: &[u8]| Serializer::V2.decode_binary(f).unwrap_err();
        assert_eq!(err(&[]), DecodeError::Truncated);
        assert_eq!(err(&[0, 1, 1]), DecodeError::Truncated);
        assert_eq!(err(&[0, 5, 0, 0, 0, b'a']), DecodeError::Truncated);
        assert_eq!(err(&[1, 0, 0, 0, 0]), DecodeError::UnknownBinaryKind(1));
        assert_eq!(err(&[2, 0, 0]), DecodeError::UnknownBinaryKind(2));
        assert_eq!(
            err(&[0, 0, 0, 1, 0, 0xff]),
            DecodeError::InvalidUtf8("topic")
        );
    }

    /// Every header field, at 255 bytes (accepted) and 256 bytes (refused, nothing
    /// written: the buffer keeps its earlier content).
    #[test]
    fn each_header_field_is_limited_to_255_bytes() {
        for len in [255, 256] {
            let long = "x".repeat(len);
            let long_ref = Ref::from(long.as_str());
            let short = Ref::from("1");
            let push = |join_ref, topic, event| Outbound::Message {
                join_ref: Some(join_ref),
                r#ref: None,
                topic,
                event,
                payload: PayloadRef::Binary(b"p"),
            };
            let broadcast = |topic, event| Outbound::Message {
                join_ref: None,
                r#ref: None,
                topic,
                event,
                payload: PayloadRef::Binary(b"p"),
            };
            let reply = |join_ref, r#ref, topic, status| Outbound::Reply {
                join_ref: Some(join_ref),
                r#ref: Some(r#ref),
                topic,
                status,
                response: PayloadRef::Binary(b"p"),
            };
            let cases = [
                (push(&long_ref, "t", "e"), "join_ref"),
                (push(&short, &long, "e"), "topic"),
                (push(&short, "t", &long), "event"),
                (broadcast(&long, "e"), "topic"),
                (broadcast("t", &long), "event"),
                (reply(&long_ref, &short, "t", "ok"), "join_ref"),
                (reply(&short, &long_ref, "t", "ok"), "ref"),
                (reply(&short, &short, &long, "ok"), "topic"),
                (reply(&short, &short, "t", &long), "status"),
            ];
            for (msg, field) in cases {
                let mut out = b"earlier frame".to_vec();
                let result = encode(&msg, &mut out);
                if len == 255 {
                    assert_eq!(result, Ok(FrameKind::Binary), "{field} of 255 bytes");
                    assert!(out.len() > 13 + 255);
                } else {
                    assert_eq!(result, Err(EncodeError::FieldTooLong(field)));
                    assert_eq!(out, b"earlier frame", "{field}: never truncated");
                }
            }
        }
    }

    #[test]
    fn the_limit_counts_utf8_bytes_not_characters() {
        let topic = "é".repeat(128); // 256 bytes, 128 chars
        let msg = Outbound::Message {
            join_ref: None,
            r#ref: None,
            topic: &topic,
            event: "e",
            payload: PayloadRef::Binary(&[]),
        };
        assert_eq!(
            encode(&msg, &mut Vec::new()),
            Err(EncodeError::FieldTooLong("topic"))
        );
    }

    #[test]
    fn null_refs_are_empty_and_non_string_refs_use_their_json_text() {
        let number = Ref::from_json_text("42");
        let mut out = Vec::new();
        let reply = Outbound::Reply {
            join_ref: None,
            r#ref: Some(&number),
            topic: "t",
            status: "ok",
            response: PayloadRef::Binary(&[9]),
        };
        assert_eq!(encode(&reply, &mut out), Ok(FrameKind::Binary));
        assert_eq!(
            out,
            [&[1u8, 0, 2, 1, 2][..], b"42", b"t", b"ok", &[9]].concat()
        );
    }

    #[test]
    fn a_json_payload_on_v2_is_always_text() {
        let mut out = Vec::new();
        let push = Outbound::Message {
            join_ref: None,
            r#ref: None,
            topic: "t",
            event: "e",
            payload: PayloadRef::empty_object(),
        };
        assert_eq!(encode(&push, &mut out), Ok(FrameKind::Text));
    }

    #[test]
    fn decode_binary_bytes_shares_the_payload() {
        let frame = Bytes::from([&[0u8, 1, 1, 1, 1][..], b"35te", &[7; 32]].concat());
        let m = Serializer::V2.decode_binary_bytes(&frame).unwrap();
        let Payload::Binary(payload) = m.payload else {
            panic!("binary payload")
        };
        assert_eq!(payload, Bytes::from_static(&[7; 32]));
        assert_eq!(payload.as_ptr(), frame[9..].as_ptr(), "no copy");
        assert_eq!(
            Serializer::V1.decode_binary_bytes(&frame).unwrap_err(),
            DecodeError::BinaryNotSupported
        );
        assert_eq!(
            Serializer::V2
                .decode_binary_bytes(&Bytes::from_static(&[0, 0, 0, 9]))
                .unwrap_err(),
            DecodeError::Truncated
        );
    }

    #[test]
    fn every_header_string_must_be_utf8() {
        let err = |f: &[u8]| Serializer::V2.decode_binary(f).unwrap_err();
        assert_eq!(
            err(&[0, 1, 0, 0, 0, 0xC3]),
            DecodeError::InvalidUtf8("join_ref")
        );
        assert_eq!(err(&[0, 0, 1, 0, 0, 0x80]), DecodeError::InvalidUtf8("ref"));
        assert_eq!(
            err(&[0, 0, 0, 0, 1, 0xFF]),
            DecodeError::InvalidUtf8("event")
        );
        // The payload is opaque bytes: anything goes.
        assert!(Serializer::V2.decode_binary(&[0, 0, 0, 0, 0, 0xFF]).is_ok());
    }

    #[test]
    fn truncation_is_detected_at_every_field() {
        let frame = [&[0u8, 1, 2, 3, 4][..], b"a", b"bb", b"ccc", b"dddd"].concat();
        assert!(Serializer::V2.decode_binary(&frame).is_ok());
        for cut in 0..frame.len() {
            assert_eq!(
                Serializer::V2.decode_binary(&frame[..cut]).unwrap_err(),
                DecodeError::Truncated,
                "cut at {cut}"
            );
        }
    }
}
