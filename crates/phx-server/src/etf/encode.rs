//! Writing terms (`term_to_binary`), byte for byte as OTP 26 and later do.

use std::io::Write;

use super::tag::*;
use super::{trimmed_le, Term, VERSION};

/// Encodes a term byte for byte as `:erlang.term_to_binary/1` does on OTP 26 and later.
///
/// Map entries are written in the order given: `term_to_binary` writes a map of up to 32
/// keys in key order, so callers sort them (as [`json::from_json`](super::json::from_json)
/// does).
///
/// # Panics
///
/// If a binary, list, tuple or map has more than `u32::MAX` elements, which the format
/// cannot express (and no token or broadcast could carry: both are bounded far below).
pub(crate) fn encode(term: &Term) -> Vec<u8> {
    let mut out = vec![VERSION];
    write_term(&mut out, term);
    out
}

/// `term_to_binary(Term, [{compressed, level}])` given the term's encoding after its
/// version byte: zlib at `level` (1–9) when that is smaller, as Erlang decides it; level
/// 0 (or no gain) writes the term uncompressed.
pub(crate) fn compress(body: &[u8], level: u32) -> Vec<u8> {
    let uncompressed = || {
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(VERSION);
        out.extend_from_slice(body);
        out
    };
    let Ok(size) = u32::try_from(body.len()) else {
        return uncompressed();
    };
    if level == 0 {
        return uncompressed();
    }
    let mut out = Vec::with_capacity(body.len() / 2 + 16);
    out.extend_from_slice(&[VERSION, COMPRESSED]);
    out.extend_from_slice(&size.to_be_bytes());
    let mut encoder = flate2::write::ZlibEncoder::new(out, flate2::Compression::new(level.min(9)));
    // Writing into a Vec cannot fail.
    let compressed = encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    if compressed.is_empty() || compressed.len() > body.len() {
        uncompressed()
    } else {
        compressed
    }
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    // Invariant documented on `encode`: nothing encoded holds 4 GiB in one term.
    let len = u32::try_from(len).expect("term longer than u32::MAX elements");
    out.extend_from_slice(&len.to_be_bytes());
}

/// Appends the encoding of `term` (no version byte) to `out`.
pub(crate) fn write_term(out: &mut Vec<u8>, term: &Term) {
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
        Term::ImproperList(items_and_tail) => {
            out.push(LIST_EXT);
            write_len(out, items_and_tail.len().saturating_sub(1));
            for item in items_and_tail {
                write_term(out, item);
            }
        }
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
        Term::Opaque { bytes, .. } => out.extend_from_slice(bytes),
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

#[cfg(test)]
mod tests {
    use super::super::decode::decode;
    use super::*;

    #[test]
    fn compression_is_zlib_behind_the_declared_size_and_only_when_smaller() {
        let term = Term::List(vec![Term::Int(0); 100]);
        let plain = encode(&term);
        for level in 1..=9 {
            let compressed = compress(&plain[1..], level);
            assert_eq!(&compressed[..2], &[VERSION, COMPRESSED], "level {level}");
            // The size of the term without its version byte: 107, 0, 100, then 100 zeros.
            assert_eq!(&compressed[2..6], &103u32.to_be_bytes());
            assert!(compressed.len() < plain.len());
            assert_eq!(decode(&compressed), Ok(term.clone()), "level {level}");
        }
        assert_eq!(compress(&plain[1..], 0), plain, "level 0 is no compression");
        // Nothing to gain: written uncompressed, as Erlang does.
        let tiny = encode(&Term::atom("a"));
        assert_eq!(compress(&tiny[1..], 9), tiny);
    }
}
