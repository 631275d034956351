//! The envelope between nodes: compact, versioned, binary.
//!
//! Every message starts with a version byte and a kind byte, then the sending node's id
//! (so a node drops its own messages, which an engine like Redis echoes back), then the
//! kind's fields. Strings and byte blocks are length-prefixed; integers are big-endian.
//! A payload travels as it is, JSON text or binary bytes, never re-encoded inside
//! another format.
//!
//! ```text
//! broadcast: 1 | 1 | node:u64 | topic:str16 | event:str16 | payload_kind:u8 | payload:rest
//! ```
//!
//! Presence messages (kinds 2–5) are built with the same [`Writer`] and [`Reader`] by
//! the presence module.

use bytes::{BufMut, Bytes, BytesMut};
use phx_protocol::{Payload, PayloadRef};
use serde_json::value::RawValue;

/// The envelope version this node writes and reads.
pub(crate) const VERSION: u8 = 1;

/// Message kinds.
pub(crate) mod kind {
    pub(crate) const BROADCAST: u8 = 1;
    pub(crate) const PRESENCE_HEARTBEAT: u8 = 2;
    pub(crate) const PRESENCE_DELTA: u8 = 3;
    pub(crate) const PRESENCE_STATE_REQUEST: u8 = 4;
    pub(crate) const PRESENCE_STATE: u8 = 5;
}

const PAYLOAD_JSON: u8 = 0;
const PAYLOAD_BINARY: u8 = 1;

/// Why a message from another node was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    #[error("envelope version {0} (this node speaks {VERSION})")]
    Version(u8),
    #[error("message truncated")]
    Truncated,
    #[error("text field is not UTF-8")]
    NotUtf8,
    #[error("payload is not JSON")]
    NotJson,
    #[error("unknown message kind {0}")]
    Kind(u8),
}

/// Builds one message.
#[derive(Debug)]
pub(crate) struct Writer {
    buf: BytesMut,
}

impl Writer {
    pub(crate) fn new(kind: u8, node: u64) -> Self {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_u8(VERSION);
        buf.put_u8(kind);
        buf.put_u64(node);
        Self { buf }
    }
    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.buf.put_u8(value);
        self
    }
    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.buf.put_u64(value);
        self
    }
    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.buf.put_u32(value);
        self
    }
    /// A string of at most 65 535 bytes (topics, events, keys, refs); longer ones are
    /// cut at a character boundary, which no real topic reaches.
    pub(crate) fn str16(&mut self, text: &str) -> &mut Self {
        let mut end = text.len().min(usize::from(u16::MAX));
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // `end` ≤ u16::MAX by construction.
        self.buf.put_u16(end as u16);
        self.buf.put_slice(&text.as_bytes()[..end]);
        self
    }
    /// A block of any length (JSON metas).
    pub(crate) fn bytes32(&mut self, data: &[u8]) -> &mut Self {
        self.buf
            .put_u32(u32::try_from(data.len()).unwrap_or(u32::MAX));
        self.buf
            .put_slice(&data[..data.len().min(u32::MAX as usize)]);
        self
    }
    /// A payload as the last field: its kind, then its bytes to the end.
    pub(crate) fn payload(&mut self, payload: PayloadRef<'_>) -> &mut Self {
        match payload {
            PayloadRef::Json(raw) => {
                self.buf.put_u8(PAYLOAD_JSON);
                self.buf.put_slice(raw.get().as_bytes());
            }
            PayloadRef::Binary(bytes) => {
                self.buf.put_u8(PAYLOAD_BINARY);
                self.buf.put_slice(bytes);
            }
        }
        self
    }
    pub(crate) fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Reads one message.
#[derive(Debug)]
pub(crate) struct Reader {
    data: Bytes,
    at: usize,
}

impl Reader {
    /// Checks the version and returns the reader with the kind and sending node.
    pub(crate) fn open(data: Bytes) -> Result<(Self, u8, u64), WireError> {
        let mut reader = Self { data, at: 0 };
        let version = reader.u8()?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let kind = reader.u8()?;
        let node = reader.u64()?;
        Ok((reader, kind, node))
    }
    fn take(&mut self, len: usize) -> Result<&[u8], WireError> {
        let end = self.at.checked_add(len).ok_or(WireError::Truncated)?;
        let slice = self.data.get(self.at..end).ok_or(WireError::Truncated)?;
        self.at = end;
        Ok(slice)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(out))
    }
    pub(crate) fn str16(&mut self) -> Result<String, WireError> {
        let len = self.take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let text = self.take(len)?;
        String::from_utf8(text.to_vec()).map_err(|_| WireError::NotUtf8)
    }
    pub(crate) fn bytes32(&mut self) -> Result<Bytes, WireError> {
        let len = self.u32()? as usize;
        let start = self.at;
        self.take(len)?;
        Ok(self.data.slice(start..start + len))
    }
    /// The payload to the end of the message.
    pub(crate) fn payload(&mut self) -> Result<Payload, WireError> {
        let kind = self.u8()?;
        let rest = self.data.slice(self.at..);
        self.at = self.data.len();
        match kind {
            PAYLOAD_JSON => {
                let text = String::from_utf8(rest.to_vec()).map_err(|_| WireError::NotUtf8)?;
                RawValue::from_string(text)
                    .map(Payload::from)
                    .map_err(|_| WireError::NotJson)
            }
            PAYLOAD_BINARY => Ok(Payload::Binary(rest)),
            other => Err(WireError::Kind(other)),
        }
    }
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }
}

/// A broadcast as it travels between nodes.
#[derive(Debug)]
pub(crate) struct RemoteBroadcast {
    pub(crate) node: u64,
    pub(crate) topic: String,
    pub(crate) event: String,
    pub(crate) payload: Payload,
}

pub(crate) fn encode_broadcast(
    node: u64,
    topic: &str,
    event: &str,
    payload: PayloadRef<'_>,
) -> Bytes {
    let mut writer = Writer::new(kind::BROADCAST, node);
    writer.str16(topic).str16(event).payload(payload);
    writer.finish()
}

pub(crate) fn decode_broadcast(data: Bytes) -> Result<RemoteBroadcast, WireError> {
    let (mut reader, kind, node) = Reader::open(data)?;
    if kind != kind::BROADCAST {
        return Err(WireError::Kind(kind));
    }
    Ok(RemoteBroadcast {
        node,
        topic: reader.str16()?,
        event: reader.str16()?,
        payload: reader.payload()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_round_trips_with_json_and_binary_payloads() {
        let raw = RawValue::from_string(r#"{"body":"hé"}"#.to_owned()).unwrap();
        let data = encode_broadcast(7, "room:1", "new_msg", PayloadRef::Json(&raw));
        let decoded = decode_broadcast(data).unwrap();
        assert_eq!(
            (decoded.node, decoded.topic.as_str(), decoded.event.as_str()),
            (7, "room:1", "new_msg")
        );
        assert_eq!(decoded.payload.as_json(), Some(r#"{"body":"hé"}"#));

        let data = encode_broadcast(7, "t", "bin", PayloadRef::Binary(&[0, 255, 3]));
        match decode_broadcast(data).unwrap().payload {
            Payload::Binary(bytes) => assert_eq!(&bytes[..], &[0, 255, 3]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_over_long_topic_is_cut_at_a_character_boundary() {
        // "é" takes bytes 65 534..65 536: the cut at 65 535 would split it.
        let topic = format!("{}ézz", "a".repeat(65_534));
        let raw = RawValue::from_string("{}".to_owned()).unwrap();
        let data = encode_broadcast(1, &topic, "e", PayloadRef::Json(&raw));
        let decoded = decode_broadcast(data).unwrap();
        assert_eq!(decoded.topic, "a".repeat(65_534));
        assert_eq!(decoded.event, "e", "the fields after it are intact");
    }

    #[test]
    fn the_envelope_is_versioned_and_compact() {
        let raw = RawValue::from_string("{}".to_owned()).unwrap();
        let data = encode_broadcast(1, "t", "e", PayloadRef::Json(&raw));
        assert_eq!(data[0], VERSION);
        // version, kind, node, two length-prefixed one-byte strings, payload kind, {}
        assert_eq!(data.len(), 1 + 1 + 8 + 3 + 3 + 1 + 2);
        let mut future = data.to_vec();
        future[0] = VERSION + 1;
        assert_eq!(
            decode_broadcast(Bytes::from(future)).unwrap_err(),
            WireError::Version(VERSION + 1)
        );
    }

    #[test]
    fn truncated_or_garbled_messages_are_errors_not_panics() {
        let raw = RawValue::from_string(r#"{"a":1}"#.to_owned()).unwrap();
        let data = encode_broadcast(9, "topic", "event", PayloadRef::Json(&raw));
        for len in 0..data.len() - 1 {
            assert!(decode_broadcast(data.slice(..len)).is_err(), "prefix {len}");
        }
        let mut bad = data.to_vec();
        let last = bad.len() - 1;
        bad[last] = b'x';
        assert_eq!(
            decode_broadcast(Bytes::from(bad)).unwrap_err(),
            WireError::NotJson
        );
    }
}
