//! Why a term has no JSON form, shared by the JSON writer ([`jason`](super::jason)) and
//! the structs it knows ([`structs`](super::structs)).

/// Integers up to this many bytes of magnitude (2 466 decimal digits) are written; the
/// decimal conversion is quadratic in the length.
pub(crate) const MAX_BIG_BYTES: usize = 1024;

/// Why a term has no JSON form (Jason would raise).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotEncodable {
    /// A term type JSON cannot hold.
    #[error("a {0} cannot be encoded as JSON")]
    Term(&'static str),
    /// A binary that is not UTF-8 (Jason: "invalid byte").
    #[error("binary is not UTF-8 text")]
    NotUtf8,
    /// A struct Jason has no built-in encoding for.
    #[error("struct {0} has no JSON encoding phx-rs knows")]
    Struct(String),
    /// A known struct whose fields are not what it holds.
    #[error("malformed {0} struct")]
    MalformedStruct(&'static str),
    /// A map key with no string form.
    #[error("a {0} cannot be a JSON object key")]
    Key(&'static str),
    /// An integer past [`MAX_BIG_BYTES`].
    #[error("integer of {0} bytes is too large")]
    BigInteger(usize),
    /// A broadcast payload that is neither a map nor `{:binary, data}`.
    #[error("payload is not a map (Phoenix raises \"expected broadcasted payload to be a map\")")]
    NotAMap,
}
