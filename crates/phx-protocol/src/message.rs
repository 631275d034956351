//! The message model (§2.1).

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;

/// A `join_ref` or `ref` as the client sent it.
///
/// phoenix.js sends decimal strings; Phoenix echoes whatever JSON value it decoded (a
/// number stays a number, an object stays an object), so every non-string value is kept
/// as its JSON text and written back byte for byte. Equality is strict, like Elixir's
/// pattern match on a join_ref: `Ref::from("3") != ` the number `3`, and two objects are
/// equal when their texts are (a client echoes its own refs, so their texts agree).
///
/// ```
/// use phx_protocol::{Ref, Serializer};
/// let m = Serializer::V2.decode_text(br#"[{"tab":1},[7,"x"],"t","e",{}]"#).unwrap();
/// assert_eq!(m.join_ref, Some(Ref::from_json_text(r#"{"tab":1}"#)));
/// assert_eq!(m.r#ref, Some(Ref::from_json_text(r#"[7,"x"]"#)));
/// assert_ne!(Ref::from("3"), Ref::from_json_text("3"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ref(RefRepr);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum RefRepr {
    /// A JSON string, unescaped.
    Str(Box<str>),
    /// Any other non-null JSON value (number, boolean, array, object), as its JSON text.
    Json(Box<str>),
}

impl Ref {
    /// The ref as a string, if the client sent a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            RefRepr::Str(s) => Some(s),
            RefRepr::Json(_) => None,
        }
    }
    /// A ref holding the raw JSON text of a non-string value (e.g. `42` or `{"a":1}`).
    pub fn from_json_text(json: &str) -> Self {
        Self(RefRepr::Json(json.into()))
    }
    /// Appends the ref as JSON (a string literal or the raw value).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match &self.0 {
            RefRepr::Str(s) => crate::serializer::write_str(out, s),
            RefRepr::Json(raw) => out.extend_from_slice(raw.as_bytes()),
        }
    }
    /// The bytes written for this ref in a binary frame header (§2.4): the string itself,
    /// or the JSON text of a non-string ref. (Phoenix writes `to_string(ref)` there, the
    /// same text for integers; for an object ref it raises, where this writes the JSON.)
    pub fn binary_field(&self) -> &str {
        match &self.0 {
            RefRepr::Str(s) | RefRepr::Json(s) => s,
        }
    }
}

impl From<&str> for Ref {
    fn from(s: &str) -> Self {
        Self(RefRepr::Str(s.into()))
    }
}

impl From<String> for Ref {
    fn from(s: String) -> Self {
        Self(RefRepr::Str(s.into_boxed_str()))
    }
}

/// A message payload: a JSON value (kept as raw text, never re-parsed on the way
/// through) or binary bytes (V2 binary frames, §2.4).
///
/// Whatever a channel sends or replies converts into one:
///
/// ```
/// use phx_protocol::Payload;
/// use serde_json::json;
///
/// let from_value: Payload = json!({"body": "hi"}).into(); // a JSON object
/// let from_bytes: Payload = vec![1u8, 2, 3].into();        // a binary frame
/// #[derive(serde::Serialize)]
/// struct Message { id: u64 }
/// let from_struct = Payload::json(&Message { id: 7 });   // any Serialize type
///
/// assert_eq!(from_value.as_json(), Some(r#"{"body":"hi"}"#));
/// assert!(matches!(from_bytes, Payload::Binary(_)));
/// assert_eq!(from_struct.parse::<serde_json::Value>(), Some(json!({"id": 7})));
/// ```
#[derive(Clone, Debug)]
pub enum Payload {
    /// JSON text of the payload (an object in practice).
    Json(JsonText),
    /// The bytes after a binary frame's header.
    Binary(Bytes),
}

impl Payload {
    /// `{}`.
    pub fn empty_object() -> Self {
        Self::Json(PayloadRef::empty_object_raw().to_owned().into())
    }
    /// Serializes a value into a JSON payload.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Msg { body: &'static str }
    /// let payload = phx_protocol::Payload::json(&Msg { body: "hi" });
    /// assert_eq!(payload.as_json(), Some(r#"{"body":"hi"}"#));
    /// ```
    ///
    /// # Panics
    ///
    /// When `T`'s `Serialize` implementation fails, which for ordinary data only happens
    /// with a map whose keys are not strings. Inside a channel callback the panic crashes
    /// that channel (`phx_error`), as `Jason.encode!` raising would crash a Phoenix
    /// channel; use [`Payload::try_json`] to handle the error instead.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        match Self::try_json(value) {
            Ok(payload) => payload,
            Err(error) => panic!("payload does not serialize to JSON: {error}"),
        }
    }
    /// Serializes a value into a JSON payload, returning the serializer's error.
    pub fn try_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(|raw| Self::Json(raw.into()))
    }
    /// The same payload, its JSON text made shareable: clones of the result share one
    /// buffer ([`JsonText::into_shared`]). Binary payloads are shared bytes already.
    pub fn into_shared(self) -> Self {
        match self {
            Self::Json(text) => Self::Json(text.into_shared()),
            binary @ Self::Binary(_) => binary,
        }
    }
    /// The JSON text, for a JSON payload.
    pub fn as_json(&self) -> Option<&str> {
        match self {
            Self::Json(raw) => Some(raw.get()),
            Self::Binary(_) => None,
        }
    }
    /// Borrowed view.
    pub fn as_ref(&self) -> PayloadRef<'_> {
        match self {
            Self::Json(raw) => PayloadRef::Json(raw),
            Self::Binary(bytes) => PayloadRef::Binary(bytes),
        }
    }
    /// Deserializes a JSON payload; `None` for binary payloads or JSON of another shape.
    pub fn parse<'de, T: serde::Deserialize<'de>>(&'de self) -> Option<T> {
        match self {
            Self::Json(raw) => serde_json::from_str(raw.get()).ok(),
            Self::Binary(_) => None,
        }
    }
}

impl From<serde_json::Value> for Payload {
    /// A JSON value always serializes: this cannot fail.
    ///
    /// ```
    /// use phx_protocol::Payload;
    /// let payload = Payload::from(serde_json::json!({"id": 1}));
    /// assert_eq!(payload.as_json(), Some(r#"{"id":1}"#));
    /// ```
    fn from(value: serde_json::Value) -> Self {
        Self::from(&value)
    }
}

impl From<&serde_json::Value> for Payload {
    fn from(value: &serde_json::Value) -> Self {
        // `Value`'s Serialize never fails: its map keys are strings.
        Self::json(value)
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for Payload {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Self {
        Self::from(serde_json::Value::Object(map))
    }
}

impl From<Box<RawValue>> for Payload {
    fn from(raw: Box<RawValue>) -> Self {
        Self::Json(raw.into())
    }
}

impl From<JsonText> for Payload {
    fn from(text: JsonText) -> Self {
        Self::Json(text)
    }
}

/// The JSON text of a [`Payload`]: owned by one message, or one reference-counted
/// buffer shared by many.
///
/// A payload many frames carry at once (the presence list every client joining during
/// a reconnect storm receives, hundreds of KB) is made shared once; each clone then
/// costs a reference count instead of a copy of the text, and a server can write it
/// from its own buffer between each frame's head and tail
/// ([`Serializer::encode_around`](crate::Serializer::encode_around)).
///
/// It dereferences to the [`RawValue`], so it reads like the text it holds:
///
/// ```
/// use phx_protocol::{JsonText, Payload};
/// let raw = serde_json::value::RawValue::from_string(r#"{"a":1}"#.into()).unwrap();
/// let shared = JsonText::from(raw).into_shared();
/// let copy = shared.clone(); // a reference count, not a copy of the text
/// assert!(copy.is_shared());
/// assert_eq!(copy.get(), r#"{"a":1}"#);
/// assert_eq!(&copy.into_bytes()[..], br#"{"a":1}"#);
/// let payload = Payload::Json(shared);
/// assert_eq!(payload.as_json(), Some(r#"{"a":1}"#));
/// ```
#[derive(Clone)]
pub struct JsonText(JsonRepr);

#[derive(Clone)]
enum JsonRepr {
    Owned(Box<RawValue>),
    /// `Arc<Box<_>>` rather than `Arc<RawValue>`: sharing an owned text then allocates
    /// the count only, never a copy of the text.
    Shared(Arc<Box<RawValue>>),
}

impl JsonText {
    /// The same text, shareable: clones of the result share its buffer. Making an owned
    /// text shared allocates the reference count only (the text is not copied).
    pub fn into_shared(self) -> Self {
        match self.0 {
            JsonRepr::Owned(raw) => Self(JsonRepr::Shared(Arc::new(raw))),
            shared @ JsonRepr::Shared(_) => Self(shared),
        }
    }

    /// Whether clones of this text share its buffer.
    pub fn is_shared(&self) -> bool {
        matches!(self.0, JsonRepr::Shared(_))
    }

    /// The text as [`Bytes`], without copying it: an owned text moves into them, a
    /// shared one is shared with them.
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            JsonRepr::Owned(raw) => Bytes::from_owner(TextBytes(raw)),
            JsonRepr::Shared(raw) => Bytes::from_owner(SharedTextBytes(raw)),
        }
    }

    /// The text as an owned [`RawValue`]: moved out of an owned text, copied out of a
    /// shared one (unless this was its last holder).
    pub fn into_raw(self) -> Box<RawValue> {
        match self.0 {
            JsonRepr::Owned(raw) => raw,
            JsonRepr::Shared(raw) => Arc::try_unwrap(raw).unwrap_or_else(|raw| (*raw).clone()),
        }
    }
}

/// An owned text as the owner of [`Bytes`].
struct TextBytes(Box<RawValue>);

impl AsRef<[u8]> for TextBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.get().as_bytes()
    }
}

/// A shared text as the owner of [`Bytes`].
struct SharedTextBytes(Arc<Box<RawValue>>);

impl AsRef<[u8]> for SharedTextBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.get().as_bytes()
    }
}

impl Deref for JsonText {
    type Target = RawValue;

    fn deref(&self) -> &RawValue {
        match &self.0 {
            JsonRepr::Owned(raw) => raw,
            JsonRepr::Shared(raw) => raw,
        }
    }
}

impl AsRef<RawValue> for JsonText {
    fn as_ref(&self) -> &RawValue {
        self
    }
}

impl From<Box<RawValue>> for JsonText {
    /// An owned text.
    fn from(raw: Box<RawValue>) -> Self {
        Self(JsonRepr::Owned(raw))
    }
}

impl std::fmt::Debug for JsonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl std::fmt::Display for JsonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

impl serde::Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl From<Bytes> for Payload {
    /// A binary payload (V2 binary frames, §2.4).
    fn from(bytes: Bytes) -> Self {
        Self::Binary(bytes)
    }
}

impl From<Vec<u8>> for Payload {
    /// A binary payload (V2 binary frames, §2.4).
    fn from(bytes: Vec<u8>) -> Self {
        Self::Binary(Bytes::from(bytes))
    }
}

/// A borrowed payload, for encoding.
#[derive(Clone, Copy, Debug)]
pub enum PayloadRef<'a> {
    /// JSON text.
    Json(&'a RawValue),
    /// Raw bytes.
    Binary(&'a [u8]),
}

impl PayloadRef<'static> {
    /// `{}`.
    pub fn empty_object() -> Self {
        Self::Json(Self::empty_object_raw())
    }

    fn empty_object_raw() -> &'static RawValue {
        // A literal that is valid JSON: borrowing it cannot fail.
        serde_json::from_str("{}").expect("{} is JSON")
    }
}

/// A decoded client → server message (§2.1).
#[derive(Clone, Debug)]
pub struct Message {
    /// `ref` of the `phx_join` that created the channel instance; `None` for null/absent
    /// (and for the empty string of a binary frame).
    pub join_ref: Option<Ref>,
    /// Per-message reference echoed by the reply; `None` for null.
    pub r#ref: Option<Ref>,
    /// e.g. `room:lobby`.
    pub topic: String,
    /// User or reserved event (see [`crate::event`]).
    pub event: String,
    /// JSON or binary payload.
    pub payload: Payload,
}

impl Outbound<'_> {
    /// Whether this message encodes as a binary frame (its payload or response is binary).
    pub fn is_binary(&self) -> bool {
        matches!(
            self,
            Self::Message {
                payload: PayloadRef::Binary(_),
                ..
            } | Self::Reply {
                response: PayloadRef::Binary(_),
                ..
            }
        )
    }
}

/// A server → client message, borrowed, ready to encode (§2.1).
#[derive(Clone, Copy, Debug)]
pub enum Outbound<'a> {
    /// `[join_ref, ref, topic, event, payload]`: pushes (join_ref set, ref null),
    /// broadcasts (both null), `phx_close`/`phx_error` (ref = join_ref).
    /// A binary payload encodes as a kind-0 push frame when `join_ref` is `Some`, and as
    /// a kind-2 broadcast frame when it is `None` (§2.4).
    Message {
        /// join_ref (null for broadcasts).
        join_ref: Option<&'a Ref>,
        /// ref (null for pushes and broadcasts).
        r#ref: Option<&'a Ref>,
        /// topic.
        topic: &'a str,
        /// event.
        event: &'a str,
        /// payload.
        payload: PayloadRef<'a>,
    },
    /// `phx_reply` with `{"response": R, "status": S}`; a binary response encodes as a
    /// kind-1 reply frame (§2.4).
    Reply {
        /// join_ref (null for heartbeat and `unmatched topic` replies).
        join_ref: Option<&'a Ref>,
        /// The ref of the message answered.
        r#ref: Option<&'a Ref>,
        /// topic.
        topic: &'a str,
        /// `"ok"`, `"error"` or any app-defined status.
        status: &'a str,
        /// The response.
        response: PayloadRef<'a>,
    },
}
