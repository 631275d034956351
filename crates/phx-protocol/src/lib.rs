//! The Phoenix Channels wire protocol, sans IO.
//!
//! This crate holds the message model, the serializers (V1 JSON object, V2 JSON array,
//! V2 binary frames), reply encoding, the reserved event names and presence payloads.
//! It contains no networking code, no async runtime and no clock: frames go in as bytes,
//! messages come out, and the reverse. `phx-server` drives it.
//!
//! Section numbers (§) refer to `docs/protocol.md` in the repository.
//!
//! ```
//! use phx_protocol::{Serializer, Outbound, PayloadRef, Ref};
//! let msg = Serializer::V2.decode_text(br#"["3","3","room:lobby","phx_join",{}]"#).unwrap();
//! assert_eq!(msg.topic, "room:lobby");
//! let mut out = Vec::new();
//! let reply = Outbound::Reply {
//!     join_ref: msg.join_ref.as_ref(),
//!     r#ref: msg.r#ref.as_ref(),
//!     topic: &msg.topic,
//!     status: "ok",
//!     response: PayloadRef::empty_object(),
//! };
//! Serializer::V2.encode(&reply, &mut out).unwrap();
//! assert_eq!(out, br#"["3","3","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod event;
pub mod message;
pub mod presence;
pub mod serializer;

pub use message::{JsonText, Message, Outbound, Payload, PayloadRef, Ref};

/// The crate README's example, compiled as a doctest so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
pub use serializer::{DecodeError, EncodeError, FrameKind, Serializer, VsnError};
