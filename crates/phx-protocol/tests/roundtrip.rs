//! Property tests: encode → decode round trips, the §2.4 layout of every binary frame the
//! server writes, and no input makes a decoder panic.

use phx_protocol::{EncodeError, FrameKind, Outbound, Payload, PayloadRef, Ref, Serializer};
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::Value;

/// Any string, control characters, quotes, backslashes and non-ASCII included.
fn any_string(max_chars: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max_chars).prop_map(String::from_iter)
}

fn json_payload() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any_string(12).prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::hash_map(any_string(6), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::hash_map(any_string(6), value, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A ref as a client may send it: a string (phoenix.js) or any other JSON value, kept as
/// its JSON text (small enough to fit a binary header).
fn any_ref() -> impl Strategy<Value = Ref> {
    prop_oneof![
        4 => any_string(8).prop_map(Ref::from),
        2 => any::<i64>().prop_map(|n| Ref::from_json_text(&n.to_string())),
        1 => prop_oneof![Just("true"), Just("false"), Just("1.5e3"), Just("-0.25")]
            .prop_map(Ref::from_json_text),
        1 => (any_string(4), any::<i64>(), any::<bool>()).prop_map(|(key, n, array)| {
            let value = if array {
                Value::Array(vec![Value::String(key), Value::from(n), Value::Null])
            } else {
                Value::Object([(key, Value::from(n))].into_iter().collect())
            };
            Ref::from_json_text(&value.to_string())
        }),
    ]
}

fn opt_ref() -> impl Strategy<Value = Option<Ref>> {
    prop::option::of(any_ref())
}

fn json(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap()
}

/// The raw text of a decoded JSON payload.
fn payload_text(payload: &Payload) -> &str {
    let Payload::Json(raw) = payload else {
        panic!("json payload expected")
    };
    raw.get()
}

/// The reply payload Phoenix writes, `{"response":R,"status":S}`, byte for byte.
fn reply_payload(response: &RawValue, status: &str) -> String {
    format!(
        r#"{{"response":{},"status":{}}}"#,
        response.get(),
        serde_json::to_string(status).unwrap()
    )
}

/// Builds a client push frame by hand, per §2.4 (client → server layout of kind 0).
fn client_push(join_ref: &str, r#ref: &str, topic: &str, event: &str, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0];
    for s in [join_ref, r#ref, topic, event] {
        f.push(u8::try_from(s.len()).unwrap());
    }
    for s in [join_ref, r#ref, topic, event] {
        f.extend_from_slice(s.as_bytes());
    }
    f.extend_from_slice(payload);
    f
}

/// A server binary frame, parsed per §2.4 by an independent reading of the spec.
#[derive(Debug, PartialEq)]
struct ServerFrame {
    kind: u8,
    join_ref: Option<String>,
    r#ref: Option<String>,
    topic: String,
    /// The event (kinds 0 and 2) or the status (kind 1).
    event: String,
    payload: Vec<u8>,
}

fn parse_server_frame(f: &[u8]) -> ServerFrame {
    let kind = f[0];
    let header = match kind {
        0 => 4, // join_ref_size, topic_size, event_size
        1 => 5, // join_ref_size, ref_size, topic_size, status_size
        2 => 3, // topic_size, event_size
        k => panic!("kind {k} is not a server frame"),
    };
    let mut pos = header;
    let mut strings = f[1..header].iter().map(|&size| {
        let s = std::str::from_utf8(&f[pos..pos + usize::from(size)]).unwrap();
        pos += usize::from(size);
        s.to_owned()
    });
    let mut next = || strings.next().unwrap();
    let (join_ref, r#ref) = match kind {
        0 => (Some(next()), None),
        1 => (Some(next()), Some(next())),
        _ => (None, None),
    };
    let (topic, event) = (next(), next());
    drop(strings);
    ServerFrame {
        kind,
        join_ref,
        r#ref,
        topic,
        event,
        payload: f[pos..].to_vec(),
    }
}

/// The bytes of a ref in a binary header: empty for null.
fn field(r: &Option<Ref>) -> String {
    r.as_ref().map_or("", Ref::binary_field).to_owned()
}

proptest! {
    #[test]
    fn v2_text_messages_round_trip(
        join_ref in opt_ref(), r in opt_ref(),
        topic in any_string(40), event in any_string(20), payload in json_payload(),
    ) {
        let raw = json(&payload);
        let msg = Outbound::Message { join_ref: join_ref.as_ref(), r#ref: r.as_ref(), topic: &topic, event: &event, payload: PayloadRef::Json(&raw) };
        let mut out = Vec::new();
        prop_assert_eq!(Serializer::V2.encode(&msg, &mut out).unwrap(), FrameKind::Text);
        // The frame is the documented array, whatever the strings hold.
        let array: Vec<Value> = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(array.len(), 5);
        let back = Serializer::V2.decode_text(&out).unwrap();
        prop_assert_eq!(back.join_ref, join_ref);
        prop_assert_eq!(back.r#ref, r);
        prop_assert_eq!(back.topic, topic);
        prop_assert_eq!(back.event, event);
        // The payload goes through byte for byte.
        prop_assert_eq!(payload_text(&back.payload), raw.get());
    }

    #[test]
    fn v2_text_replies_round_trip(
        join_ref in opt_ref(), r in opt_ref(),
        topic in any_string(40), status in any_string(10), response in json_payload(),
    ) {
        let raw = json(&response);
        let msg = Outbound::Reply { join_ref: join_ref.as_ref(), r#ref: r.as_ref(), topic: &topic, status: &status, response: PayloadRef::Json(&raw) };
        let mut out = Vec::new();
        prop_assert_eq!(Serializer::V2.encode(&msg, &mut out).unwrap(), FrameKind::Text);
        let back = Serializer::V2.decode_text(&out).unwrap();
        prop_assert_eq!(back.join_ref, join_ref);
        prop_assert_eq!(back.r#ref, r);
        prop_assert_eq!(back.topic, topic);
        prop_assert_eq!(back.event, "phx_reply");
        prop_assert_eq!(payload_text(&back.payload), reply_payload(&raw, &status));
    }

    #[test]
    fn v1_text_round_trips_without_join_ref(
        join_ref in opt_ref(), r in opt_ref(), reply in any::<bool>(),
        topic in any_string(40), event in any_string(20), payload in json_payload(),
    ) {
        let raw = json(&payload);
        let msg = if reply {
            Outbound::Reply { join_ref: join_ref.as_ref(), r#ref: r.as_ref(), topic: &topic, status: &event, response: PayloadRef::Json(&raw) }
        } else {
            Outbound::Message { join_ref: join_ref.as_ref(), r#ref: r.as_ref(), topic: &topic, event: &event, payload: PayloadRef::Json(&raw) }
        };
        let mut out = Vec::new();
        prop_assert_eq!(Serializer::V1.encode(&msg, &mut out).unwrap(), FrameKind::Text);
        let object: serde_json::Map<String, Value> = serde_json::from_slice(&out).unwrap();
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        prop_assert_eq!(keys, ["event", "payload", "ref", "topic"]);
        let back = Serializer::V1.decode_text(&out).unwrap();
        prop_assert_eq!(back.join_ref, None);
        prop_assert_eq!(back.r#ref, r);
        prop_assert_eq!(back.topic, topic);
        if reply {
            prop_assert_eq!(back.event, "phx_reply");
            prop_assert_eq!(payload_text(&back.payload), reply_payload(&raw, &event));
        } else {
            prop_assert_eq!(back.event, event);
            prop_assert_eq!(payload_text(&back.payload), raw.get());
        }
    }

    /// A frame written around its payload (the payload from a buffer of its own, between
    /// the frame's head and tail) is byte for byte the frame `encode` writes, for every
    /// serializer and frame kind.
    #[test]
    fn frames_written_around_their_payload_are_the_encoded_frames(
        join_ref in opt_ref(), r in opt_ref(), reply in any::<bool>(), binary in any::<bool>(),
        topic in any_string(40), event in any_string(20), payload in json_payload(),
        data in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let raw = json(&payload);
        let body = if binary { PayloadRef::Binary(&data) } else { PayloadRef::Json(&raw) };
        let bytes: &[u8] = if binary { &data } else { raw.get().as_bytes() };
        let msg = if reply {
            Outbound::Reply { join_ref: join_ref.as_ref(), r#ref: r.as_ref(), topic: &topic, status: &event, response: body }
        } else {
            Outbound::Message { join_ref: join_ref.as_ref(), r#ref: r.as_ref(), topic: &topic, event: &event, payload: body }
        };
        for s in [Serializer::V1, Serializer::V2] {
            let mut whole = b"before".to_vec();
            let (mut head, mut tail) = (b"before".to_vec(), b"after".to_vec());
            let encoded = s.encode(&msg, &mut whole);
            let around = s.encode_around(&msg, &mut head, &mut tail);
            prop_assert_eq!(&encoded, &around);
            if encoded.is_ok() {
                prop_assert_eq!([&head[..], bytes, &tail[b"after".len()..]].concat(), whole);
            } else {
                prop_assert_eq!((&head[..], &tail[..]), (&b"before"[..], &b"after"[..]));
            }
        }
    }

    #[test]
    fn binary_client_pushes_decode(
        join_ref in any_string(8), r in any_string(8),
        topic in any_string(60), event in any_string(60),
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let frame = client_push(&join_ref, &r, &topic, &event, &payload);
        for m in [
            Serializer::V2.decode_binary(&frame).unwrap(),
            Serializer::V2.decode_binary_bytes(&frame.clone().into()).unwrap(),
        ] {
            prop_assert_eq!(m.join_ref, (!join_ref.is_empty()).then(|| Ref::from(join_ref.as_str())));
            prop_assert_eq!(m.r#ref, (!r.is_empty()).then(|| Ref::from(r.as_str())));
            prop_assert_eq!(&m.topic, &topic);
            prop_assert_eq!(&m.event, &event);
            let Payload::Binary(b) = m.payload else { panic!("binary payload") };
            prop_assert_eq!(&b[..], &payload[..]);
        }
    }

    #[test]
    fn binary_server_frames_have_the_documented_layout(
        reply in any::<bool>(), join_ref in opt_ref(), r in opt_ref(),
        topic in any_string(60), event in any_string(60),
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let msg = if reply {
            Outbound::Reply { join_ref: join_ref.as_ref(), r#ref: r.as_ref(), topic: &topic, status: &event, response: PayloadRef::Binary(&payload) }
        } else {
            Outbound::Message { join_ref: join_ref.as_ref(), r#ref: r.as_ref(), topic: &topic, event: &event, payload: PayloadRef::Binary(&payload) }
        };
        let mut out = Vec::new();
        prop_assert_eq!(Serializer::V2.encode(&msg, &mut out).unwrap(), FrameKind::Binary);
        let expected = match (reply, &join_ref) {
            (true, _) => ServerFrame { kind: 1, join_ref: Some(field(&join_ref)), r#ref: Some(field(&r)), topic, event, payload },
            (false, Some(_)) => ServerFrame { kind: 0, join_ref: Some(field(&join_ref)), r#ref: None, topic, event, payload },
            (false, None) => ServerFrame { kind: 2, join_ref: None, r#ref: None, topic, event, payload },
        };
        prop_assert_eq!(parse_server_frame(&out), expected);
    }

    #[test]
    fn binary_fields_over_255_bytes_are_refused(
        reply in any::<bool>(), lens in prop::array::uniform4(250usize..=260),
    ) {
        let [j, r, t, e] = lens.map(|n| "a".repeat(n));
        let (j, r) = (Ref::from(j), Ref::from(r));
        let msg = if reply {
            Outbound::Reply { join_ref: Some(&j), r#ref: Some(&r), topic: &t, status: &e, response: PayloadRef::Binary(b"x") }
        } else {
            Outbound::Message { join_ref: Some(&j), r#ref: None, topic: &t, event: &e, payload: PayloadRef::Binary(b"x") }
        };
        let mut out = b"before".to_vec();
        let result = Serializer::V2.encode(&msg, &mut out);
        let names = if reply { ["join_ref", "ref", "topic", "status"] } else { ["join_ref", "", "topic", "event"] };
        let too_long = names.iter().zip(lens).find(|(name, len)| !name.is_empty() && *len > 255);
        match too_long {
            Some((name, _)) => {
                prop_assert_eq!(result, Err(EncodeError::FieldTooLong(name)));
                prop_assert_eq!(out, b"before");
            }
            None => {
                prop_assert_eq!(result, Ok(FrameKind::Binary));
                prop_assert_eq!(parse_server_frame(&out[6..]).payload, b"x");
            }
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for s in [Serializer::V1, Serializer::V2] {
            let _ = s.decode_text(&bytes);
            let _ = s.decode_binary(&bytes);
        }
    }

    #[test]
    fn decoding_json_like_text_never_panics(text in r#"[\[\]{}",:0-9a-z \\.eE+-]{0,80}"#) {
        for s in [Serializer::V1, Serializer::V2] {
            let _ = s.decode_text(text.as_bytes());
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let text = br#"["3","3","room:lobby","phx_join",{"name":"bob","n":[1,2,{"x":null}]}]"#.to_vec();
        let bin = client_push("3", "5", "room:lobby", "bin", &[1, 2, 3]);
        let v1 = br#"{"topic":"t","event":"e","payload":{"a":1},"ref":"1","join_ref":"2"}"#.to_vec();
        for mut frame in [text, bin, v1] {
            for (pos, byte) in &edits {
                let i = pos.index(frame.len());
                frame[i] = *byte;
            }
            frame.truncate(cut.index(frame.len() + 1));
            for s in [Serializer::V1, Serializer::V2] {
                let _ = s.decode_text(&frame);
                let _ = s.decode_binary(&frame);
            }
        }
    }
}
