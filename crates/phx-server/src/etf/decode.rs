//! The subset of Erlang's external term format that `Phoenix.Token` payloads use.
//!
//! `Phoenix.Token` (through Plug.Crypto) stores `:erlang.term_to_binary({data,
//! signed_at_ms, max_age_s})` in every token, so reading a token means reading that
//! format. This module decodes it into a small [`Term`] tree and encodes a [`Term`] back
//! exactly as `term_to_binary/1` does (OTP 26 and later), for the types real apps put in
//! tokens: integers of any size, floats, atoms, binaries, proper lists, tuples and maps.
//! Everything else (pids, ports, references, funs, bitstrings, compressed terms,
//! improper lists) is refused with a [`TermError`].
//!
//! Decoding never trusts a length it reads: every count is checked against the bytes that
//! remain before anything is allocated, and nesting is bounded, so a hostile payload can
//! neither exhaust memory nor the stack. (The payload is only decoded after its MAC or
//! AEAD tag verified, so in practice only a holder of `secret_key_base` can reach this
//! code, but the decoder does not rely on that.)

use thiserror::Error;

/// The version byte every external term starts with.
const VERSION: u8 = 131;

// Tags, named as in Erlang's `erl_ext_dist` documentation.
const NEW_FLOAT_EXT: u8 = 70;
const BIT_BINARY_EXT: u8 = 77;
const COMPRESSED: u8 = 80;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const FLOAT_EXT: u8 = 99;
const ATOM_EXT: u8 = 100;
const SMALL_TUPLE_EXT: u8 = 104;
const LARGE_TUPLE_EXT: u8 = 105;
const NIL_EXT: u8 = 106;
const STRING_EXT: u8 = 107;
const LIST_EXT: u8 = 108;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;
const LARGE_BIG_EXT: u8 = 111;
const SMALL_ATOM_EXT: u8 = 115;
const MAP_EXT: u8 = 116;
const ATOM_UTF8_EXT: u8 = 118;
const SMALL_ATOM_UTF8_EXT: u8 = 119;

/// How deep lists, tuples and maps may nest. Real tokens nest a handful of levels; the
/// bound keeps a crafted payload from overflowing the stack of the recursive decoder.
pub(crate) const MAX_DEPTH: usize = 128;

/// Why a token's payload could not be read as a term of the supported subset, or its
/// data mapped to JSON (see the data mapping in the [module docs](super)).
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
    /// A term type phx-rs does not map to JSON: pids, ports, references, funs,
    /// bitstrings, compressed terms and so on.
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

/// A decoded term of the supported subset.
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
    /// A tuple.
    Tuple(Vec<Term>),
    /// A map, in the order the entries were read (or are to be written).
    Map(Vec<(Term, Term)>),
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
}

/// Drops the high zero bytes of a little-endian magnitude.
fn trimmed_le(mut magnitude: Vec<u8>) -> Vec<u8> {
    while magnitude.last() == Some(&0) {
        magnitude.pop();
    }
    magnitude
}

/// Decodes one whole external term (`:erlang.binary_to_term/1`) of the supported subset.
pub(crate) fn decode(bytes: &[u8]) -> Result<Term, TermError> {
    let mut reader = Reader { rest: bytes };
    let version = reader.u8()?;
    if version != VERSION {
        return Err(TermError::Version(version));
    }
    let term = reader.term(0)?;
    match reader.rest.len() {
        0 => Ok(term),
        left => Err(TermError::TrailingBytes(left)),
    }
}

/// Encodes a term byte for byte as `:erlang.term_to_binary/1` does on OTP 26 and later.
///
/// Map entries are written in the order given: `term_to_binary` writes a map of up to 32
/// keys in key order, so callers sort them (as `json::from_json` does).
///
/// # Panics
///
/// If a binary, list, tuple or map has more than `u32::MAX` elements, which the format
/// cannot express (and no token could carry).
pub(crate) fn encode(term: &Term) -> Vec<u8> {
    let mut out = vec![VERSION];
    write_term(&mut out, term);
    out
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    // Invariant documented on `encode`: no token holds 4 GiB in one term.
    let len = u32::try_from(len).expect("term longer than u32::MAX elements");
    out.extend_from_slice(&len.to_be_bytes());
}

fn write_term(out: &mut Vec<u8>, term: &Term) {
    match term {
        Term::Int(value) => write_int(out, *value),
        Term::BigInt {
            negative,
            magnitude,
        } => write_big(out, *negative, magnitude),
        Term::Float(value) => {
            out.push(NEW_FLOAT_EXT);
            out.extend_from_slice(&value.to_be_bytes());
        }
        Term::Atom(name) => {
            // OTP 26 made UTF-8 atom tags the default (`minor_version` 2).
            if let Ok(len) = u8::try_from(name.len()) {
                out.push(SMALL_ATOM_UTF8_EXT);
                out.push(len);
            } else {
                out.push(ATOM_UTF8_EXT);
                let len = u16::try_from(name.len()).expect("atom name longer than 65535 bytes");
                out.extend_from_slice(&len.to_be_bytes());
            }
            out.extend_from_slice(name.as_bytes());
        }
        Term::Binary(bytes) => {
            out.push(BINARY_EXT);
            write_len(out, bytes.len());
            out.extend_from_slice(bytes);
        }
        Term::List(items) => write_list(out, items),
        Term::Tuple(items) => {
            if let Ok(arity) = u8::try_from(items.len()) {
                out.push(SMALL_TUPLE_EXT);
                out.push(arity);
            } else {
                out.push(LARGE_TUPLE_EXT);
                write_len(out, items.len());
            }
            for item in items {
                write_term(out, item);
            }
        }
        Term::Map(entries) => {
            out.push(MAP_EXT);
            write_len(out, entries.len());
            for (key, value) in entries {
                write_term(out, key);
                write_term(out, value);
            }
        }
    }
}

fn write_int(out: &mut Vec<u8>, value: i64) {
    if let Ok(byte) = u8::try_from(value) {
        out.push(SMALL_INTEGER_EXT);
        out.push(byte);
    } else if let Ok(word) = i32::try_from(value) {
        out.push(INTEGER_EXT);
        out.extend_from_slice(&word.to_be_bytes());
    } else {
        let magnitude = trimmed_le(value.unsigned_abs().to_le_bytes().to_vec());
        write_big(out, value < 0, &magnitude);
    }
}

fn write_big(out: &mut Vec<u8>, negative: bool, magnitude: &[u8]) {
    if let Ok(len) = u8::try_from(magnitude.len()) {
        out.push(SMALL_BIG_EXT);
        out.push(len);
    } else {
        out.push(LARGE_BIG_EXT);
        write_len(out, magnitude.len());
    }
    out.push(u8::from(negative));
    out.extend_from_slice(magnitude);
}

fn write_list(out: &mut Vec<u8>, items: &[Term]) {
    if items.is_empty() {
        out.push(NIL_EXT);
        return;
    }
    // term_to_binary writes a list of bytes (a charlist) compactly as STRING_EXT.
    let bytes: Option<Vec<u8>> = items
        .iter()
        .map(|item| match item {
            Term::Int(value) => u8::try_from(*value).ok(),
            _ => None,
        })
        .collect();
    match bytes {
        Some(bytes) if bytes.len() <= usize::from(u16::MAX) => {
            out.push(STRING_EXT);
            let len = u16::try_from(bytes.len()).expect("checked just above");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        _ => {
            out.push(LIST_EXT);
            write_len(out, items.len());
            for item in items {
                write_term(out, item);
            }
            out.push(NIL_EXT);
        }
    }
}

/// The name Erlang's documentation gives an unsupported tag, for the error message.
fn unsupported(tag: u8) -> TermError {
    let name = match tag {
        COMPRESSED => "COMPRESSED",
        68 => "DIST_HEADER",
        82 => "ATOM_CACHE_REF",
        BIT_BINARY_EXT => "BIT_BINARY_EXT",
        88 => "NEW_PID_EXT",
        89 => "NEW_PORT_EXT",
        90 => "NEWER_REFERENCE_EXT",
        101 => "REFERENCE_EXT",
        102 => "PORT_EXT",
        103 => "PID_EXT",
        112 => "NEW_FUN_EXT",
        113 => "EXPORT_EXT",
        114 => "NEW_REFERENCE_EXT",
        117 => "FUN_EXT",
        120 => "V4_PORT_EXT",
        121 => "LOCAL_EXT",
        _ => "unknown",
    };
    TermError::Unsupported { tag, name }
}

/// A cursor over the payload; every read checks the remaining length first.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TermError> {
        if n > self.rest.len() {
            return Err(TermError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TermError> {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(self.take(N)?);
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, TermError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<usize, TermError> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }

    fn u32(&mut self) -> Result<usize, TermError> {
        usize::try_from(u32::from_be_bytes(self.array()?)).map_err(|_| TermError::Truncated)
    }

    /// A count of items that each take at least `min_bytes`: more than the remaining
    /// bytes can hold means the term is truncated, and nothing is allocated for it.
    fn count(&mut self, count: usize, min_bytes: usize) -> Result<usize, TermError> {
        if count.saturating_mul(min_bytes) > self.rest.len() {
            return Err(TermError::Truncated);
        }
        Ok(count)
    }

    fn term(&mut self, depth: usize) -> Result<Term, TermError> {
        if depth > MAX_DEPTH {
            return Err(TermError::TooDeep);
        }
        let tag = self.u8()?;
        match tag {
            SMALL_INTEGER_EXT => Ok(Term::Int(i64::from(self.u8()?))),
            INTEGER_EXT => Ok(Term::Int(i64::from(i32::from_be_bytes(self.array()?)))),
            SMALL_BIG_EXT => {
                let len = usize::from(self.u8()?);
                self.big(len)
            }
            LARGE_BIG_EXT => {
                let len = self.u32()?;
                self.big(len)
            }
            NEW_FLOAT_EXT => finite(f64::from_be_bytes(self.array()?)),
            FLOAT_EXT => {
                // Pre-R11 floats: 31 bytes of `printf("%.20e")`, NUL padded.
                let text = self.take(31)?;
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                let value = std::str::from_utf8(&text[..end])
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .ok_or(TermError::Unsupported {
                        tag,
                        name: "FLOAT_EXT",
                    })?;
                finite(value)
            }
            ATOM_EXT => {
                let len = self.u16()?;
                Ok(Term::Atom(latin1(self.take(len)?)))
            }
            SMALL_ATOM_EXT => {
                let len = usize::from(self.u8()?);
                Ok(Term::Atom(latin1(self.take(len)?)))
            }
            ATOM_UTF8_EXT => {
                let len = self.u16()?;
                self.utf8_atom(len)
            }
            SMALL_ATOM_UTF8_EXT => {
                let len = usize::from(self.u8()?);
                self.utf8_atom(len)
            }
            BINARY_EXT => {
                let len = self.u32()?;
                Ok(Term::Binary(self.take(len)?.to_vec()))
            }
            NIL_EXT => Ok(Term::List(Vec::new())),
            STRING_EXT => {
                let len = self.u16()?;
                let bytes = self.take(len)?;
                Ok(Term::List(
                    bytes.iter().map(|&b| Term::Int(i64::from(b))).collect(),
                ))
            }
            LIST_EXT => {
                let len = self.u32()?;
                let len = self.count(len, 1)?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.term(depth + 1)?);
                }
                // A proper list ends in NIL_EXT; any other tail makes it improper.
                match self.u8()? {
                    NIL_EXT => Ok(Term::List(items)),
                    _ => Err(TermError::ImproperList),
                }
            }
            SMALL_TUPLE_EXT => {
                let arity = usize::from(self.u8()?);
                self.tuple(arity, depth)
            }
            LARGE_TUPLE_EXT => {
                let arity = self.u32()?;
                self.tuple(arity, depth)
            }
            MAP_EXT => {
                let len = self.u32()?;
                let len = self.count(len, 2)?;
                let mut entries = Vec::with_capacity(len);
                for _ in 0..len {
                    let key = self.term(depth + 1)?;
                    let value = self.term(depth + 1)?;
                    entries.push((key, value));
                }
                Ok(Term::Map(entries))
            }
            other => Err(unsupported(other)),
        }
    }

    fn big(&mut self, len: usize) -> Result<Term, TermError> {
        let sign = self.u8()?;
        let magnitude = trimmed_le(self.take(len)?.to_vec());
        let negative = sign != 0;
        let mut word = [0u8; 8];
        if magnitude.len() <= word.len() {
            word[..magnitude.len()].copy_from_slice(&magnitude);
            let value = u64::from_le_bytes(word);
            let small = if negative {
                // -(2^63) is the one negative value whose magnitude is past i64::MAX.
                0i64.checked_sub_unsigned(value)
            } else {
                i64::try_from(value).ok()
            };
            if let Some(small) = small {
                return Ok(Term::Int(small));
            }
        }
        Ok(Term::BigInt {
            negative: negative && !magnitude.is_empty(),
            magnitude,
        })
    }

    fn utf8_atom(&mut self, len: usize) -> Result<Term, TermError> {
        let name = std::str::from_utf8(self.take(len)?).map_err(|_| TermError::InvalidAtom)?;
        Ok(Term::Atom(name.to_owned()))
    }

    fn tuple(&mut self, arity: usize, depth: usize) -> Result<Term, TermError> {
        let arity = self.count(arity, 1)?;
        let mut items = Vec::with_capacity(arity);
        for _ in 0..arity {
            items.push(self.term(depth + 1)?);
        }
        Ok(Term::Tuple(items))
    }
}

fn finite(value: f64) -> Result<Term, TermError> {
    if value.is_finite() {
        Ok(Term::Float(value))
    } else {
        Err(TermError::NonFiniteFloat)
    }
}

/// `ATOM_EXT` names are Latin-1: each byte is the code point of the same value.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn bin(s: &str) -> Term {
        Term::Binary(s.as_bytes().to_vec())
    }

    // Expected bytes below were printed by `erlang:term_to_binary(T, [{minor_version, 2}])`
    // (the OTP 26+ default) for the Erlang term in each comment.
    #[test]
    fn integers_take_the_smallest_tag_like_term_to_binary() {
        let cases: &[(i64, &str)] = &[
            (0, "836100"),                               // 0
            (255, "8361ff"),                             // 255
            (256, "836200000100"),                       // 256
            (-1, "8362ffffffff"),                        // -1
            (2_147_483_647, "83627fffffff"),             // 2147483647
            (-2_147_483_648, "836280000000"),            // -2147483648
            (2_147_483_648, "836e040000000080"),         // 2147483648
            (-2_147_483_649, "836e040101000080"),        // -2147483649
            (1_764_000_000_000, "836e060000e897b69a01"), // 1764000000000
            (i64::MAX, "836e0800ffffffffffffff7f"),      // 9223372036854775807
            (i64::MIN, "836e08010000000000000080"),      // -9223372036854775808
        ];
        for &(value, bytes) in cases {
            assert_eq!(encode(&Term::Int(value)), hex(bytes), "encoding {value}");
            assert_eq!(
                decode(&hex(bytes)),
                Ok(Term::Int(value)),
                "decoding {value}"
            );
        }
    }

    #[test]
    fn integers_past_i64_stay_big() {
        // 18446744073709551615 (u64::MAX)
        let bytes = hex("836e0800ffffffffffffffff");
        assert_eq!(encode(&Term::from_u64(u64::MAX)), bytes);
        assert_eq!(decode(&bytes), Ok(Term::from_u64(u64::MAX)));
        // -18446744073709551616 (-(2^64))
        let bytes = hex("836e0901000000000000000001");
        let term = Term::BigInt {
            negative: true,
            magnitude: hex("000000000000000001"),
        };
        assert_eq!(decode(&bytes), Ok(term.clone()));
        assert_eq!(encode(&term), bytes);
    }

    #[test]
    fn large_big_ext_decodes() {
        // 1 bsl 2048: LARGE_BIG_EXT with 257 magnitude bytes.
        let mut bytes = hex("836f0000010100");
        bytes.extend(std::iter::repeat_n(0, 256));
        bytes.push(1);
        match decode(&bytes) {
            Ok(Term::BigInt {
                negative: false,
                magnitude,
            }) => assert_eq!(magnitude.len(), 257),
            other => panic!("unexpected {other:?}"),
        }
        let term = decode(&bytes).unwrap();
        assert_eq!(encode(&term), bytes);
    }

    #[test]
    fn atoms_are_written_as_utf8_and_read_in_every_form() {
        // nil
        assert_eq!(encode(&Term::Atom("nil".into())), hex("8377036e696c"));
        for bytes in [
            "8377036e696c",   // SMALL_ATOM_UTF8_EXT
            "837600036e696c", // ATOM_UTF8_EXT
            "836400036e696c", // ATOM_EXT (OTP < 26 default)
            "8373036e696c",   // SMALL_ATOM_EXT
        ] {
            assert_eq!(decode(&hex(bytes)), Ok(Term::Atom("nil".into())), "{bytes}");
        }
        // 'é' as ATOM_EXT (minor_version 1) is Latin-1 0xe9; as UTF-8 it is c3 a9.
        assert_eq!(decode(&hex("83640001e9")), Ok(Term::Atom("é".into())));
        assert_eq!(encode(&Term::Atom("é".into())), hex("837702c3a9"));
        assert_eq!(decode(&hex("837702c3")), Err(TermError::Truncated));
        assert_eq!(decode(&hex("837701ff")), Err(TermError::InvalidAtom));
    }

    #[test]
    fn floats_use_new_float_ext_and_old_float_ext_still_reads() {
        // 3.5
        assert_eq!(encode(&Term::Float(3.5)), hex("8346400c000000000000"));
        assert_eq!(decode(&hex("8346400c000000000000")), Ok(Term::Float(3.5)));
        // term_to_binary(3.5, [{minor_version, 0}])
        let old = hex(concat!(
            "8363332e3530303030303030303030303030303030303030652b3030",
            "0000000000"
        ));
        assert_eq!(decode(&old), Ok(Term::Float(3.5)));
        // A NaN bit pattern never comes from Erlang.
        assert_eq!(
            decode(&hex("83467ff8000000000000")),
            Err(TermError::NonFiniteFloat)
        );
    }

    #[test]
    fn lists_of_bytes_are_strings_and_others_are_lists() {
        // [] , [1,2,3] , [1,<<"two">>,3.5] , [256]
        assert_eq!(encode(&Term::List(vec![])), hex("836a"));
        let bytes = Term::List(vec![Term::Int(1), Term::Int(2), Term::Int(3)]);
        assert_eq!(encode(&bytes), hex("836b0003010203"));
        assert_eq!(decode(&hex("836b0003010203")), Ok(bytes));
        let mixed = Term::List(vec![Term::Int(1), bin("two"), Term::Float(3.5)]);
        let mixed_bytes = hex("836c0000000361016d0000000374776f46400c0000000000006a");
        assert_eq!(encode(&mixed), mixed_bytes);
        assert_eq!(decode(&mixed_bytes), Ok(mixed));
        assert_eq!(
            encode(&Term::List(vec![Term::Int(256)])),
            hex("836c0000000162000001006a")
        );
    }

    #[test]
    fn long_byte_lists_fall_back_to_list_ext() {
        let items = vec![Term::Int(7); 65_536];
        let encoded = encode(&Term::List(items.clone()));
        assert_eq!(encoded[1], LIST_EXT);
        assert_eq!(decode(&encoded), Ok(Term::List(items)));
    }

    #[test]
    fn improper_lists_are_refused() {
        // [1 | 2]
        assert_eq!(
            decode(&hex("836c0000000161016102")),
            Err(TermError::ImproperList)
        );
    }

    #[test]
    fn tuples_and_maps_round_trip() {
        // {<<"a">>, #{<<"id">> => 7, <<"name">> => <<"bob">>}}
        let term = Term::Tuple(vec![
            bin("a"),
            Term::Map(vec![(bin("id"), Term::Int(7)), (bin("name"), bin("bob"))]),
        ]);
        let bytes = hex(concat!(
            "8368026d000000016174000000026d00000002696461076d",
            "000000046e616d656d00000003626f62"
        ));
        assert_eq!(encode(&term), bytes);
        assert_eq!(decode(&bytes), Ok(term));
        let large = Term::Tuple(vec![Term::Int(0); 256]);
        let encoded = encode(&large);
        assert_eq!(encoded[1], LARGE_TUPLE_EXT);
        assert_eq!(decode(&encoded), Ok(large));
    }

    #[test]
    fn pids_references_funs_bitstrings_and_compression_are_refused() {
        let cases: &[(&str, &str)] = &[
            // <0.9.0>
            (
                "8358770d6e6f6e6f6465406e6f686f7374000000090000000000000000",
                "NEW_PID_EXT",
            ),
            // make_ref()
            (
                "835a0003770d6e6f6e6f6465406e6f686f737400000000000122d654540002de72e20b",
                "NEWER_REFERENCE_EXT",
            ),
            // fun erlang:self/0
            ("8371770665726c616e67770473656c666100", "EXPORT_EXT"),
            // <<1:3>>
            ("834d000000010320", "BIT_BINARY_EXT"),
            // term_to_binary(lists:duplicate(100, 0), [compressed])
            ("835000000067789ccb664861a003000052e800d0", "COMPRESSED"),
        ];
        for &(bytes, name) in cases {
            match decode(&hex(bytes)) {
                Err(TermError::Unsupported { name: got, .. }) => assert_eq!(got, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn lengths_past_the_input_are_truncation_not_allocation() {
        for bytes in [
            "836cffffffff",   // list of 4 billion
            "8374ffffffff",   // map of 4 billion
            "8369ffffffff",   // tuple of 4 billion
            "836dffffffff61", // binary of 4 GiB
            "836fffffffff00", // big integer of 4 GiB
            "836b00ff41",     // string of 255
            "83",             // nothing
            "8362000001",     // 3 of 4 integer bytes
        ] {
            assert_eq!(decode(&hex(bytes)), Err(TermError::Truncated), "{bytes}");
        }
    }

    #[test]
    fn version_byte_and_trailing_bytes_are_checked() {
        assert_eq!(decode(&hex("8461")), Err(TermError::Version(0x84)));
        assert_eq!(decode(&[]), Err(TermError::Truncated));
        assert_eq!(decode(&hex("8361016a")), Err(TermError::TrailingBytes(1)));
    }

    #[test]
    fn nesting_is_bounded() {
        // [[[...[]...]]] nested past the bound.
        let mut bytes = vec![VERSION];
        for _ in 0..=MAX_DEPTH {
            bytes.extend_from_slice(&hex("6c00000001"));
        }
        bytes.push(NIL_EXT);
        bytes.extend(std::iter::repeat_n(NIL_EXT, MAX_DEPTH + 1));
        assert_eq!(decode(&bytes), Err(TermError::TooDeep));
    }
}
