//! Terms to JSON text exactly as Jason (Phoenix's JSON library) writes them, so that a
//! broadcast from a Phoenix node reaches phx-rs's sockets as the same frame payload a
//! Phoenix node's fastlane would send (`Jason.encode_to_iodata!/1`, default options:
//! `escape: :json`, `maps: :naive`).
//!
//! - `nil`, `true`, `false` → `null`, `true`, `false`; any other atom → its name as a
//!   string (`:ok` → `"ok"`, `MyApp.Role` → `"Elixir.MyApp.Role"`).
//! - Binaries → strings; they must be UTF-8 (Jason raises on an invalid byte). Escapes:
//!   `\"`, `\\`, `\b \t \n \f \r`, other control characters as `\u00XX` (upper-case hex);
//!   everything else as is (`/`, `<`, U+2028 included).
//! - Integers of any size → numbers (phx-rs renders up to 1 024 bytes of magnitude,
//!   2 466 digits); floats → `:erlang.float_to_binary(f, [:short])`, e.g. `1.0`,
//!   `1.0e20`, `-2.25e-5`.
//! - Lists → arrays (a charlist `'ab'` → `[97,98]`).
//! - Maps → objects in the map's own order (term order up to 32 keys, Erlang's hash order
//!   past that: the order the external format carries them in); keys: binaries, atoms,
//!   integers and floats by `to_string`, charlists as their text. Two keys that print
//!   alike (`:id` and `"id"`) are both written, as Jason's default `maps: :naive` does.
//! - Structs: `Date`, `Time`, `NaiveDateTime`, `DateTime` (ISO 8601, Calendar.ISO),
//!   `Decimal` (`Decimal.to_string(d, :normal)` as a string) and `Jason.OrderedObject`;
//!   see [`structs`](super::structs).
//!
//! Everything else is [`NotEncodable`], where Phoenix's fastlane would raise: tuples,
//! pids, ports, references, funs, bitstrings, improper lists, other structs (a
//! `@derive Jason.Encoder` on the Elixir side cannot be known here).

use std::fmt::Write as _;

use crate::etf::{decimal, Term};

pub(crate) use super::not_encodable::{NotEncodable, MAX_BIG_BYTES};
use super::structs::{self, StructJson};

/// The name of a term's type, for messages.
pub(crate) fn kind(term: &Term) -> &'static str {
    match term {
        Term::Int(_) | Term::BigInt { .. } => "integer",
        Term::Float(_) => "float",
        Term::Atom(_) => "atom",
        Term::Binary(_) => "binary",
        Term::List(_) => "list",
        Term::ImproperList(_) => "improper list",
        Term::Tuple(_) => "tuple",
        Term::Map(_) => "map",
        Term::Opaque { tag, .. } => match *tag {
            crate::etf::tag::PID_EXT | crate::etf::tag::NEW_PID_EXT => "pid",
            crate::etf::tag::PORT_EXT
            | crate::etf::tag::NEW_PORT_EXT
            | crate::etf::tag::V4_PORT_EXT => "port",
            crate::etf::tag::BIT_BINARY_EXT => "bitstring",
            crate::etf::tag::NEW_FUN_EXT
            | crate::etf::tag::EXPORT_EXT
            | crate::etf::tag::FUN_EXT => "fun",
            _ => "reference",
        },
    }
}

/// Appends the JSON text of `term` to `out`. The term comes from the decoder, whose
/// nesting bound also bounds this recursion.
pub(crate) fn write_value(out: &mut String, term: &Term) -> Result<(), NotEncodable> {
    match term {
        Term::Atom(name) => match name.as_str() {
            "nil" => out.push_str("null"),
            "true" => out.push_str("true"),
            "false" => out.push_str("false"),
            _ => write_string(out, name),
        },
        Term::Binary(bytes) => write_string(out, utf8(bytes)?),
        Term::Int(value) => {
            let _ = write!(out, "{value}");
        }
        Term::BigInt {
            negative,
            magnitude,
        } => write_big(out, *negative, magnitude)?,
        Term::Float(value) => write_float(out, *value),
        Term::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Term::Map(entries) => match struct_name(entries) {
            Some(module) => match structs::encode(module, entries)? {
                StructJson::Text(text) => write_string(out, &text),
                StructJson::Object(pairs) => write_object(out, pairs.into_iter())?,
            },
            None => write_object(out, entries.iter().map(|(k, v)| (k, v)))?,
        },
        other => return Err(NotEncodable::Term(kind(other))),
    }
    Ok(())
}

/// The module of a struct (`%{__struct__: module}` with an atom: Jason's struct
/// dispatch; a non-atom `__struct__` makes the map an ordinary map, as in Elixir).
fn struct_name(entries: &[(Term, Term)]) -> Option<&str> {
    entries.iter().find_map(|(key, value)| match (key, value) {
        (key, Term::Atom(module)) if key.is_atom("__struct__") => Some(module.as_str()),
        _ => None,
    })
}

/// An object from key/value pairs, in the order given.
pub(crate) fn write_object<'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a Term, &'a Term)>,
) -> Result<(), NotEncodable> {
    out.push('{');
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_key(out, key)?;
        out.push(':');
        write_value(out, value)?;
    }
    out.push('}');
    Ok(())
}

/// A key by Jason's `key/2`: binaries and atoms as they are, anything else through
/// `String.Chars` (integers, floats, charlists; other terms have no `to_string`).
fn write_key(out: &mut String, key: &Term) -> Result<(), NotEncodable> {
    match key {
        Term::Binary(bytes) => write_string(out, utf8(bytes)?),
        Term::Atom(name) => write_string(out, name),
        Term::Int(value) => {
            let _ = write!(out, "\"{value}\"");
        }
        Term::BigInt {
            negative,
            magnitude,
        } => {
            out.push('"');
            write_big(out, *negative, magnitude)?;
            out.push('"');
        }
        Term::Float(value) => {
            out.push('"');
            write_float(out, *value);
            out.push('"');
        }
        Term::List(_) => {
            let mut text = String::new();
            chardata(&mut text, key)?;
            write_string(out, &text);
        }
        other => return Err(NotEncodable::Key(kind(other))),
    }
    Ok(())
}

/// `List.to_string/1`: a list of code points and binaries, nested.
fn chardata(text: &mut String, term: &Term) -> Result<(), NotEncodable> {
    match term {
        Term::List(items) => items.iter().try_for_each(|item| chardata(text, item)),
        Term::Binary(bytes) => {
            text.push_str(utf8(bytes)?);
            Ok(())
        }
        Term::Int(code) => {
            let c = u32::try_from(*code)
                .ok()
                .and_then(char::from_u32)
                .ok_or(NotEncodable::Key("list that is not text"))?;
            text.push(c);
            Ok(())
        }
        _ => Err(NotEncodable::Key("list that is not text")),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, NotEncodable> {
    std::str::from_utf8(bytes).map_err(|_| NotEncodable::NotUtf8)
}

fn write_big(out: &mut String, negative: bool, magnitude: &[u8]) -> Result<(), NotEncodable> {
    if magnitude.len() > MAX_BIG_BYTES {
        return Err(NotEncodable::BigInteger(magnitude.len()));
    }
    if negative {
        out.push('-');
    }
    out.push_str(&decimal(magnitude));
    Ok(())
}

/// A JSON string with Jason's `:json` escapes.
pub(crate) fn write_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    let mut plain = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape: Option<&str> = match byte {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            b'\t' => Some("\\t"),
            b'\n' => Some("\\n"),
            0x0c => Some("\\f"),
            b'\r' => Some("\\r"),
            0x00..=0x1f => None,
            _ => continue,
        };
        // Bytes below 0x80 are whole characters, so `at` is a char boundary.
        out.push_str(&text[plain..at]);
        match escape {
            Some(escape) => out.push_str(escape),
            None => {
                let _ = write!(out, "\\u{byte:04X}");
            }
        }
        plain = at + 1;
    }
    out.push_str(&text[plain..]);
    out.push('"');
}

/// The shortest digits that read back as `value` (positive, finite, not zero), without
/// leading or trailing zeros, and the power of ten of the first one. From Ryū (the
/// `ryu` crate), the algorithm OTP's `float_to_binary(_, [short])` runs too: when two
/// shortest forms are equally near, both pick the even one (Rust's own `{:e}` rounds such
/// ties up, and would print `…437.313` where Erlang prints `…437.312`).
fn shortest(value: f64) -> (String, i64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value);
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{int}{frac}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_matches('0');
    // The point sits after `int`; each leading zero moves the first digit one place down.
    let first = i64::try_from(int.len()).unwrap_or(0) - 1 - i64::try_from(leading).unwrap_or(0);
    (digits.to_owned(), first + exponent)
}

/// `:erlang.float_to_binary(value, [:short])`: the shortest digits that read back as
/// the same double, written in fixed notation when that is no longer than scientific
/// (ties go to fixed), except that integral values of 2^53 and beyond are always
/// scientific (no digits are implied that the double does not hold).
pub(crate) fn write_float(out: &mut String, value: f64) {
    if value == 0.0 {
        out.push_str(if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        });
        return;
    }
    if value.is_sign_negative() {
        out.push('-');
    }
    let (digits, exponent) = shortest(value.abs());
    let len = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    // The power of ten of the last digit.
    let place = exponent - (len - 1);
    let exponent_text = exponent.to_string();
    let scientific_len = if len == 1 { 3 } else { len + 1 } + 1 + exponent_text.len() as i64;
    let sci = |out: &mut String| {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if len == 1 { "0" } else { &digits[1..] });
        out.push('e');
        out.push_str(&exponent_text);
    };
    if place < 0 {
        if exponent >= 0 {
            // Digits on both sides of the point: always shorter than scientific.
            let point = usize::try_from(exponent + 1).unwrap_or(0);
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        } else if 1 - exponent + len <= scientific_len {
            out.push_str("0.");
            for _ in 0..(-exponent - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            sci(out);
        }
    } else if value.abs() < 9_007_199_254_740_992.0 && len + place + 2 <= scientific_len {
        out.push_str(&digits);
        for _ in 0..place {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        sci(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(term: &Term) -> Result<String, NotEncodable> {
        let mut out = String::new();
        write_value(&mut out, term).map(|()| out)
    }

    #[test]
    fn floats_print_like_float_to_binary_short() {
        // Printed by OTP 25: [float_to_binary(F, [short]) || F <- [...]]. (The writer
        // also matched OTP 25 on 300 000 random doubles, checked once by hand.)
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (100.0, "100.0"),
            (10000.0, "1.0e4"),
            (1000.0, "1.0e3"),
            (12345.0, "12345.0"),
            (100000.0, "1.0e5"),
            (15000.0, "1.5e4"),
            (150000.0, "1.5e5"),
            (1.0e15, "1.0e15"),
            (1.0e16, "1.0e16"),
            (123456789012345678.0, "1.2345678901234568e17"),
            (9007199254740992.0, "9.007199254740992e15"),
            (9007199254740991.0, "9007199254740991.0"),
            (1.0e20, "1.0e20"),
            (1.0e22, "1.0e22"),
            (1.0e-4, "0.0001"),
            (1.0e-5, "1.0e-5"),
            (0.001, "0.001"),
            (-2.25e-5, "-2.25e-5"),
            (1.7976931348623157e308, "1.7976931348623157e308"),
            (5.0e-324, "5.0e-324"),
            (123.456, "123.456"),
            (1.0e100, "1.0e100"),
            (0.000123, "1.23e-4"),
            (0.00123, "0.00123"),
            (12345678.9, "12345678.9"),
            (-1.5, "-1.5"),
            (2.0e-7, "2.0e-7"),
            // Two shortest forms equally near (…437.3125 exactly): the even one.
            (150_810_374_390_997.0 / 16.0, "9425648399437.312"),
        ];
        for &(value, expected) in cases {
            let mut out = String::new();
            write_float(&mut out, value);
            assert_eq!(out, expected, "{value:e}");
        }
    }

    #[test]
    fn strings_take_jasons_json_escapes() {
        let mut out = String::new();
        write_string(
            &mut out,
            "a\"b\\c/\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é😀\u{2028}</script>",
        );
        assert_eq!(
            out,
            "\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\\u001F\u{7f}é😀\u{2028}</script>\""
        );
    }

    #[test]
    fn atoms_binaries_numbers_and_lists() {
        let term = Term::List(vec![
            Term::atom("nil"),
            Term::atom("true"),
            Term::atom("false"),
            Term::atom("Elixir.MyApp.Role"),
            Term::binary("s"),
            Term::Int(-7),
            Term::BigInt {
                negative: true,
                magnitude: vec![0, 0, 0, 0, 0, 0, 0, 0, 0x40],
            },
            Term::List(vec![Term::Int(97), Term::Int(98)]),
        ]);
        assert_eq!(
            json(&term).unwrap(),
            r#"[null,true,false,"Elixir.MyApp.Role","s",-7,-1180591620717411303424,[97,98]]"#
        );
    }

    #[test]
    fn keys_are_written_by_to_string_and_duplicates_kept() {
        let map = Term::Map(vec![
            (Term::Int(1), Term::Int(1)),
            (Term::Float(1.5), Term::Int(2)),
            (Term::atom("nil"), Term::Int(3)),
            (
                Term::List(vec![Term::Int(97), Term::binary("b")]),
                Term::Int(4),
            ),
            (Term::atom("id"), Term::Int(5)),
            (Term::binary("id"), Term::Int(6)),
        ]);
        assert_eq!(
            json(&map).unwrap(),
            r#"{"1":1,"1.5":2,"nil":3,"ab":4,"id":5,"id":6}"#
        );
        let tuple_key = Term::Map(vec![(Term::Tuple(vec![]), Term::Int(1))]);
        assert_eq!(json(&tuple_key), Err(NotEncodable::Key("tuple")));
    }

    #[test]
    fn what_jason_cannot_encode_is_refused_with_its_kind() {
        let pid = crate::etf::decode(&[
            131, 88, 119, 13, b'n', b'o', b'n', b'o', b'd', b'e', b'@', b'n', b'o', b'h', b'o',
            b's', b't', 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0,
        ])
        .unwrap();
        let cases = [
            (Term::Tuple(vec![Term::Int(1)]), NotEncodable::Term("tuple")),
            (pid, NotEncodable::Term("pid")),
            (
                Term::ImproperList(vec![Term::Int(1), Term::Int(2)]),
                NotEncodable::Term("improper list"),
            ),
            (Term::Binary(vec![0xff]), NotEncodable::NotUtf8),
            (
                Term::BigInt {
                    negative: false,
                    magnitude: vec![1; MAX_BIG_BYTES + 1],
                },
                NotEncodable::BigInteger(MAX_BIG_BYTES + 1),
            ),
        ];
        for (term, error) in cases {
            let nested = Term::Map(vec![(Term::binary("k"), Term::List(vec![term]))]);
            assert_eq!(json(&nested), Err(error));
        }
    }
}
