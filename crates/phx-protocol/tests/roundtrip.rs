//! Property tests: encode → decode round trips, and no input makes a decoder panic.

use phx_protocol::{FrameKind, Outbound, Payload, PayloadRef, Ref, Serializer};
use proptest::prelude::*;
use serde_json::Value;

fn json_payload() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::hash_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::hash_map("[a-z]{1,6}", value, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn opt_ref() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[0-9]{1,6}")
}

/// Builds a client push frame by hand, per §2.4 (client → server layout of kind 0).
fn client_push(join_ref: &str, r#ref: &str, topic: &str, event: &str, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0,
        join_ref.len() as u8,
        r#ref.len() as u8,
        topic.len() as u8,
        event.len() as u8,
    ];
    for s in [join_ref, r#ref, topic, event] {
        f.extend_from_slice(s.as_bytes());
    }
    f.extend_from_slice(payload);
    f
}

proptest! {
    #[test]
    fn v2_text_round_trips(join_ref in opt_ref(), r in opt_ref(), topic in ".{0,40}", event in ".{0,20}", payload in json_payload()) {
        let (j, r) = (join_ref.map(Ref::from), r.map(Ref::from));
        let raw = serde_json::value::to_raw_value(&payload).unwrap();
        let mut out = Vec::new();
        let msg = Outbound::Message { join_ref: j.as_ref(), r#ref: r.as_ref(), topic: &topic, event: &event, payload: PayloadRef::Json(&raw) };
        prop_assert_eq!(Serializer::V2.encode(&msg, &mut out).unwrap(), FrameKind::Text);
        let back = Serializer::V2.decode_text(&out).unwrap();
        prop_assert_eq!(back.join_ref, j);
        prop_assert_eq!(back.r#ref, r);
        prop_assert_eq!(back.topic, topic);
        prop_assert_eq!(back.event, event);
        let Payload::Json(p) = back.payload else { panic!("json payload") };
        prop_assert_eq!(serde_json::from_str::<Value>(p.get()).unwrap(), payload);
    }

    #[test]
    fn v1_text_round_trips(r in opt_ref(), topic in ".{0,40}", event in ".{0,20}", payload in json_payload()) {
        let r = r.map(Ref::from);
        let raw = serde_json::value::to_raw_value(&payload).unwrap();
        let mut out = Vec::new();
        let msg = Outbound::Message { join_ref: None, r#ref: r.as_ref(), topic: &topic, event: &event, payload: PayloadRef::Json(&raw) };
        Serializer::V1.encode(&msg, &mut out).unwrap();
        let back = Serializer::V1.decode_text(&out).unwrap();
        prop_assert_eq!(back.r#ref, r);
        prop_assert_eq!(back.topic, topic);
        prop_assert_eq!(back.event, event);
    }

    #[test]
    fn binary_client_pushes_decode(join_ref in "[0-9]{0,8}", r in "[0-9]{0,8}", topic in ".{0,60}", event in ".{0,30}", payload in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assume!(topic.len() <= 255 && event.len() <= 255);
        let frame = client_push(&join_ref, &r, &topic, &event, &payload);
        let m = Serializer::V2.decode_binary(&frame).unwrap();
        prop_assert_eq!(m.join_ref, (!join_ref.is_empty()).then(|| Ref::from(join_ref.as_str())));
        prop_assert_eq!(m.r#ref, (!r.is_empty()).then(|| Ref::from(r.as_str())));
        prop_assert_eq!(m.topic, topic);
        prop_assert_eq!(m.event, event);
        let Payload::Binary(b) = m.payload else { panic!("binary payload") };
        prop_assert_eq!(&b[..], &payload[..]);
    }

    #[test]
    fn binary_server_frames_have_the_documented_layout(join_ref in opt_ref(), topic in "[a-z:]{1,40}", event in "[a-z_]{1,20}", payload in prop::collection::vec(any::<u8>(), 0..64)) {
        let j = join_ref.map(Ref::from);
        let mut out = Vec::new();
        let msg = Outbound::Message { join_ref: j.as_ref(), r#ref: None, topic: &topic, event: &event, payload: PayloadRef::Binary(&payload) };
        prop_assert_eq!(Serializer::V2.encode(&msg, &mut out).unwrap(), FrameKind::Binary);
        // Parse it back per §2.4: push (kind 0, 4-byte header) or broadcast (kind 2, 3-byte header).
        let (fields, header): (Vec<usize>, usize) = match out[0] {
            0 => (vec![out[1] as usize, out[2] as usize, out[3] as usize], 4),
            2 => (vec![out[1] as usize, out[2] as usize], 3),
            k => panic!("kind {k}"),
        };
        prop_assert_eq!(out[0] == 0, j.is_some());
        let strings_len: usize = fields.iter().sum();
        prop_assert_eq!(&out[header + strings_len..], &payload[..]);
        let last_two = &out[header + strings_len - fields[fields.len() - 1] - fields[fields.len() - 2]..header + strings_len];
        let expected = [topic.as_bytes(), event.as_bytes()].concat();
        prop_assert_eq!(last_two, expected.as_slice());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for s in [Serializer::V1, Serializer::V2] {
            let _ = s.decode_text(&bytes);
            let _ = s.decode_binary(&bytes);
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let text = br#"["3","3","room:lobby","phx_join",{"name":"bob","n":[1,2,{"x":null}]}]"#.to_vec();
        let bin = client_push("3", "5", "room:lobby", "bin", &[1, 2, 3]);
        let v1 = br#"{"topic":"t","event":"e","payload":{"a":1},"ref":"1","join_ref":"2"}"#.to_vec();
        for mut frame in [text, bin, v1] {
            let i = pos.index(frame.len());
            frame[i] = byte;
            frame.truncate(cut.index(frame.len() + 1));
            for s in [Serializer::V1, Serializer::V2] {
                let _ = s.decode_text(&frame);
                let _ = s.decode_binary(&frame);
            }
        }
    }
}
