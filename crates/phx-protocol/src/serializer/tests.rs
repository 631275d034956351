//! V2 text frames: the examples of docs/protocol.md §2.3 and the §10 session byte for byte, the
//! `vsn` table of §1.3, and the V2 decode errors. V1 and binary frames are tested in their
//! own modules.

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
    assert_eq!(
        Serializer::from_vsn(Some("2.0.0+build.7")),
        Ok(Serializer::V2)
    );
    for bad in [
        "2.1.0",
        "123.1.1",
        "abc",
        "",
        "2.0",
        "2.0.0.0",
        "02.0.0",
        "1.1.0",
        "2.0.0-",
        "2.0.0-rc.1",
        "3.0.0",
        "v2.0.0",
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
    assert!(matches!(err(&[0xff, 0xfe]), DecodeError::InvalidJson(_)));
}

/// Encodes `msg` with V2 and checks it is the given text frame.
fn assert_v2(msg: Outbound<'_>, expected: &str) {
    assert_eq!(text(Serializer::V2, msg), expected);
}

#[test]
fn worked_session_of_section_10() {
    let v2 = Serializer::V2;
    let join = v2
        .decode_text(br#"["3","3","room:lobby","phx_join",{"name":"bob"}]"#)
        .unwrap();
    assert_eq!(join.event, crate::event::JOIN);
    let join_ref = join.join_ref.as_ref();
    assert_v2(
        Outbound::Reply {
            join_ref,
            r#ref: join.r#ref.as_ref(),
            topic: &join.topic,
            status: "ok",
            response: PayloadRef::empty_object(),
        },
        r#"["3","3","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
    );
    let metas = r#"{"bob":{"metas":[{"online_at":"1732400000","phx_ref":"GBnW9Yv8yC4pAAKB"}]}}"#;
    let state = raw(metas);
    assert_v2(
        Outbound::Message {
            join_ref,
            r#ref: None,
            topic: "room:lobby",
            event: crate::event::PRESENCE_STATE,
            payload: PayloadRef::Json(&state),
        },
        &format!(r#"["3",null,"room:lobby","presence_state",{metas}]"#),
    );
    let diff = raw(&format!(r#"{{"joins":{metas},"leaves":{{}}}}"#));
    assert_v2(
        Outbound::Message {
            join_ref: None,
            r#ref: None,
            topic: "room:lobby",
            event: crate::event::PRESENCE_DIFF,
            payload: PayloadRef::Json(&diff),
        },
        &format!(r#"[null,null,"room:lobby","presence_diff",{{"joins":{metas},"leaves":{{}}}}]"#),
    );

    let new_msg = v2
        .decode_text(br#"["3","4","room:lobby","new_msg",{"body":"hi"}]"#)
        .unwrap();
    assert_eq!(new_msg.join_ref.as_ref(), join_ref);
    assert_eq!(new_msg.r#ref, Some(Ref::from("4")));
    let body = raw(r#"{"body":"hi","user":"bob"}"#);
    assert_v2(
        Outbound::Message {
            join_ref: None,
            r#ref: None,
            topic: "room:lobby",
            event: &new_msg.event,
            payload: PayloadRef::Json(&body),
        },
        r#"[null,null,"room:lobby","new_msg",{"body":"hi","user":"bob"}]"#,
    );
    assert_v2(
        Outbound::Reply {
            join_ref,
            r#ref: new_msg.r#ref.as_ref(),
            topic: "room:lobby",
            status: "ok",
            response: PayloadRef::empty_object(),
        },
        r#"["3","4","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
    );

    let heartbeat = v2
        .decode_text(br#"[null,"5","phoenix","heartbeat",{}]"#)
        .unwrap();
    assert_eq!(
        (heartbeat.topic.as_str(), heartbeat.event.as_str()),
        (crate::event::PHOENIX_TOPIC, crate::event::HEARTBEAT)
    );
    assert_eq!(heartbeat.join_ref, None);
    assert_v2(
        Outbound::Reply {
            join_ref: None,
            r#ref: heartbeat.r#ref.as_ref(),
            topic: "phoenix",
            status: "ok",
            response: PayloadRef::empty_object(),
        },
        r#"[null,"5","phoenix","phx_reply",{"response":{},"status":"ok"}]"#,
    );

    let unjoined = v2
        .decode_text(br#"["3","6","room:other","new_msg",{}]"#)
        .unwrap();
    let reason = raw(r#"{"reason":"unmatched topic"}"#);
    assert_v2(
        Outbound::Reply {
            join_ref: None,
            r#ref: unjoined.r#ref.as_ref(),
            topic: &unjoined.topic,
            status: "error",
            response: PayloadRef::Json(&reason),
        },
        r#"[null,"6","room:other","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#,
    );

    let leave = v2
        .decode_text(br#"["3","7","room:lobby","phx_leave",{}]"#)
        .unwrap();
    assert_eq!(leave.event, crate::event::LEAVE);
    assert_v2(
        Outbound::Reply {
            join_ref,
            r#ref: leave.r#ref.as_ref(),
            topic: "room:lobby",
            status: "ok",
            response: PayloadRef::empty_object(),
        },
        r#"["3","7","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
    );
    // phx_close carries the channel's join_ref as both join_ref and ref (§2.1).
    assert_v2(
        Outbound::Message {
            join_ref,
            r#ref: join_ref,
            topic: "room:lobby",
            event: crate::event::CLOSE,
            payload: PayloadRef::empty_object(),
        },
        r#"["3","3","room:lobby","phx_close",{}]"#,
    );
}

#[test]
fn v2_payload_text_is_kept_as_sent() {
    let m = Serializer::V2
        .decode_text(b" [ \"3\" , null ,\"t\",\"e\", {\"a\": [1, 2.50, \"\\u00e9\"]} ] \n")
        .unwrap();
    let Payload::Json(p) = &m.payload else {
        panic!("json payload")
    };
    // Not re-serialized: spacing, number spelling and escapes survive.
    assert_eq!(p.get(), r#"{"a": [1, 2.50, "\u00e9"]}"#);
    assert_eq!(m.r#ref, None);
    let parsed: serde_json::Value = m.payload.parse().unwrap();
    assert_eq!(parsed["a"][2], "é");
}

#[test]
fn v2_decoding_rejects_what_is_not_one_json_array() {
    let err = |t: &[u8]| Serializer::V2.decode_text(t).unwrap_err();
    assert!(matches!(err(b""), DecodeError::InvalidJson(_)));
    assert!(matches!(err(b"   "), DecodeError::InvalidJson(_)));
    assert!(matches!(
        err(br#"["3","3","t","e",{}] []"#),
        DecodeError::InvalidJson(_)
    ));
    assert!(matches!(
        err(br#"["3","3","t","e",{}, nope]"#),
        DecodeError::InvalidJson(_)
    ));
    assert_eq!(err(b"42"), DecodeError::NotAnArray);
    assert_eq!(err(br#""[""#), DecodeError::NotAnArray);
    assert_eq!(err(b" null "), DecodeError::NotAnArray);
    assert_eq!(err(b"[]"), DecodeError::TooFewElements(0));
    assert_eq!(err(br#"[null,"1","t"]"#), DecodeError::TooFewElements(3));
    assert_eq!(
        err(br#"["3","3","t","e"]"#),
        DecodeError::TooFewElements(4),
        "the payload is required"
    );
}

#[test]
fn v2_refs_of_every_scalar_kind_are_echoed_unchanged() {
    let m = Serializer::V2
        .decode_text(br#"[true, -1.5e3, "t", "e", {}]"#)
        .unwrap();
    assert_eq!(m.join_ref, Some(Ref::from_json_text("true")));
    assert_eq!(m.r#ref, Some(Ref::from_json_text("-1.5e3")));
    assert_eq!(m.r#ref.as_ref().and_then(Ref::as_str), None);
    let m2 = Serializer::V2
        .decode_text(br#"["a\"b", "\u0031", "t", "e", {}]"#)
        .unwrap();
    assert_eq!(m2.join_ref, Some(Ref::from("a\"b")));
    assert_eq!(m2.r#ref, Some(Ref::from("1")), "escapes are undone");
    for m in [m, m2] {
        let mut out = Vec::new();
        Serializer::V2
            .encode(
                &Outbound::Message {
                    join_ref: m.join_ref.as_ref(),
                    r#ref: m.r#ref.as_ref(),
                    topic: "t",
                    event: "e",
                    payload: PayloadRef::empty_object(),
                },
                &mut out,
            )
            .unwrap();
        let echoed = Serializer::V2.decode_text(&out).unwrap();
        assert_eq!((echoed.join_ref, echoed.r#ref), (m.join_ref, m.r#ref));
    }
    let mut out = Vec::new();
    let number = Ref::from_json_text("-1.5e3");
    Serializer::V2
        .encode(
            &Outbound::Reply {
                join_ref: None,
                r#ref: Some(&number),
                topic: "t",
                status: "ok",
                response: PayloadRef::empty_object(),
            },
            &mut out,
        )
        .unwrap();
    assert_eq!(
        out,
        br#"[null,-1.5e3,"t","phx_reply",{"response":{},"status":"ok"}]"#
    );
}

#[test]
fn v2_object_and_array_refs_are_echoed_byte_for_byte() {
    let frame = br#"[{"tab":"a","n":[1,2]},["x",{}],"room:lobby","e",{}]"#;
    let m = Serializer::V2.decode_text(frame).unwrap();
    let join_ref = Ref::from_json_text(r#"{"tab":"a","n":[1,2]}"#);
    let r#ref = Ref::from_json_text(r#"["x",{}]"#);
    assert_eq!((&m.join_ref, &m.r#ref), (&Some(join_ref), &Some(r#ref)));
    assert_eq!(m.join_ref.as_ref().and_then(Ref::as_str), None);
    assert_v2(
        Outbound::Reply {
            join_ref: m.join_ref.as_ref(),
            r#ref: m.r#ref.as_ref(),
            topic: "room:lobby",
            status: "ok",
            response: PayloadRef::empty_object(),
        },
        r#"[{"tab":"a","n":[1,2]},["x",{}],"room:lobby","phx_reply",{"response":{},"status":"ok"}]"#,
    );
}

#[test]
fn refs_compare_strictly_by_kind_and_text() {
    let refs = [
        Ref::from("1"),
        Ref::from_json_text("1"),
        Ref::from("{}"),
        Ref::from_json_text("{}"),
        Ref::from_json_text("[]"),
        Ref::from_json_text(r#"{"a":1}"#),
    ];
    for (i, a) in refs.iter().enumerate() {
        for (j, b) in refs.iter().enumerate() {
            assert_eq!(a == b, i == j, "{a:?} vs {b:?}");
        }
    }
    let decoded = Serializer::V2
        .decode_text(br#"[{"a":1},"1","t","e",{}]"#)
        .unwrap();
    assert_eq!(decoded.join_ref.as_ref(), Some(&refs[5]));
}

#[test]
fn encode_appends_to_what_is_already_in_the_buffer() {
    let mut out = b"prefix".to_vec();
    let kind = Serializer::V2
        .encode(
            &Outbound::Message {
                join_ref: None,
                r#ref: None,
                topic: "t",
                event: "e",
                payload: PayloadRef::empty_object(),
            },
            &mut out,
        )
        .unwrap();
    assert_eq!(kind, FrameKind::Text);
    assert_eq!(out, br#"prefix[null,null,"t","e",{}]"#);
}

#[test]
fn v2_status_and_topic_are_escaped_in_replies() {
    assert_v2(
        Outbound::Reply {
            join_ref: None,
            r#ref: None,
            topic: "a\\b",
            status: "not \"ok\"\u{1}",
            response: PayloadRef::empty_object(),
        },
        r#"[null,null,"a\\b","phx_reply",{"response":{},"status":"not \"ok\"\u0001"}]"#,
    );
}

#[test]
fn ref_as_str_gives_the_unescaped_text_of_string_refs_only() {
    let m = Serializer::V2
        .decode_text(br#"["a\"b", 7, "t", "e", {}]"#)
        .unwrap();
    assert_eq!(m.join_ref.as_ref().and_then(Ref::as_str), Some("a\"b"));
    assert_eq!(m.r#ref.as_ref().and_then(Ref::as_str), None, "a number");
    assert_eq!(Ref::from("").as_str(), Some(""));
    assert_eq!(Ref::from(String::from("42")).as_str(), Some("42"));
}

#[test]
fn payloads_built_from_json_values_keep_their_text_and_binary_has_none() {
    let json = Payload::from(serde_json::json!({"a": [1, "b"]}));
    assert_eq!(json.as_json(), Some(r#"{"a":[1,"b"]}"#));
    let from_map = Payload::from(serde_json::Map::new());
    assert_eq!(from_map.as_json(), Some("{}"));
    let binary = Payload::from(vec![1u8, 2]);
    assert_eq!(binary.as_json(), None);
    assert!(matches!(binary, Payload::Binary(ref b) if b[..] == [1, 2]));
    #[derive(serde::Serialize)]
    struct Msg {
        body: &'static str,
    }
    assert_eq!(
        Payload::json(&Msg { body: "hi" }).as_json(),
        Some(r#"{"body":"hi"}"#)
    );
    let bad: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into_iter().collect();
    assert!(
        Payload::try_json(&bad).is_err(),
        "non-string map keys do not serialize"
    );
}

/// What a frame written around its payload looks like, as text: head, payload, tail.
fn around(s: Serializer, msg: Outbound<'_>) -> (String, String) {
    let (mut head, mut tail) = (Vec::new(), Vec::new());
    assert_eq!(
        s.encode_around(&msg, &mut head, &mut tail).unwrap(),
        FrameKind::Text
    );
    (
        String::from_utf8(head).unwrap(),
        String::from_utf8(tail).unwrap(),
    )
}

#[test]
fn a_presence_state_push_written_around_its_list_is_the_encoded_push() {
    let list = raw(r#"{"u1":{"metas":[{"phx_ref":"F1"}]},"u\"2":{"metas":[]}}"#);
    let join_ref = Ref::from("12");
    let number_ref = Ref::from_json_text("12");
    for (s, join_ref, head, tail) in [
        (
            Serializer::V2,
            &join_ref,
            r#"["12",null,"presence:storm","presence_state","#,
            "]",
        ),
        (
            Serializer::V2,
            &number_ref,
            r#"[12,null,"presence:storm","presence_state","#,
            "]",
        ),
        (
            Serializer::V1,
            &join_ref,
            r#"{"event":"presence_state","payload":"#,
            r#","ref":null,"topic":"presence:storm"}"#,
        ),
    ] {
        let msg = Outbound::Message {
            join_ref: Some(join_ref),
            r#ref: None,
            topic: "presence:storm",
            event: "presence_state",
            payload: PayloadRef::Json(&list),
        };
        assert_eq!(around(s, msg), (head.to_owned(), tail.to_owned()));
        assert_eq!(format!("{head}{}{tail}", list.get()), text(s, msg));
    }
}

#[test]
fn a_reply_written_around_its_response_is_the_encoded_reply() {
    let response = raw(r#"{"history":[1,2,3]}"#);
    let r = Ref::from("5");
    let msg = Outbound::Reply {
        join_ref: Some(&r),
        r#ref: Some(&r),
        topic: "room:\"1\"",
        status: "ok",
        response: PayloadRef::Json(&response),
    };
    for s in [Serializer::V1, Serializer::V2] {
        let (head, tail) = around(s, msg);
        assert_eq!(format!("{head}{}{tail}", response.get()), text(s, msg));
        assert!(head.ends_with(r#"{"response":"#), "{head}");
        assert!(tail.starts_with(r#","status":"ok"}"#), "{tail}");
    }
}

#[test]
fn a_binary_frame_written_around_its_payload_ends_with_it() {
    let j = Ref::from("1");
    let msg = Outbound::Message {
        join_ref: Some(&j),
        r#ref: None,
        topic: "t",
        event: "e",
        payload: PayloadRef::Binary(b"\x00\x01"),
    };
    let (mut head, mut tail) = (Vec::new(), Vec::new());
    let kind = Serializer::V2
        .encode_around(&msg, &mut head, &mut tail)
        .unwrap();
    assert_eq!(kind, FrameKind::Binary);
    assert!(tail.is_empty());
    assert_eq!(
        [&head[..], b"\x00\x01"].concat(),
        encode(Serializer::V2, msg).1
    );
    assert_eq!(
        Serializer::V1.encode_around(&msg, &mut head, &mut tail),
        Err(EncodeError::BinaryNotSupported)
    );
}

#[test]
fn shared_json_text_is_one_buffer_whatever_the_clones() {
    let text = crate::JsonText::from(raw(r#"{"a":1}"#));
    assert!(!text.is_shared());
    let shared = text.into_shared();
    let clones: Vec<_> = (0..3).map(|_| shared.clone()).collect();
    assert!(clones
        .iter()
        .all(|c| c.is_shared() && c.get() == r#"{"a":1}"#));
    // Bytes made from any clone point into the one buffer.
    let (a, b) = (
        clones[0].clone().into_bytes(),
        clones[1].clone().into_bytes(),
    );
    assert_eq!(a.as_ptr(), b.as_ptr());
    assert_eq!(a.as_ptr(), shared.get().as_ptr());
    assert_eq!(&a[..], br#"{"a":1}"#);
    // An owned text moves into its bytes, uncopied.
    let owned = crate::JsonText::from(raw(r#"{"b":2}"#));
    let at = owned.get().as_ptr();
    assert_eq!(owned.into_bytes().as_ptr(), at);
    // Back to an owned text: copied only while others still share it.
    assert_eq!(clones[2].clone().into_raw().get(), r#"{"a":1}"#);
    let payload = Payload::Json(shared).into_shared();
    assert_eq!(payload.as_json(), Some(r#"{"a":1}"#));
}
