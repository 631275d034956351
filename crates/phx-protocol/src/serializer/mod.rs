//! Serializers (§1.3, §2.2–§2.4): `vsn` negotiation, decoding client frames and
//! encoding server frames.

mod binary;
mod v1;
mod v2;

use crate::message::{Message, Outbound};

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
    /// `join_ref`/`ref` of a shape Phoenix cannot echo (an array or object).
    #[error("{0} is not a scalar")]
    InvalidRef(&'static str),
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
    pub fn from_vsn(vsn: Option<&str>) -> Result<Self, VsnError> {
        let Some(vsn) = vsn else { return Ok(Self::V1) };
        match parse_semver(vsn) {
            Some((1, 0)) => Ok(Self::V1),
            Some((2, 0)) => Ok(Self::V2),
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

    /// Decodes a binary frame (V2 kind 0 only, §2.4).
    pub fn decode_binary(self, frame: &[u8]) -> Result<Message, DecodeError> {
        match self {
            Self::V1 => Err(DecodeError::BinaryNotSupported),
            Self::V2 => binary::decode(frame),
        }
    }

    /// Appends the encoding of `msg` to `out` and says whether it is a text or binary frame.
    /// On error `out` is left as it was.
    pub fn encode(self, msg: &Outbound<'_>, out: &mut Vec<u8>) -> Result<FrameKind, EncodeError> {
        let start = out.len();
        let result = match (self, msg.is_binary()) {
            (Self::V1, false) => v1::encode(msg, out).map(|()| FrameKind::Text),
            (Self::V1, true) => Err(EncodeError::BinaryNotSupported),
            (Self::V2, false) => v2::encode(msg, out).map(|()| FrameKind::Text),
            (Self::V2, true) => binary::encode(msg, out).map(|()| FrameKind::Binary),
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

/// `MAJOR.MINOR` of a semantic version `MAJOR.MINOR.PATCH[-pre][+build]`, as Elixir's
/// `Version.parse/1` accepts it (no leading zeros, all three parts required).
fn parse_semver(vsn: &str) -> Option<(u64, u64)> {
    let core = vsn.split(['+', '-']).next()?;
    if vsn.len() > core.len() {
        // Pre-release / build identifiers must be non-empty dot-separated alphanumerics.
        let rest = &vsn[core.len() + 1..];
        let valid = !rest.is_empty()
            && rest
                .split(['.', '+', '-'])
                .all(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()));
        if !valid {
            return None;
        }
    }
    let mut parts = core.split('.');
    let mut number = || -> Option<u64> {
        let part = parts.next()?;
        let plain = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !plain || (part.len() > 1 && part.starts_with('0')) {
            return None;
        }
        part.parse().ok()
    };
    let (major, minor, _patch) = (number()?, number()?, number()?);
    parts.next().is_none().then_some((major, minor))
}

/// Appends `s` as a JSON string literal.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("string serializes");
}

/// Appends a `join_ref`/`ref` as JSON (`null` for none).
fn write_ref(out: &mut Vec<u8>, r: Option<&crate::message::Ref>) {
    match r {
        Some(r) => r.write_json(out),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `{"response":R,"status":S}` for a JSON response.
fn write_reply_payload(out: &mut Vec<u8>, status: &str, response: &serde_json::value::RawValue) {
    out.extend_from_slice(br#"{"response":"#);
    out.extend_from_slice(response.get().as_bytes());
    out.extend_from_slice(br#","status":"#);
    write_str(out, status);
    out.push(b'}');
}

/// Interprets a decoded `join_ref`/`ref` JSON value.
fn decode_ref(
    raw: Option<&serde_json::value::RawValue>,
    field: &'static str,
) -> Result<Option<crate::message::Ref>, DecodeError> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.get().trim();
    match text.as_bytes().first() {
        None => Ok(None),
        Some(b'n') if text == "null" => Ok(None),
        Some(b'"') => {
            let s: String =
                serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
            Ok(Some(crate::message::Ref::from(s)))
        }
        Some(b'[') | Some(b'{') => Err(DecodeError::InvalidRef(field)),
        Some(_) => Ok(Some(crate::message::Ref::from_json_text(text))),
    }
}

/// Interprets a decoded `topic`/`event` JSON value.
fn decode_string(
    raw: &serde_json::value::RawValue,
    field: &'static str,
) -> Result<String, DecodeError> {
    if !raw.get().trim_start().starts_with('"') {
        return Err(DecodeError::NotAString(field));
    }
    serde_json::from_str(raw.get()).map_err(|e| DecodeError::InvalidJson(e.to_string()))
}

#[cfg(test)]
mod tests;
