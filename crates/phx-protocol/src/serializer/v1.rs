//! V1 JSON (`vsn=1.0.0`, §2.2): one JSON object per text frame; never binary, and the
//! server never writes `join_ref`.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    decode_ref, decode_string, first_byte, invalid_json, put_payload, utf8, write_ref,
    write_reply_payload, write_str, wrong_shape, DecodeError, EncodeError, PayloadBytes,
};
use crate::event;
use crate::message::{Message, Outbound, Payload, PayloadRef};

/// The keys of a V1 frame; any other key is skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Key {
    Topic,
    Event,
    Payload,
    Ref,
    JoinRef,
    #[serde(other)]
    Other,
}

/// The values of the known keys, borrowed from the frame text. A present key holds its
/// raw value even when that is `null`, so a missing `ref` differs from `"ref": null`.
#[derive(Default)]
struct Frame<'a> {
    topic: Option<&'a RawValue>,
    event: Option<&'a RawValue>,
    payload: Option<&'a RawValue>,
    r#ref: Option<&'a RawValue>,
    join_ref: Option<&'a RawValue>,
}

struct FrameVisitor;

impl<'de> Visitor<'de> for FrameVisitor {
    type Value = Frame<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut frame = Frame::default();
        while let Some(key) = map.next_key()? {
            let slot = match key {
                Key::Topic => &mut frame.topic,
                Key::Event => &mut frame.event,
                Key::Payload => &mut frame.payload,
                Key::Ref => &mut frame.r#ref,
                Key::JoinRef => &mut frame.join_ref,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            // A repeated key keeps its first value, as Jason (Phoenix's JSON library)
            // builds the map with `:maps.from_list/1` over the reversed pairs. serde's
            // derive would reject the frame instead.
            if slot.is_none() {
                *slot = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(frame)
    }
}

/// Decodes a text frame: an object with `topic`, `event`, `payload` and `ref` (which may
/// be null), optionally `join_ref`; other keys are ignored (§2.2).
pub(super) fn decode(text: &[u8]) -> Result<Message, DecodeError> {
    let text = utf8(text)?;
    if first_byte(text) != Some(b'{') {
        return Err(wrong_shape(text, DecodeError::NotAnObject));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let frame = de.deserialize_map(FrameVisitor).map_err(invalid_json)?;
    de.end().map_err(invalid_json)?;
    let topic = frame.topic.ok_or(DecodeError::MissingKey("topic"))?;
    let event = frame.event.ok_or(DecodeError::MissingKey("event"))?;
    let payload = frame.payload.ok_or(DecodeError::MissingKey("payload"))?;
    let r#ref = frame.r#ref.ok_or(DecodeError::MissingKey("ref"))?;
    Ok(Message {
        join_ref: decode_ref(frame.join_ref)?,
        r#ref: decode_ref(Some(r#ref))?,
        topic: decode_string(topic, "topic")?,
        event: decode_string(event, "event")?,
        payload: Payload::Json(payload.to_owned().into()),
    })
}

/// Encodes `{"event":E,"payload":P,"ref":R,"topic":T}` (keys sorted, as Phoenix's Jason);
/// returns where the payload's (or reply response's) text starts in `out`.
pub(super) fn encode(
    msg: &Outbound<'_>,
    out: &mut Vec<u8>,
    bytes: PayloadBytes,
) -> Result<usize, EncodeError> {
    let (r#ref, topic, at) = match *msg {
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
            let at = put_payload(out, payload.get().as_bytes(), bytes);
            (r#ref, topic, at)
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
            let at = write_reply_payload(out, status, response, bytes);
            (r#ref, topic, at)
        }
    };
    out.extend_from_slice(br#","ref":"#);
    write_ref(out, r#ref);
    out.extend_from_slice(br#","topic":"#);
    write_str(out, topic);
    out.push(b'}');
    Ok(at)
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use crate::message::{Outbound, Payload, PayloadRef, Ref};
    use crate::serializer::{DecodeError, EncodeError, Serializer};

    fn decode(text: &str) -> Result<crate::Message, DecodeError> {
        Serializer::V1.decode_text(text.as_bytes())
    }

    fn encode(msg: Outbound<'_>) -> String {
        let mut out = Vec::new();
        Serializer::V1.encode(&msg, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn v1_objects_of_section_2_2() {
        let m = Serializer::V1
            .decode_text(br#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}"#)
            .unwrap();
        assert_eq!((m.join_ref, m.r#ref), (None, Some(Ref::from("1"))));
        let with_join_ref = Serializer::V1
            .decode_text(br#"{"topic":"t","event":"e","payload":{},"ref":null,"join_ref":"2"}"#)
            .unwrap();
        assert_eq!(
            (with_join_ref.join_ref, with_join_ref.r#ref),
            (Some(Ref::from("2")), None)
        );

        let one = Ref::from("1");
        let reply = encode(Outbound::Reply {
            join_ref: Some(&one),
            r#ref: Some(&one),
            topic: "room:lobby",
            status: "ok",
            response: PayloadRef::empty_object(),
        });
        assert_eq!(
            reply,
            r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"room:lobby"}"#
        );

        let payload = RawValue::from_string(r#"{"reason":"channel_crash"}"#.to_owned()).unwrap();
        let error = encode(Outbound::Message {
            join_ref: Some(&one),
            r#ref: None,
            topic: "room:lobby",
            event: "phx_error",
            payload: PayloadRef::Json(&payload),
        });
        assert_eq!(
            error,
            r#"{"event":"phx_error","payload":{"reason":"channel_crash"},"ref":null,"topic":"room:lobby"}"#
        );
        assert!(!error.contains("join_ref"), "V1 never emits join_ref");
    }

    #[test]
    fn v1_decode_errors_and_no_binary() {
        let err = |t: &[u8]| Serializer::V1.decode_text(t).unwrap_err();
        assert_eq!(err(br#"["3","3","t","e",{}]"#), DecodeError::NotAnObject);
        assert_eq!(
            err(br#"{"event":"e","payload":{},"ref":"1"}"#),
            DecodeError::MissingKey("topic")
        );
        assert_eq!(
            err(br#"{"topic":"t","payload":{},"ref":"1"}"#),
            DecodeError::MissingKey("event")
        );
        assert_eq!(
            err(br#"{"topic":"t","event":"e","ref":"1"}"#),
            DecodeError::MissingKey("payload")
        );
        assert_eq!(
            err(br#"{"topic":"t","event":"e","payload":{}}"#),
            DecodeError::MissingKey("ref")
        );
        assert_eq!(
            Serializer::V1.decode_binary(&[0, 0, 0, 0, 0]).unwrap_err(),
            DecodeError::BinaryNotSupported
        );
        let mut out = b"keep".to_vec();
        let binary = Outbound::Message {
            join_ref: None,
            r#ref: None,
            topic: "t",
            event: "e",
            payload: PayloadRef::Binary(&[1]),
        };
        assert_eq!(
            Serializer::V1.encode(&binary, &mut out),
            Err(EncodeError::BinaryNotSupported)
        );
        assert_eq!(out, b"keep");
    }

    #[test]
    fn extra_keys_are_ignored_and_key_order_is_free() {
        let m = decode(
            r#"{"extra":[1,{"x":2}],"ref":"9","payload":{"a":1},"event":"e","topic":"t","z":null}"#,
        )
        .unwrap();
        assert_eq!((m.topic.as_str(), m.event.as_str()), ("t", "e"));
        assert_eq!((m.join_ref, m.r#ref), (None, Some(Ref::from("9"))));
        let Payload::Json(p) = m.payload else {
            panic!("json payload")
        };
        assert_eq!(p.get(), r#"{"a":1}"#);
    }

    #[test]
    fn a_repeated_key_keeps_its_first_value_like_jason() {
        let m =
            decode(r#"{"topic":"a","event":"e","payload":{},"ref":null,"topic":"b","ref":"2"}"#)
                .unwrap();
        assert_eq!((m.topic.as_str(), m.r#ref), ("a", None));
    }

    #[test]
    fn escaped_keys_are_recognized() {
        let m = decode(r#"{"\u0074opic":"t","event":"e","payload":{},"r\u0065f":"1"}"#).unwrap();
        assert_eq!((m.topic.as_str(), m.r#ref), ("t", Some(Ref::from("1"))));
    }

    #[test]
    fn a_null_ref_is_present_but_a_missing_ref_is_an_error() {
        let m = decode(r#"{"topic":"t","event":"e","payload":null,"ref":null}"#).unwrap();
        assert_eq!(m.r#ref, None);
        let Payload::Json(p) = m.payload else {
            panic!("json payload")
        };
        assert_eq!(p.get(), "null");
        assert_eq!(
            decode(r#"{"topic":"t","event":"e","payload":{},"join_ref":"1"}"#).unwrap_err(),
            DecodeError::MissingKey("ref")
        );
    }

    #[test]
    fn a_deep_payload_with_a_null_ref_decodes() {
        // The payload is never parsed beyond skipping over it, so depth does not matter.
        let depth = 10_000;
        let text = format!(
            r#"{{"topic":"t","event":"e","ref":null,"payload":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(decode(&text).is_ok());
    }

    #[test]
    fn wrong_shapes_and_values_are_errors() {
        assert_eq!(decode("null").unwrap_err(), DecodeError::NotAnObject);
        assert_eq!(decode(r#" "{}" "#).unwrap_err(), DecodeError::NotAnObject);
        assert!(matches!(
            decode(r#"{"topic":"t""#).unwrap_err(),
            DecodeError::InvalidJson(_)
        ));
        assert!(matches!(
            decode(r#"{"topic":"t","event":"e","payload":{},"ref":"1"}x"#).unwrap_err(),
            DecodeError::InvalidJson(_)
        ));
        assert_eq!(
            decode(r#"{"topic":["t"],"event":"e","payload":{},"ref":"1"}"#).unwrap_err(),
            DecodeError::NotAString("topic")
        );
    }

    #[test]
    fn object_and_array_refs_are_kept_as_json_text_and_echoed_unchanged() {
        let m = decode(
            r#"{"topic":"t","event":"e","payload":{},"ref":[1,{"x":"y"}],"join_ref":{"a":{"b":[]}}}"#,
        )
        .unwrap();
        assert_eq!(m.r#ref, Some(Ref::from_json_text(r#"[1,{"x":"y"}]"#)));
        assert_eq!(m.join_ref, Some(Ref::from_json_text(r#"{"a":{"b":[]}}"#)));
        let reply = encode(Outbound::Reply {
            join_ref: m.join_ref.as_ref(),
            r#ref: m.r#ref.as_ref(),
            topic: "t",
            status: "ok",
            response: PayloadRef::empty_object(),
        });
        assert_eq!(
            reply,
            r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":[1,{"x":"y"}],"topic":"t"}"#
        );
        assert_eq!(
            decode(r#"{"topic":"t","event":"e","payload":{},"ref":{}}"#)
                .unwrap()
                .r#ref,
            Some(Ref::from_json_text("{}"))
        );
    }

    #[test]
    fn never_writes_join_ref_and_echoes_numeric_refs_as_numbers() {
        let join_ref = Ref::from("3");
        let number = Ref::from_json_text("7");
        let reply = encode(Outbound::Reply {
            join_ref: Some(&join_ref),
            r#ref: Some(&number),
            topic: "room:lobby",
            status: "ok",
            response: PayloadRef::empty_object(),
        });
        assert_eq!(
            reply,
            r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":7,"topic":"room:lobby"}"#
        );
        let payload = RawValue::from_string(r#"{"user":"bob"}"#.to_owned()).unwrap();
        let push = encode(Outbound::Message {
            join_ref: Some(&join_ref),
            r#ref: None,
            topic: "room:lobby",
            event: "joined",
            payload: PayloadRef::Json(&payload),
        });
        assert_eq!(
            push,
            r#"{"event":"joined","payload":{"user":"bob"},"ref":null,"topic":"room:lobby"}"#
        );
        // phx_close: the stored join_ref travels as `ref` (§2.2).
        let close = encode(Outbound::Message {
            join_ref: Some(&join_ref),
            r#ref: Some(&join_ref),
            topic: "room:lobby",
            event: "phx_close",
            payload: PayloadRef::empty_object(),
        });
        assert_eq!(
            close,
            r#"{"event":"phx_close","payload":{},"ref":"3","topic":"room:lobby"}"#
        );
        for frame in [reply, push, close] {
            assert!(!frame.contains("join_ref"));
        }
    }

    #[test]
    fn binary_replies_are_refused_and_leave_the_buffer_alone() {
        let mut out = b"keep".to_vec();
        let reply = Outbound::Reply {
            join_ref: None,
            r#ref: None,
            topic: "t",
            status: "ok",
            response: PayloadRef::Binary(b"x"),
        };
        assert_eq!(
            Serializer::V1.encode(&reply, &mut out),
            Err(EncodeError::BinaryNotSupported)
        );
        assert_eq!(out, b"keep");
    }
}
