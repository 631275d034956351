//! One phoenix_pubsub_redis 3.x message: `term_to_binary({3, mode, node_name, topic,
//! message, dispatcher}, compressed: level)`, read and written.
//!
//! A Phoenix node publishes every `PubSub.broadcast` this way (mode `:except`, its own
//! node name: every other node dispatches it locally) and every `direct_broadcast`
//! (mode `:only`, the target's name: only that node dispatches it). Channel broadcasts
//! (`Endpoint.broadcast/3`, a channel's `broadcast/3`) carry a
//! `%Phoenix.Socket.Broadcast{topic, event, payload}` with the dispatcher
//! `Phoenix.Channel.Server`, whose `dispatch/3` is the fastlane: the payload is encoded
//! once per serializer and written to every subscribed socket, except for channels that
//! intercept the event, which get it in `handle_out/3`.

use bytes::Bytes;
use phx_protocol::{Payload, PayloadRef};
use serde_json::value::RawValue;

use crate::etf::{self, Limits, Term, TermError};

use super::jason::{self, NotEncodable};
use crate::pubsub::adapter::Dispatch;

/// `@redis_msg_vsn` of phoenix_pubsub_redis 3.x.
const VERSION: i64 = 3;

/// How phx-rs writes the version: as `INTEGER_EXT` (`b`, then 3 on four bytes). Erlang
/// reads it as the same 3, but `term_to_binary` always writes 3 as `SMALL_INTEGER_EXT`,
/// so these bytes after the version byte tell a message published by a phx-rs node.
/// phx-rs nodes skip such messages: they get the same broadcast in their own envelope.
pub(crate) const PHX_RS_MARK: [u8; 7] = [104, 6, 98, 0, 0, 0, 3];

/// `Phoenix.Socket.Broadcast`'s module atom.
const BROADCAST: &str = "Elixir.Phoenix.Socket.Broadcast";
/// The fastlane dispatcher of channel broadcasts.
pub(crate) const CHANNEL_SERVER: &str = "Elixir.Phoenix.Channel.Server";
/// Phoenix.PubSub's default dispatcher (a plain `send` to each subscriber).
const PUBSUB: &str = "Elixir.Phoenix.PubSub";

/// A broadcast from a Phoenix node, for this node's subscribers.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) topic: String,
    pub(crate) event: String,
    pub(crate) payload: Payload,
    pub(crate) dispatch: Dispatch,
}

/// What a message on the Phoenix channel turned out to be.
#[derive(Debug)]
pub(crate) enum Read {
    /// A broadcast to deliver.
    Deliver(Received),
    /// Published by a phx-rs node (this one or another): it reached phx-rs nodes in
    /// their own envelope already.
    FromPhxRs,
    /// A broadcast on a topic this node has no subscriber of (a Phoenix node would
    /// dispatch it to nobody).
    NoSubscribers,
    /// Not for this node, or not deliverable: why, and the detail for the log.
    Ignored(Ignored, String),
}

/// Why a message was ignored: the `kind` label of `phx_phoenix_pubsub_ignored_total`.
/// (Declared in the order of [`Ignored::ALL`], so `kind as usize` is its index there.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ignored {
    /// Over the size limit (received or inflated).
    TooLarge,
    /// Not a well-formed external term, or nested too deep.
    Undecodable,
    /// Not `{3, mode, node, topic, message, dispatcher}`.
    Version,
    /// `:only`, addressed to another node.
    OtherNode,
    /// `:except` from a node using this node's name (a misconfiguration: this node
    /// would drop every broadcast of that node, as Phoenix does).
    SameNodeName,
    /// Not a `%Phoenix.Socket.Broadcast{}` (Phoenix.Tracker's traffic, LiveView's
    /// `{:event, data}` messages...).
    NotABroadcast,
    /// A dispatcher other than Phoenix.Channel.Server and Phoenix.PubSub: its
    /// `dispatch/3` is Elixir code phx-rs cannot run.
    Dispatcher,
    /// The broadcast's topic is not the topic it was published on.
    TopicMismatch,
    /// A payload Jason could not encode (Phoenix's fastlane raises).
    NotEncodable,
    /// A phx-rs broadcast whose payload has no Elixir term (not published).
    NotConvertible,
}

impl Ignored {
    pub(crate) const ALL: [Self; 10] = [
        Self::TooLarge,
        Self::Undecodable,
        Self::Version,
        Self::OtherNode,
        Self::SameNodeName,
        Self::NotABroadcast,
        Self::Dispatcher,
        Self::TopicMismatch,
        Self::NotEncodable,
        Self::NotConvertible,
    ];

    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Undecodable => "undecodable",
            Self::Version => "version",
            Self::OtherNode => "other_node",
            Self::SameNodeName => "same_node_name",
            Self::NotABroadcast => "not_a_broadcast",
            Self::Dispatcher => "dispatcher",
            Self::TopicMismatch => "topic_mismatch",
            Self::NotEncodable => "not_encodable",
            Self::NotConvertible => "not_convertible",
        }
    }

    /// Whether this is ordinary traffic of a Phoenix cluster (logged at debug level)
    /// rather than a sign of a problem (logged as a warning).
    pub(crate) fn expected(self) -> bool {
        matches!(self, Self::OtherNode | Self::NotABroadcast)
    }
}

fn ignored(kind: Ignored, detail: impl Into<String>) -> Read {
    Read::Ignored(kind, detail.into())
}

/// Reads one message published on the Phoenix channel. `node` is this node's name;
/// `wanted` says whether this node has subscribers of a topic (the payload is converted
/// only then).
pub(crate) fn read(
    bytes: &[u8],
    node: &str,
    limits: &Limits,
    wanted: impl FnOnce(&str) -> bool,
) -> Read {
    let body = match etf::body(bytes, limits) {
        Ok(body) => body,
        Err(error @ TermError::TooLarge { .. }) => {
            return ignored(Ignored::TooLarge, error.to_string())
        }
        Err(error) => return ignored(Ignored::Undecodable, error.to_string()),
    };
    if body.starts_with(&PHX_RS_MARK) {
        return Read::FromPhxRs;
    }
    let term = match etf::decode_body(&body, limits) {
        Ok(term) => term,
        Err(error @ TermError::TooLarge { .. }) => {
            return ignored(Ignored::TooLarge, error.to_string())
        }
        Err(error) => return ignored(Ignored::Undecodable, error.to_string()),
    };
    let Term::Tuple(fields) = term else {
        return ignored(Ignored::Version, format!("a {}", jason::kind(&term)));
    };
    let [Term::Int(VERSION), mode, target, topic, message, dispatcher] = fields.as_slice() else {
        return ignored(
            Ignored::Version,
            format!("a tuple of {} elements or another version", fields.len()),
        );
    };
    let target_name = match target {
        Term::Atom(name) => Some(name.as_str()),
        Term::Binary(bytes) => std::str::from_utf8(bytes).ok(),
        _ => None,
    };
    // Node names compare as text: Phoenix nodes send theirs as an atom (`node()`) or,
    // configured with `node_name: System.get_env("NODE")`, as a binary.
    let for_this_node = target_name == Some(node);
    match mode {
        Term::Atom(mode) if mode == "except" && for_this_node => {
            return ignored(
                Ignored::SameNodeName,
                format!("a Phoenix node publishes as {node:?}, this node's own name"),
            )
        }
        Term::Atom(mode) if mode == "only" && !for_this_node => {
            return ignored(
                Ignored::OtherNode,
                format!("addressed to {}", target_name.unwrap_or("a non-text name")),
            )
        }
        Term::Atom(mode) if mode == "except" || mode == "only" => {}
        other => {
            return ignored(
                Ignored::Version,
                format!("mode is a {} ({other:?})", jason::kind(other)),
            )
        }
    }
    let Term::Binary(topic) = topic else {
        return ignored(Ignored::Version, "the topic is not a binary");
    };
    let Ok(topic) = String::from_utf8(topic.clone()) else {
        return ignored(Ignored::Undecodable, "the topic is not UTF-8");
    };
    let Some(broadcast) = broadcast_fields(message) else {
        return ignored(
            Ignored::NotABroadcast,
            format!("a {} on {topic:?}", describe(message)),
        );
    };
    let dispatch = match dispatcher {
        Term::Atom(name) if name == CHANNEL_SERVER => Dispatch::Fastlane,
        Term::Atom(name) if name == PUBSUB => Dispatch::HandleOut,
        other => {
            return ignored(
                Ignored::Dispatcher,
                format!("dispatcher {other:?} on {topic:?}"),
            )
        }
    };
    let (event, broadcast_topic, payload) = broadcast;
    if broadcast_topic != topic.as_bytes() {
        return ignored(
            Ignored::TopicMismatch,
            format!("a Broadcast for another topic published on {topic:?}"),
        );
    }
    let Ok(event) = std::str::from_utf8(event) else {
        return ignored(Ignored::NotEncodable, "the event is not UTF-8");
    };
    if !wanted(&topic) {
        return Read::NoSubscribers;
    }
    match payload_of(payload, dispatch) {
        Ok(payload) => Read::Deliver(Received {
            topic,
            event: event.to_owned(),
            payload,
            dispatch,
        }),
        Err(error) => ignored(
            Ignored::NotEncodable,
            format!("{error} (event {event:?} on {topic:?})"),
        ),
    }
}

/// `%Phoenix.Socket.Broadcast{event, topic, payload}`: event and topic (binaries) and
/// the payload.
fn broadcast_fields(message: &Term) -> Option<(&[u8], &[u8], &Term)> {
    let Term::Map(entries) = message else {
        return None;
    };
    let field = |name: &str| {
        entries
            .iter()
            .find_map(|(key, value)| key.is_atom(name).then_some(value))
    };
    if !field("__struct__")?.is_atom(BROADCAST) {
        return None;
    }
    match (field("event")?, field("topic")?, field("payload")?) {
        (Term::Binary(event), Term::Binary(topic), payload) => Some((event, topic, payload)),
        _ => None,
    }
}

/// What a message is, for the log of ignored kinds.
fn describe(message: &Term) -> String {
    match message {
        Term::Map(entries) => entries
            .iter()
            .find_map(|(key, value)| match value {
                Term::Atom(module) if key.is_atom("__struct__") => Some(format!(
                    "%{}{{}}",
                    module.strip_prefix("Elixir.").unwrap_or(module)
                )),
                _ => None,
            })
            .unwrap_or_else(|| "map".to_owned()),
        Term::Tuple(items) => match items.first() {
            Some(Term::Atom(tag)) => format!("{{:{tag}, ...}} tuple"),
            _ => "tuple".to_owned(),
        },
        other => jason::kind(other).to_owned(),
    }
}

/// The payload as the fastlane writes it: `{:binary, data}` as a binary frame, a map as
/// Jason's JSON (anything else raises in the fastlane; `handle_out` takes any JSON).
fn payload_of(payload: &Term, dispatch: Dispatch) -> Result<Payload, NotEncodable> {
    if let Term::Tuple(items) = payload {
        if let [tag, Term::Binary(data)] = items.as_slice() {
            if tag.is_atom("binary") {
                return Ok(Payload::Binary(Bytes::copy_from_slice(data)));
            }
        }
    }
    if dispatch == Dispatch::Fastlane && !matches!(payload, Term::Map(_)) {
        return Err(NotEncodable::NotAMap);
    }
    let mut text = String::new();
    jason::write_value(&mut text, payload)?;
    // The writer emits valid JSON; a failure here would be a bug, reported as such.
    RawValue::from_string(text)
        .map(Payload::from)
        .map_err(|_| NotEncodable::Term("term phx-rs wrote invalid JSON for"))
}

/// Why a phx-rs broadcast has no Phoenix form.
#[derive(Debug, thiserror::Error)]
#[error("payload has no Elixir term: {0}")]
pub(crate) struct NotConvertible(String);

/// `term_to_binary({3, :except, node, topic, %Phoenix.Socket.Broadcast{},
/// Phoenix.Channel.Server}, compressed: level)` for a broadcast that started on this node.
///
/// The payload becomes the term `Jason.decode!/1` gives for the same JSON (string keys),
/// or `{:binary, data}`. The version is written with [`PHX_RS_MARK`].
pub(crate) fn write(
    node: &str,
    topic: &str,
    event: &str,
    payload: PayloadRef<'_>,
    level: u32,
) -> Result<Vec<u8>, NotConvertible> {
    let payload = match payload {
        PayloadRef::Json(raw) => {
            let value: serde_json::Value = serde_json::from_str(raw.get())
                .map_err(|error| NotConvertible(error.to_string()))?;
            etf::json::from_json(&value)
        }
        PayloadRef::Binary(data) => {
            Term::Tuple(vec![Term::atom("binary"), Term::Binary(data.to_vec())])
        }
    };
    // Keys in term order (atoms by name), as term_to_binary writes a small map.
    let broadcast = Term::Map(vec![
        (Term::atom("__struct__"), Term::atom(BROADCAST)),
        (Term::atom("event"), Term::binary(event)),
        (Term::atom("payload"), payload),
        (Term::atom("topic"), Term::binary(topic)),
    ]);
    let mut body = PHX_RS_MARK.to_vec();
    for field in [
        Term::atom("except"),
        Term::atom(node),
        Term::binary(topic),
        broadcast,
        Term::atom(CHANNEL_SERVER),
    ] {
        etf::write_term(&mut body, &field);
    }
    Ok(etf::compress(&body, level))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Made by `tests/data/phoenix-pubsub-vectors.escript` with real OTP 25
    /// `term_to_binary` (minor versions 1 and 2, compressed and not).
    const VECTORS: &str = include_str!("../../../tests/data/phoenix-pubsub-vectors.json");

    /// The name the vectors' `:only` message is addressed to.
    const THIS_NODE: &str = "phx_rs@10.0.0.8";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn vectors() -> (String, Vec<Value>) {
        let vectors: Value = serde_json::from_str(VECTORS).unwrap();
        let sender = vectors["sender_node"].as_str().unwrap().to_owned();
        let cases = vectors["cases"].as_array().unwrap().clone();
        assert_eq!(cases.len(), 58, "every vector is here");
        (sender, cases)
    }

    fn read_as(case: &Value, node: &str) -> Read {
        read(
            &hex(case["etf_hex"].as_str().unwrap()),
            node,
            &Limits::default(),
            |_| true,
        )
    }

    #[test]
    fn every_vector_reads_as_phoenix_js_must_receive_it() {
        let (_, cases) = vectors();
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            let expected = &case["expected"];
            match (expected["kind"].as_str().unwrap(), read_as(case, THIS_NODE)) {
                ("json", Read::Deliver(got)) => {
                    assert_eq!(got.topic, case["topic"].as_str().unwrap(), "{name}");
                    assert_eq!(got.event, case["event"].as_str().unwrap(), "{name}");
                    assert_eq!(got.dispatch, Dispatch::Fastlane, "{name}");
                    let Payload::Json(text) = got.payload else {
                        panic!("{name}: not JSON");
                    };
                    let want = expected["payload_json"].as_str().unwrap();
                    let parsed: Value = serde_json::from_str(text.get()).unwrap();
                    assert_eq!(
                        parsed,
                        serde_json::from_str::<Value>(want).unwrap(),
                        "{name}"
                    );
                    // Up to 32 keys Erlang keeps a map in key order, as the vectors are
                    // written: the text is Jason's, byte for byte.
                    if !name.starts_with("large_map") {
                        assert_eq!(text.get(), want, "{name}: Jason's exact text");
                    }
                }
                ("binary", Read::Deliver(got)) => match got.payload {
                    Payload::Binary(data) => {
                        assert_eq!(
                            data.as_ref(),
                            hex(expected["hex"].as_str().unwrap()),
                            "{name}"
                        )
                    }
                    other => panic!("{name}: {other:?}"),
                },
                ("not_encodable", Read::Ignored(Ignored::NotEncodable, detail)) => {
                    assert!(!detail.is_empty(), "{name}");
                }
                ("ignore", Read::Ignored(Ignored::NotABroadcast, _)) => {}
                (kind, other) => panic!("{name}: expected {kind}, read {other:?}"),
            }
        }
    }

    #[test]
    fn only_messages_for_another_node_and_our_own_name_are_ignored() {
        let (sender, cases) = vectors();
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            if case["target_node"].is_string() {
                // `:only` for phx_rs@10.0.0.8: another node drops it.
                assert!(
                    matches!(
                        read_as(case, "phx_rs@10.0.0.9"),
                        Read::Ignored(Ignored::OtherNode, _)
                    ),
                    "{name}"
                );
            } else {
                // `:except` from a node with this node's name: Phoenix drops it too.
                assert!(
                    matches!(
                        read_as(case, &sender),
                        Read::Ignored(Ignored::SameNodeName, _)
                    ),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn the_payload_is_converted_only_for_topics_with_subscribers() {
        let (_, cases) = vectors();
        let case = &cases[0];
        let mut asked = None;
        let read = read(
            &hex(case["etf_hex"].as_str().unwrap()),
            THIS_NODE,
            &Limits::default(),
            |topic| {
                asked = Some(topic.to_owned());
                false
            },
        );
        assert!(matches!(read, Read::NoSubscribers), "{read:?}");
        assert_eq!(asked.as_deref(), case["topic"].as_str());
    }

    #[test]
    fn node_names_compare_as_text_whether_atom_or_binary() {
        // {3, only, <<"phx_rs@10.0.0.8">>, ...}: the target as a binary.
        let message = Term::Tuple(vec![
            Term::Int(3),
            Term::atom("only"),
            Term::binary(THIS_NODE),
            Term::binary("room:1"),
            Term::Map(vec![
                (Term::atom("__struct__"), Term::atom(BROADCAST)),
                (Term::atom("event"), Term::binary("e")),
                (Term::atom("payload"), Term::Map(vec![])),
                (Term::atom("topic"), Term::binary("room:1")),
            ]),
            Term::atom(CHANNEL_SERVER),
        ]);
        let bytes = etf::encode(&message);
        assert!(matches!(
            read(&bytes, THIS_NODE, &Limits::default(), |_| true),
            Read::Deliver(_)
        ));
        assert!(matches!(
            read(&bytes, "other@host", &Limits::default(), |_| true),
            Read::Ignored(Ignored::OtherNode, _)
        ));
    }

    #[test]
    fn dispatchers_other_than_the_fastlane() {
        let message = |dispatcher: &str| {
            etf::encode(&Term::Tuple(vec![
                Term::Int(3),
                Term::atom("except"),
                Term::atom("phx_app@h"),
                Term::binary("room:1"),
                Term::Map(vec![
                    (Term::atom("__struct__"), Term::atom(BROADCAST)),
                    (Term::atom("event"), Term::binary("e")),
                    (Term::atom("payload"), Term::List(vec![Term::Int(1)])),
                    (Term::atom("topic"), Term::binary("room:1")),
                ]),
                Term::atom(dispatcher),
            ]))
        };
        // Phoenix.PubSub: every channel's handle_out, any JSON payload.
        match read(&message(PUBSUB), THIS_NODE, &Limits::default(), |_| true) {
            Read::Deliver(got) => {
                assert_eq!(got.dispatch, Dispatch::HandleOut);
                assert_eq!(got.payload.as_json(), Some("[1]"));
            }
            other => panic!("{other:?}"),
        }
        // The fastlane refuses a payload that is not a map, as Phoenix raises.
        assert!(matches!(
            read(
                &message(CHANNEL_SERVER),
                THIS_NODE,
                &Limits::default(),
                |_| true
            ),
            Read::Ignored(Ignored::NotEncodable, _)
        ));
        // A custom dispatcher's dispatch/3 is Elixir code.
        assert!(matches!(
            read(
                &message("Elixir.MyApp.Dispatcher"),
                THIS_NODE,
                &Limits::default(),
                |_| true
            ),
            Read::Ignored(Ignored::Dispatcher, _)
        ));
    }

    #[test]
    fn each_ignored_kind_is_its_own_index_and_label() {
        for (at, kind) in Ignored::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, at);
        }
        let labels: std::collections::HashSet<_> = Ignored::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), Ignored::ALL.len());
    }

    #[test]
    fn garbage_and_oversized_messages_are_ignored_not_fatal() {
        let limits = Limits { max_bytes: 64 };
        for (bytes, kind) in [
            (b"not a term".to_vec(), Ignored::Undecodable),
            (vec![131], Ignored::Undecodable),
            (etf::encode(&Term::Int(3)), Ignored::Version),
            (
                etf::encode(&Term::Tuple(vec![Term::Int(2); 6])),
                Ignored::Version,
            ),
            (etf::encode(&Term::Binary(vec![0; 100])), Ignored::TooLarge),
        ] {
            match read(&bytes, THIS_NODE, &limits, |_| true) {
                Read::Ignored(got, _) => assert_eq!(got, kind, "{bytes:?}"),
                other => panic!("{other:?}"),
            }
        }
        // Every prefix of every vector: ignored (or, for whole ones, read), never a panic.
        let (_, cases) = vectors();
        for case in &cases {
            let bytes = hex(case["etf_hex"].as_str().unwrap());
            for len in 0..bytes.len() {
                let _ = read(&bytes[..len], THIS_NODE, &Limits::default(), |_| true);
            }
        }
    }

    #[test]
    fn what_this_node_writes_reads_back_and_is_recognised_as_its_own() {
        let raw = RawValue::from_string(r#"{"b":[1,2.5,null,true],"a":"x"}"#.to_owned()).unwrap();
        for level in [0, 6] {
            let bytes = write(
                THIS_NODE,
                "room:1",
                "new_msg",
                PayloadRef::Json(&raw),
                level,
            )
            .unwrap();
            let body = etf::body(&bytes, &Limits::default()).unwrap();
            assert!(body.starts_with(&PHX_RS_MARK), "level {level}");
            // Other phx-rs nodes skip it: they have it in their own envelope.
            assert!(matches!(
                read(&bytes, "someone@else", &Limits::default(), |_| true),
                Read::FromPhxRs
            ));
            // What a Phoenix node's binary_to_term sees.
            let term = etf::decode_body(&body, &Limits::default()).unwrap();
            let Term::Tuple(fields) = term else { panic!() };
            assert_eq!(fields[0], Term::Int(3));
            assert_eq!(fields[1], Term::atom("except"));
            assert_eq!(fields[2], Term::atom(THIS_NODE));
            assert_eq!(fields[5], Term::atom(CHANNEL_SERVER));
            let (event, topic, payload) = broadcast_fields(&fields[4]).unwrap();
            assert_eq!((event, topic), (&b"new_msg"[..], &b"room:1"[..]));
            assert_eq!(
                payload,
                &Term::Map(vec![
                    (Term::binary("a"), Term::binary("x")),
                    (
                        Term::binary("b"),
                        Term::List(vec![
                            Term::Int(1),
                            Term::Float(2.5),
                            Term::atom("nil"),
                            Term::atom("true")
                        ])
                    ),
                ])
            );
        }
        let bytes = write(THIS_NODE, "t", "bin", PayloadRef::Binary(&[0, 255]), 0).unwrap();
        let term = etf::decode(&bytes).unwrap();
        let Term::Tuple(fields) = term else { panic!() };
        let (_, _, payload) = broadcast_fields(&fields[4]).unwrap();
        assert_eq!(
            payload,
            &Term::Tuple(vec![Term::atom("binary"), Term::Binary(vec![0, 255])])
        );
    }
}
