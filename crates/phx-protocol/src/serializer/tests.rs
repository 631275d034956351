//! The examples of PROTOCOL.md §2 and §10, byte for byte, and every decode error.

use bytes::Bytes;
use serde_json::value::RawValue;

use super::*;
use crate::message::{Outbound, Payload, PayloadRef, Ref};

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

fn encode(s: Serializer, msg: Outbound<'_>) -> (FrameKind, Vec<u8>) {
    let mut out = Vec::new();
    let kind = s.encode(&msg, &mut out).unwrap();
    (kind, out)
}

fn text(s: Serializer, msg: Outbound<'_>) -> String {
    let (kind, out) = encode(s, msg);
    assert_eq!(kind, FrameKind::Text);
    String::from_utf8(out).unwrap()
}

#[test]
fn vsn_negotiation_follows_the_table() {
    assert_eq!(Serializer::from_vsn(None), Ok(Serializer::V1));
    assert_eq!(Serializer::from_vsn(Some("1.0.0")), Ok(Serializer::V1));
    assert_eq!(Serializer::from_vsn(Some("1.0.7")), Ok(Serializer::V1));
    assert_eq!(Serializer::from_vsn(Some("2.0.0")), Ok(Serializer::V2));
    assert_eq!(Serializer::from_vsn(Some("2.0.1-rc.1")), Ok(Serializer::V2));
    for bad in [
        "2.1.0", "123.1.1", "abc", "", "2.0", "2.0.0.0", "02.0.0", "1.1.0", "2.0.0-",
    ] {
        assert!(
            Serializer::from_vsn(Some(bad)).is_err(),
            "{bad} must be refused"
        );
    }
}

#[test]
fn v2_examples_of_section_2_3() {
    let join = Serializer::V2
        .decode_text(br#"["3","3","room:lobby","phx_join",{"name":"bob"}]"#)
        .unwrap();
    assert_eq!(join.join_ref, Some(Ref::from("3")));
    assert_eq!(join.r#ref, Some(Ref::from("3")));
    assert_eq!(
        (join.topic.as_str(), join.event.as_str()),
        ("room:lobby", "phx_join")
    );
    let Payload::Json(p) = &join.payload else {
        panic!()
    };
    assert_eq!(p.get(), r#"{"name":"bob"}"#);

    let three = Ref::from("3");
    let ok = text(
        Serializer::V2,
        Outbound::Reply {
            join_ref: Some(&three),
            r#ref: Some(&three),
            topic: "room:lobby",
            status: "ok",
            response: PayloadRef::empty_object(),
        },
    );
    assert_eq!(
        ok,
        r#"["3","3","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#
    );

    let pushed = raw(r#"{"status":"connected"}"#);
    let push = text(
        Serializer::V2,
        Outbound::Message {
            join_ref: Some(&three),
            r#ref: None,
            topic: "room:lobby",
            event: "joined",
            payload: PayloadRef::Json(&pushed),
        },
    );
    assert_eq!(
        push,
        r#"["3",null,"room:lobby","joined",{"status":"connected"}]"#
    );

    let user = raw(r#"{"user":"bob"}"#);
    let broadcast = text(
        Serializer::V2,
        Outbound::Message {
            join_ref: None,
            r#ref: None,
            topic: "room:lobby",
            event: "user_entered",
            payload: PayloadRef::Json(&user),
        },
    );
    assert_eq!(
        broadcast,
        r#"[null,null,"room:lobby","user_entered",{"user":"bob"}]"#
    );

    let hb = Serializer::V2
        .decode_text(br#"[null,"6","phoenix","heartbeat",{}]"#)
        .unwrap();
    assert_eq!(hb.join_ref, None);
    let reply = text(
        Serializer::V2,
        Outbound::Reply {
            join_ref: None,
            r#ref: hb.r#ref.as_ref(),
            topic: "phoenix",
            status: "ok",
            response: PayloadRef::empty_object(),
        },
    );
    assert_eq!(
        reply,
        r#"[null,"6","phoenix","phx_reply",{"response":{},"status":"ok"}]"#
    );
}

#[test]
fn v2_decoding_takes_five_elements_and_keeps_non_string_refs() {
    let m = Serializer::V2
        .decode_text(br#"[1, 2, "t", "e", {"a":1}, "extra", 9]"#)
        .unwrap();
    assert_eq!(m.join_ref, Some(Ref::from_json_text("1")));
    assert_ne!(
        m.join_ref,
        Some(Ref::from("1")),
        "a number is not the string \"1\""
    );
    let mut out = Vec::new();
    Serializer::V2
        .encode(
            &Outbound::Reply {
                join_ref: m.join_ref.as_ref(),
                r#ref: m.r#ref.as_ref(),
                topic: "t",
                status: "ok",
                response: PayloadRef::empty_object(),
            },
            &mut out,
        )
        .unwrap();
    assert_eq!(
        out,
        br#"[1,2,"t","phx_reply",{"response":{},"status":"ok"}]"#
    );
}

#[test]
fn v2_strings_are_escaped() {
    let payload = raw("{}");
    let out = text(
        Serializer::V2,
        Outbound::Message {
            join_ref: None,
            r#ref: None,
            topic: "room:\"q\"\n",
            event: "é",
            payload: PayloadRef::Json(&payload),
        },
    );
    assert_eq!(out, "[null,null,\"room:\\\"q\\\"\\n\",\"é\",{}]");
}

#[test]
fn v2_decode_errors() {
    let err = |t: &[u8]| Serializer::V2.decode_text(t).unwrap_err();
    assert!(matches!(err(b"not json"), DecodeError::InvalidJson(_)));
    assert!(matches!(err(b"[\"3\""), DecodeError::InvalidJson(_)));
    assert_eq!(err(br#"{"topic":"t"}"#), DecodeError::NotAnArray);
    assert_eq!(err(br#"["3","3","t","e"]"#), DecodeError::TooFewElements(4));
    assert_eq!(
        err(br#"["3","3",1,"e",{}]"#),
        DecodeError::NotAString("topic")
    );
    assert_eq!(
        err(br#"["3","3","t",null,{}]"#),
        DecodeError::NotAString("event")
    );
    assert_eq!(
        err(br#"[["x"],"3","t","e",{}]"#),
        DecodeError::InvalidRef("join_ref")
    );
    assert_eq!(
        err(br#"["3",{},"t","e",{}]"#),
        DecodeError::InvalidRef("ref")
    );
    assert!(matches!(err(&[0xff, 0xfe]), DecodeError::InvalidJson(_)));
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
    let reply = text(
        Serializer::V1,
        Outbound::Reply {
            join_ref: Some(&one),
            r#ref: Some(&one),
            topic: "room:lobby",
            status: "ok",
            response: PayloadRef::empty_object(),
        },
    );
    assert_eq!(
        reply,
        r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"room:lobby"}"#
    );

    let payload = raw(r#"{"reason":"channel_crash"}"#);
    let error = text(
        Serializer::V1,
        Outbound::Message {
            join_ref: Some(&one),
            r#ref: None,
            topic: "room:lobby",
            event: "phx_error",
            payload: PayloadRef::Json(&payload),
        },
    );
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
    assert!(matches!(m.payload, Payload::Binary(ref b) if b == &Bytes::from_static(&[1, 2, 3])));

    let frame = hex_frame(&[&[0, 2, 3, 5, 5], b"12", b"123", b"topic", b"event", b"efg"]);
    let m = Serializer::V2.decode_binary(&frame).unwrap();
    assert_eq!(m.r#ref, Some(Ref::from("123")));

    let twelve = Ref::from("12");
    let one23 = Ref::from("123");
    let (kind, push) = encode(
        Serializer::V2,
        Outbound::Message {
            join_ref: Some(&twelve),
            r#ref: None,
            topic: "topic",
            event: "event",
            payload: PayloadRef::Binary(b"efg"),
        },
    );
    assert_eq!(kind, FrameKind::Binary);
    assert_eq!(
        push,
        hex_frame(&[&[0, 2, 5, 5], b"12", b"topic", b"event", b"efg"])
    );

    let (_, reply) = encode(
        Serializer::V2,
        Outbound::Reply {
            join_ref: Some(&twelve),
            r#ref: Some(&one23),
            topic: "topic",
            status: "ok",
            response: PayloadRef::Binary(b"efg"),
        },
    );
    assert_eq!(
        reply,
        hex_frame(&[&[1, 2, 3, 5, 2], b"12", b"123", b"topic", b"ok", b"efg"])
    );

    let (_, broadcast) = encode(
        Serializer::V2,
        Outbound::Message {
            join_ref: None,
            r#ref: None,
            topic: "topic",
            event: "event",
            payload: PayloadRef::Binary(b"efg"),
        },
    );
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
fn binary_fields_over_255_bytes_are_an_error_never_truncated() {
    let ok_topic = "t".repeat(255);
    let long_topic = "t".repeat(256);
    let mut out = Vec::new();
    let msg = |topic: &str| -> Result<FrameKind, EncodeError> {
        let mut out = Vec::new();
        Serializer::V2.encode(
            &Outbound::Message {
                join_ref: None,
                r#ref: None,
                topic,
                event: "e",
                payload: PayloadRef::Binary(&[1]),
            },
            &mut out,
        )
    };
    assert_eq!(msg(&ok_topic), Ok(FrameKind::Binary));
    assert_eq!(msg(&long_topic), Err(EncodeError::FieldTooLong("topic")));
    let long_status = "s".repeat(256);
    let r = Serializer::V2.encode(
        &Outbound::Reply {
            join_ref: None,
            r#ref: None,
            topic: "t",
            status: &long_status,
            response: PayloadRef::Binary(&[]),
        },
        &mut out,
    );
    assert_eq!(r, Err(EncodeError::FieldTooLong("status")));
    assert!(out.is_empty(), "nothing is left behind on error");
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
