//! Serializers (§1.3, §2.2–§2.4): `vsn` negotiation, decoding client frames and
//! encoding server frames.

mod binary;
mod v1;
mod v2;
mod vsn;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::message::{Message, Outbound, Ref};

/// The serializer a socket speaks, chosen by the `vsn` connect param (§1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// `~> 1.0.0`: one JSON object per text frame, text only (§2.2).
    V1,
    /// `~> 2.0.0`: JSON arrays in text frames plus binary frames (§2.3, §2.4).
    V2,
}

/// Whether an encoded frame goes out as a WebSocket text or binary frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Text (JSON).
    Text,
    /// Binary (§2.4).
    Binary,
}

/// A `vsn` that selects no serializer: the connection is refused (§1.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported serializer vsn {0:?}")]
pub struct VsnError(pub String);

/// Why a client frame could not be decoded. Phoenix crashes the transport on all of
/// these (close 1011, §2.6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text is not valid JSON (or not UTF-8).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// V2 text frame that is not a JSON array.
    #[error("V2 frame is not a JSON array")]
    NotAnArray,
    /// V2 array with fewer than five elements.
    #[error("V2 frame has {0} elements, needs 5")]
    TooFewElements(usize),
    /// V1 frame that is not a JSON object.
    #[error("V1 frame is not a JSON object")]
    NotAnObject,
    /// V1 object without a required key.
    #[error("V1 frame lacks key {0:?}")]
    MissingKey(&'static str),
    /// `topic` or `event` that is not a string.
    #[error("{0} is not a string")]
    NotAString(&'static str),
    /// A binary frame on a V1 socket.
    #[error("binary frames need serializer 2.0.0")]
    BinaryNotSupported,
    /// A binary frame whose kind byte is not 0 (the only kind clients send).
    #[error("unknown binary frame kind {0}")]
    UnknownBinaryKind(u8),
    /// A binary frame shorter than its header says, or empty.
    #[error("truncated binary frame")]
    Truncated,
    /// A binary frame header string that is not UTF-8.
    #[error("binary frame field {0} is not UTF-8")]
    InvalidUtf8(&'static str),
}

/// Why a server message could not be encoded. Never truncate (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A binary-frame header field over 255 bytes.
    #[error("unable to convert {0} to binary: must be less than or equal to 255 bytes")]
    FieldTooLong(&'static str),
    /// A binary payload on a V1 socket.
    #[error("binary payloads need serializer 2.0.0")]
    BinaryNotSupported,
}

impl Serializer {
    /// Chooses the serializer for a `vsn` connect param; absent means `1.0.0` (§1.3).
    /// `1.0.x` → V1, `2.0.x` → V2, anything else (including non-semver) → error.
    ///
    /// This is Phoenix's `Version.match?(vsn, "~> 1.0.0")` / `"~> 2.0.0"`, so a
    /// pre-release of a later patch matches (`2.0.1-rc.1` → V2) but a pre-release of
    /// `x.0.0` itself does not (`2.0.0-rc.1` sorts below `2.0.0`).
    ///
    /// ```
    /// use phx_protocol::Serializer;
    /// assert_eq!(Serializer::from_vsn(None), Ok(Serializer::V1));
    /// assert_eq!(Serializer::from_vsn(Some("2.0.0")), Ok(Serializer::V2));
    /// assert!(Serializer::from_vsn(Some("2.1.0")).is_err());
    /// ```
    pub fn from_vsn(vsn: Option<&str>) -> Result<Self, VsnError> {
        let Some(vsn) = vsn else { return Ok(Self::V1) };
        match vsn::select(vsn) {
            Some(1) => Ok(Self::V1),
            Some(2) => Ok(Self::V2),
            _ => Err(VsnError(vsn.to_owned())),
        }
    }

    /// Decodes a text frame.
    pub fn decode_text(self, text: &[u8]) -> Result<Message, DecodeError> {
        match self {
            Self::V1 => v1::decode(text),
            Self::V2 => v2::decode(text),
        }
    }

    /// Decodes a binary frame (V2 kind 0 only, §2.4). The payload is copied out of
    /// `frame`; [`Serializer::decode_binary_bytes`] shares it instead.
    pub fn decode_binary(self, frame: &[u8]) -> Result<Message, DecodeError> {
        match self {
            Self::V1 => Err(DecodeError::BinaryNotSupported),
            Self::V2 => binary::decode(frame, Bytes::copy_from_slice),
        }
    }

    /// Like [`Serializer::decode_binary`], but the payload is a slice of `frame` (no copy).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use phx_protocol::{Payload, Serializer};
    /// let frame = Bytes::from_static(b"\x00\x01\x01\x01\x01357e\x01\x02");
    /// let msg = Serializer::V2.decode_binary_bytes(&frame).unwrap();
    /// assert_eq!((msg.topic.as_str(), msg.event.as_str()), ("7", "e"));
    /// assert!(matches!(msg.payload, Payload::Binary(b) if b[..] == [1, 2]));
    /// ```
    pub fn decode_binary_bytes(self, frame: &Bytes) -> Result<Message, DecodeError> {
        match self {
            Self::V1 => Err(DecodeError::BinaryNotSupported),
            Self::V2 => binary::decode(frame, |payload| frame.slice_ref(payload)),
        }
    }

    /// Appends the encoding of `msg` to `out` and says whether it is a text or binary frame.
    /// On error `out` is left as it was.
    ///
    /// JSON payloads are copied as they are (never re-serialized); strings are escaped
    /// as JSON. Nothing is allocated besides growing `out`.
    pub fn encode(self, msg: &Outbound<'_>, out: &mut Vec<u8>) -> Result<FrameKind, EncodeError> {
        self.encode_with(msg, out, PayloadBytes::Written)
            .map(|(kind, _)| kind)
    }

    /// Writes the frame of `msg` around its payload: everything before the payload (or a
    /// reply's response) is appended to `head`, everything after it to `tail`, so that
    /// `head`, the payload's bytes and `tail` in a row are exactly what
    /// [`Serializer::encode`] writes. On error both are left as they were.
    ///
    /// This lets a payload that many frames carry (the presence list every client
    /// joining during a storm receives) be written from its own shared buffer, between
    /// each frame's own head and tail, with one vectored write, instead of being copied
    /// into every frame.
    ///
    /// ```
    /// use phx_protocol::{Outbound, PayloadRef, Ref, Serializer};
    /// let list = serde_json::value::RawValue::from_string(r#"{"u1":{"metas":[]}}"#.into()).unwrap();
    /// let join_ref = Ref::from("7");
    /// let msg = Outbound::Message {
    ///     join_ref: Some(&join_ref),
    ///     r#ref: None,
    ///     topic: "room:1",
    ///     event: "presence_state",
    ///     payload: PayloadRef::Json(&list),
    /// };
    /// let (mut head, mut tail) = (Vec::new(), Vec::new());
    /// Serializer::V2.encode_around(&msg, &mut head, &mut tail).unwrap();
    /// assert_eq!(head, br#"["7",null,"room:1","presence_state","#);
    /// assert_eq!(tail, b"]");
    /// let mut whole = Vec::new();
    /// Serializer::V2.encode(&msg, &mut whole).unwrap();
    /// assert_eq!([&head[..], list.get().as_bytes(), &tail[..]].concat(), whole);
    /// ```
    pub fn encode_around(
        self,
        msg: &Outbound<'_>,
        head: &mut Vec<u8>,
        tail: &mut Vec<u8>,
    ) -> Result<FrameKind, EncodeError> {
        let (kind, at) = self.encode_with(msg, head, PayloadBytes::Left)?;
        tail.extend_from_slice(&head[at..]);
        head.truncate(at);
        Ok(kind)
    }

    /// Encodes `msg` into `out`, the payload's bytes written or left out; returns the
    /// frame kind and where the payload's bytes start (or would).
    fn encode_with(
        self,
        msg: &Outbound<'_>,
        out: &mut Vec<u8>,
        bytes: PayloadBytes,
    ) -> Result<(FrameKind, usize), EncodeError> {
        let start = out.len();
        let result = match (self, msg.is_binary()) {
            (Self::V1, false) => v1::encode(msg, out, bytes).map(|at| (FrameKind::Text, at)),
            (Self::V1, true) => Err(EncodeError::BinaryNotSupported),
            (Self::V2, false) => v2::encode(msg, out, bytes).map(|at| (FrameKind::Text, at)),
            (Self::V2, true) => binary::encode(msg, out, bytes).map(|at| (FrameKind::Binary, at)),
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

/// Whether an encoder writes the payload's bytes ([`Serializer::encode`]) or leaves
/// them out, only saying where they belong ([`Serializer::encode_around`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PayloadBytes {
    Written,
    Left,
}

/// Appends the payload's `data` unless it is left out; returns where it starts (or would).
fn put_payload(out: &mut Vec<u8>, data: &[u8], bytes: PayloadBytes) -> usize {
    let at = out.len();
    if bytes == PayloadBytes::Written {
        out.extend_from_slice(data);
    }
    at
}

/// Appends `s` as a JSON string literal.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    // Invariant: serializing a `&str` into a `Vec` has no failure case (no I/O error, no
    // non-string key), so the error branch is unreachable.
    serde_json::to_writer(&mut *out, s).expect("a str serializes into a Vec");
}

/// Appends a `join_ref`/`ref` as JSON (`null` for none).
fn write_ref(out: &mut Vec<u8>, r: Option<&Ref>) {
    match r {
        Some(r) => r.write_json(out),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `{"response":R,"status":S}` for a JSON response (Jason's key order, §2.1);
/// returns where the response's text starts (see [`put_payload`]).
fn write_reply_payload(
    out: &mut Vec<u8>,
    status: &str,
    response: &RawValue,
    bytes: PayloadBytes,
) -> usize {
    out.extend_from_slice(br#"{"response":"#);
    let at = put_payload(out, response.get().as_bytes(), bytes);
    out.extend_from_slice(br#","status":"#);
    write_str(out, status);
    out.push(b'}');
    at
}

/// The frame as UTF-8 text.
fn utf8(text: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))
}

/// A JSON syntax error, with serde_json's description of where.
fn invalid_json(e: serde_json::Error) -> DecodeError {
    DecodeError::InvalidJson(e.to_string())
}

/// The first byte of the JSON value in `text` (after JSON whitespace), to tell a wrong
/// shape (`NotAnArray`/`NotAnObject`) from invalid JSON before parsing.
fn first_byte(text: &str) -> Option<u8> {
    text.bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The error for a frame whose top-level value has the wrong shape: `shape_error`, unless
/// the frame is not JSON at all.
fn wrong_shape(text: &str, shape_error: DecodeError) -> DecodeError {
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => shape_error,
        Err(e) => invalid_json(e),
    }
}

/// Interprets a `join_ref`/`ref` JSON value: `null` → `None`, a string → its unescaped
/// text, any other value (number, boolean, array, object) → its JSON text, echoed as is.
/// Phoenix keeps whatever term the JSON decoded to and echoes it (§2.1).
fn decode_ref(raw: Option<&RawValue>) -> Result<Option<Ref>, DecodeError> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.get();
    match text.as_bytes().first() {
        None => Ok(None),
        Some(b'n') if text == "null" => Ok(None),
        Some(b'"') => {
            let s: String = serde_json::from_str(text).map_err(invalid_json)?;
            Ok(Some(Ref::from(s)))
        }
        Some(_) => Ok(Some(Ref::from_json_text(text))),
    }
}

/// Interprets a `topic`/`event` JSON value, which must be a string.
fn decode_string(raw: &RawValue, field: &'static str) -> Result<String, DecodeError> {
    if !raw.get().starts_with('"') {
        return Err(DecodeError::NotAString(field));
    }
    serde_json::from_str(raw.get()).map_err(invalid_json)
}

#[cfg(test)]
mod tests;
