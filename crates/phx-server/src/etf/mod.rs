//! Erlang's external term format: what `:erlang.term_to_binary/2` writes and
//! `:erlang.binary_to_term/1` reads.
//!
//! Two Phoenix interfaces speak it: `Phoenix.Token` stores `term_to_binary({data,
//! signed_at_ms, max_age_s})` in every token (see [`phoenix_token`](crate::phoenix_token)),
//! and `Phoenix.PubSub.Redis` publishes `term_to_binary({3, mode, node, topic, message,
//! dispatcher})` for every broadcast between nodes (the Phoenix mode of the Redis
//! adapter, `pubsub/phoenix`). Both use this one codec.
//!
//! [`decode`](decode::decode) reads every term OTP 24 to 27 writes, in either atom
//! encoding (Latin-1 `ATOM_EXT` of `minor_version` 1 and UTF-8 of `minor_version` 2),
//! compressed or not, into a [`Term`] tree. Pids, ports, references, funs and
//! bitstrings are read whole but kept as [`Term::Opaque`] bytes: no JSON can hold them,
//! yet a message that carries one must still decode so that the caller can say why it
//! is ignored. [`encode`](encode::encode) writes a [`Term`] byte for byte as OTP 26+
//! `term_to_binary/1` does.
//!
//! # Bounds
//!
//! The input may come from anyone who can publish on a Redis channel, so decoding trusts
//! no length it reads:
//!
//! - a message longer than [`Limits::max_bytes`] is refused before it is read;
//! - a compressed term declares its size before the zlib data: a declared size past
//!   [`Limits::max_bytes`] is refused before anything is inflated, and inflating stops
//!   one byte past the declared size (a zlib bomb that lies about its size is refused
//!   there, never inflated further);
//! - every count (list, tuple, map, binary) is checked against the bytes that remain
//!   before anything is allocated for it;
//! - lists, tuples and maps nest at most [`MAX_DEPTH`] levels (the decoder recurses).
//!
//! A decoded tree costs at most about 32 bytes of memory per input byte (a list of
//! one-byte `[]` terms is the worst case), so the default limit of 1 MiB bounds one
//! decode to some 32 MiB, freed when the message has been handled.
//!
//! # Why not the `eetf` crate
//!
//! `eetf` 0.12 (the maintained Rust codec) is not safe on untrusted input: it panics
//! (`unimplemented!`) on the distribution header and atom cache tags, allocates
//! `Vec::with_capacity` and `vec![0; len]` from lengths it has not checked against the
//! input (a 10-byte message asks for gigabytes), has no nesting bound (a deep list
//! overflows the stack), and inflates compressed terms without a cap. It also reads maps
//! into a `HashMap`, losing the order Jason writes keys in.

pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod json;

use thiserror::Error;

pub(crate) use decode::{body, decode, decode_body};
pub(crate) use encode::{compress, encode, write_term};

/// The version byte every external term starts with.
pub(crate) const VERSION: u8 = 131;

/// Tags, named as in Erlang's `erl_ext_dist` documentation.
pub(crate) mod tag {
    pub(crate) const NEW_FLOAT_EXT: u8 = 70;
    pub(crate) const BIT_BINARY_EXT: u8 = 77;
    pub(crate) const COMPRESSED: u8 = 80;
    pub(crate) const NEW_PID_EXT: u8 = 88;
    pub(crate) const NEW_PORT_EXT: u8 = 89;
    pub(crate) const NEWER_REFERENCE_EXT: u8 = 90;
    pub(crate) const SMALL_INTEGER_EXT: u8 = 97;
    pub(crate) const INTEGER_EXT: u8 = 98;
    pub(crate) const FLOAT_EXT: u8 = 99;
    pub(crate) const ATOM_EXT: u8 = 100;
    pub(crate) const REFERENCE_EXT: u8 = 101;
    pub(crate) const PORT_EXT: u8 = 102;
    pub(crate) const PID_EXT: u8 = 103;
    pub(crate) const SMALL_TUPLE_EXT: u8 = 104;
    pub(crate) const LARGE_TUPLE_EXT: u8 = 105;
    pub(crate) const NIL_EXT: u8 = 106;
    pub(crate) const STRING_EXT: u8 = 107;
    pub(crate) const LIST_EXT: u8 = 108;
    pub(crate) const BINARY_EXT: u8 = 109;
    pub(crate) const SMALL_BIG_EXT: u8 = 110;
    pub(crate) const LARGE_BIG_EXT: u8 = 111;
    pub(crate) const NEW_FUN_EXT: u8 = 112;
    pub(crate) const EXPORT_EXT: u8 = 113;
    pub(crate) const NEW_REFERENCE_EXT: u8 = 114;
    pub(crate) const SMALL_ATOM_EXT: u8 = 115;
    pub(crate) const MAP_EXT: u8 = 116;
    pub(crate) const FUN_EXT: u8 = 117;
    pub(crate) const ATOM_UTF8_EXT: u8 = 118;
    pub(crate) const SMALL_ATOM_UTF8_EXT: u8 = 119;
    pub(crate) const V4_PORT_EXT: u8 = 120;
}

/// How deep lists, tuples and maps may nest. Real payloads nest a handful of levels; the
/// bound keeps a crafted one from overflowing the stack of the recursive decoder.
pub(crate) const MAX_DEPTH: usize = 128;

/// The default [`Limits::max_bytes`]: 1 MiB.
pub(crate) const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// Bounds of one decode (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The largest term read, in bytes: the message as it arrives, and the size a
    /// compressed term inflates to.
    pub(crate) max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Why bytes could not be read as a term, or a term could not be mapped to JSON.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TermError {
    /// The first byte is not the external term format version (131).
    #[error("not an Erlang external term (version byte {0}, expected 131)")]
    Version(u8),
    /// The bytes end in the middle of a term.
    #[error("the term ends early")]
    Truncated,
    /// Bytes are left over after the term.
    #[error("{0} bytes follow the term")]
    TrailingBytes(usize),
    /// The term (as received, or as its compressed header says it inflates to) is
    /// larger than the limit; nothing past the limit was read or inflated.
    #[error("term of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The size received or declared.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Compressed data that is not zlib, or that does not inflate to the size it
    /// declares.
    #[error("compressed term does not inflate to its declared size")]
    Inflate,
    /// A term type that cannot be read or mapped to JSON: pids, ports, references,
    /// funs, bitstrings, the distribution header and so on.
    #[error("unsupported term type {name} (tag {tag})")]
    Unsupported {
        /// The external format tag byte.
        tag: u8,
        /// The name of the tag in Erlang's documentation.
        name: &'static str,
    },
    /// A list whose tail is not `[]`, such as `[1 | 2]`.
    #[error("improper list")]
    ImproperList,
    /// A binary that is not UTF-8 text cannot become a JSON string.
    #[error("binary is not UTF-8 text")]
    NonUtf8Binary,
    /// An atom whose name is not valid UTF-8.
    #[error("atom name is not valid UTF-8")]
    InvalidAtom,
    /// A float that is NaN or infinite (Erlang never produces these).
    #[error("float is not finite")]
    NonFiniteFloat,
    /// An integer too large to render (its magnitude in bytes).
    #[error("integer of {0} bytes is too large")]
    IntegerTooLarge(usize),
    /// A map key that is neither an atom nor a UTF-8 binary cannot become a JSON key.
    #[error("map key is not an atom or a string")]
    UnsupportedMapKey,
    /// Two keys of one map become the same JSON key (e.g. `:id` and `"id"`).
    #[error("map key {0:?} appears twice")]
    DuplicateKey(String),
    /// Lists, tuples and maps nested deeper than phx-rs reads.
    #[error("terms nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// A decoded term.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Term {
    /// An integer that fits `i64` (`SMALL_INTEGER_EXT`, `INTEGER_EXT`, or a big integer
    /// that happens to fit).
    Int(i64),
    /// Any other integer: sign and magnitude, little-endian bytes without trailing zeros.
    BigInt { negative: bool, magnitude: Vec<u8> },
    /// An IEEE 754 double.
    Float(f64),
    /// An atom, by name (`true`, `false` and `nil` are atoms too).
    Atom(String),
    /// A binary (Elixir string).
    Binary(Vec<u8>),
    /// A proper list (a charlist such as `'abc'` is a list of integers).
    List(Vec<Term>),
    /// A list whose last tail is not `[]`: its elements, then the tail, in one vector
    /// (at least one element and the tail: `[1 | 2]` is `[1, 2]` here).
    ImproperList(Vec<Term>),
    /// A tuple.
    Tuple(Vec<Term>),
    /// A map, in the order the entries were read (or are to be written).
    Map(Vec<(Term, Term)>),
    /// A pid, port, reference, fun or bitstring, kept as its bytes (tag included), so it
    /// is written back unchanged. (A boxed slice keeps `Term` at 32 bytes: the size of a
    /// decoded tree is a bound, see the module docs.)
    Opaque {
        /// The tag byte ([`tag_name`] names it).
        tag: u8,
        /// The term's encoding, from its tag on.
        bytes: Box<[u8]>,
    },
}

impl Term {
    /// An unsigned integer, as `term_to_binary` sees it (a big integer past `i64::MAX`).
    pub(crate) fn from_u64(value: u64) -> Self {
        match i64::try_from(value) {
            Ok(small) => Self::Int(small),
            Err(_) => Self::BigInt {
                negative: false,
                magnitude: trimmed_le(value.to_le_bytes().to_vec()),
            },
        }
    }

    /// An atom.
    pub(crate) fn atom(name: &str) -> Self {
        Self::Atom(name.to_owned())
    }

    /// A binary holding `text`.
    pub(crate) fn binary(text: &str) -> Self {
        Self::Binary(text.as_bytes().to_vec())
    }

    /// Whether this is the atom `name`.
    pub(crate) fn is_atom(&self, name: &str) -> bool {
        matches!(self, Self::Atom(atom) if atom == name)
    }
}

/// Drops the high zero bytes of a little-endian magnitude.
pub(crate) fn trimmed_le(mut magnitude: Vec<u8>) -> Vec<u8> {
    while magnitude.last() == Some(&0) {
        magnitude.pop();
    }
    magnitude
}

/// The name Erlang's documentation gives a tag, for error messages.
pub(crate) fn tag_name(tag: u8) -> &'static str {
    match tag {
        tag::COMPRESSED => "COMPRESSED",
        68 => "DIST_HEADER",
        82 => "ATOM_CACHE_REF",
        tag::BIT_BINARY_EXT => "BIT_BINARY_EXT",
        tag::NEW_PID_EXT => "NEW_PID_EXT",
        tag::NEW_PORT_EXT => "NEW_PORT_EXT",
        tag::NEWER_REFERENCE_EXT => "NEWER_REFERENCE_EXT",
        tag::REFERENCE_EXT => "REFERENCE_EXT",
        tag::PORT_EXT => "PORT_EXT",
        tag::PID_EXT => "PID_EXT",
        tag::NEW_FUN_EXT => "NEW_FUN_EXT",
        tag::EXPORT_EXT => "EXPORT_EXT",
        tag::NEW_REFERENCE_EXT => "NEW_REFERENCE_EXT",
        tag::FUN_EXT => "FUN_EXT",
        tag::V4_PORT_EXT => "V4_PORT_EXT",
        121 => "LOCAL_EXT",
        _ => "unknown",
    }
}

/// Decimal digits of a little-endian magnitude, by repeated division by 10^9 (quadratic
/// in the length: callers bound it).
pub(crate) fn decimal(magnitude: &[u8]) -> String {
    const CHUNK: u64 = 1_000_000_000;
    // Base-2^32 limbs, least significant first, then turned most significant first.
    let mut limbs: Vec<u32> = magnitude
        .chunks(4)
        .map(|chunk| {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            u32::from_le_bytes(word)
        })
        .collect();
    limbs.reverse();
    let mut chunks = Vec::new();
    while limbs.iter().any(|&limb| limb != 0) {
        let mut remainder = 0u64;
        for limb in &mut limbs {
            let current = (remainder << 32) | u64::from(*limb);
            // current < CHUNK * 2^32, so the quotient fits u32.
            *limb = u32::try_from(current / CHUNK).unwrap_or(u32::MAX);
            remainder = current % CHUNK;
        }
        chunks.push(remainder);
        while limbs.first() == Some(&0) {
            limbs.remove(0);
        }
    }
    let mut text = chunks
        .last()
        .map_or_else(|| "0".to_owned(), |top| top.to_string());
    for chunk in chunks.iter().rev().skip(1) {
        text.push_str(&format!("{chunk:09}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_node_takes_32_bytes() {
        // The memory bound of a decode (module docs, SECURITY.md) counts on it.
        assert!(size_of::<Term>() <= 32, "{}", size_of::<Term>());
    }

    #[test]
    fn decimal_digits_of_big_magnitudes() {
        assert_eq!(decimal(&[]), "0");
        assert_eq!(decimal(&[0xff; 8]), u64::MAX.to_string());
        // 10^30, little-endian.
        let magnitude = [
            0x00, 0x00, 0x00, 0x40, 0xea, 0xed, 0x74, 0x46, 0xd0, 0x9c, 0x2c, 0x9f, 0x0c,
        ];
        assert_eq!(decimal(&magnitude), format!("1{}", "0".repeat(30)));
        // 2^70 (1180591620717411303424): a 9-byte magnitude.
        let mut two_70 = vec![0; 8];
        two_70.push(0x40);
        assert_eq!(decimal(&two_70), "1180591620717411303424");
    }
}
