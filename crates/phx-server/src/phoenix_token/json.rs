//! The mapping between token data (Erlang terms) and `serde_json::Value`; the table is
//! in the module docs of `phoenix_token`. Every JSON value maps back to itself, so data
//! phx-rs signs verifies to exactly what was signed; atoms, tuples and big integers come
//! out of verification as strings, arrays and strings, and would be signed back as such.

use serde_json::{Map, Number, Value};

use crate::etf::{decimal, tag_name, Term, TermError};

/// Integers up to this many bytes (2 466 decimal digits) are rendered as strings; larger
/// ones are refused, which bounds the quadratic decimal conversion.
pub const MAX_BIG_BYTES: usize = 1024;

/// Converts token data to JSON by the table in the module docs.
pub(crate) fn to_json(term: Term) -> Result<Value, TermError> {
    Ok(match term {
        Term::Int(value) => Value::from(value),
        Term::BigInt {
            negative,
            magnitude,
        } => big_to_json(negative, &magnitude)?,
        Term::Float(value) => Number::from_f64(value)
            .map(Value::Number)
            .ok_or(TermError::NonFiniteFloat)?,
        Term::Atom(name) => match name.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "nil" => Value::Null,
            _ => Value::String(name),
        },
        Term::Binary(bytes) => Value::String(utf8(bytes)?),
        Term::ImproperList(..) => return Err(TermError::ImproperList),
        Term::Opaque { tag, .. } => {
            return Err(TermError::Unsupported {
                tag,
                name: tag_name(tag),
            })
        }
        Term::List(items) | Term::Tuple(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Term::Map(entries) => {
            let mut object = Map::with_capacity(entries.len());
            for (key, value) in entries {
                let key = match key {
                    Term::Atom(name) => name,
                    Term::Binary(bytes) => utf8(bytes)?,
                    _ => return Err(TermError::UnsupportedMapKey),
                };
                if object.contains_key(&key) {
                    return Err(TermError::DuplicateKey(key));
                }
                object.insert(key, to_json(value)?);
            }
            Value::Object(object)
        }
    })
}

fn utf8(bytes: Vec<u8>) -> Result<String, TermError> {
    String::from_utf8(bytes).map_err(|_| TermError::NonUtf8Binary)
}

/// A big integer as a JSON number when it fits `u64` (or `i64` when negative), else as
/// a string of decimal digits.
fn big_to_json(negative: bool, magnitude: &[u8]) -> Result<Value, TermError> {
    if magnitude.len() <= 8 {
        let mut word = [0u8; 8];
        word[..magnitude.len()].copy_from_slice(magnitude);
        let value = u64::from_le_bytes(word);
        if !negative {
            return Ok(Value::from(value));
        }
        if let Some(value) = 0i64.checked_sub_unsigned(value) {
            return Ok(Value::from(value));
        }
    }
    if magnitude.len() > MAX_BIG_BYTES {
        return Err(TermError::IntegerTooLarge(magnitude.len()));
    }
    let digits = decimal(magnitude);
    Ok(Value::String(if negative {
        format!("-{digits}")
    } else {
        digits
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::etf::json::from_json;

    fn bin(s: &str) -> Term {
        Term::Binary(s.as_bytes().to_vec())
    }

    #[test]
    fn atoms_become_booleans_null_or_strings() {
        let term = Term::List(vec![
            Term::Atom("true".into()),
            Term::Atom("false".into()),
            Term::Atom("nil".into()),
            Term::Atom("admin".into()),
        ]);
        assert_eq!(to_json(term), Ok(json!([true, false, null, "admin"])));
    }

    #[test]
    fn tuples_and_charlists_become_arrays() {
        let term = Term::Tuple(vec![
            Term::Atom("ok".into()),
            Term::List(vec![Term::Int(97), Term::Int(98)]),
        ]);
        assert_eq!(to_json(term), Ok(json!(["ok", [97, 98]])));
    }

    #[test]
    fn maps_take_atom_and_string_keys_and_refuse_others() {
        let term = Term::Map(vec![
            (Term::Atom("user_id".into()), Term::Int(1)),
            (bin("role"), bin("admin")),
        ]);
        assert_eq!(to_json(term), Ok(json!({"user_id": 1, "role": "admin"})));
        let integer_key = Term::Map(vec![(Term::Int(1), Term::Int(2))]);
        assert_eq!(to_json(integer_key), Err(TermError::UnsupportedMapKey));
        let clash = Term::Map(vec![
            (Term::Atom("id".into()), Term::Int(1)),
            (bin("id"), Term::Int(2)),
        ]);
        assert_eq!(to_json(clash), Err(TermError::DuplicateKey("id".into())));
    }

    #[test]
    fn non_utf8_binaries_are_refused() {
        assert_eq!(
            to_json(Term::Binary(vec![0xff, 0xfe])),
            Err(TermError::NonUtf8Binary)
        );
    }

    #[test]
    fn big_integers_are_numbers_when_they_fit_and_decimal_strings_otherwise() {
        let u64_max = Term::BigInt {
            negative: false,
            magnitude: vec![0xff; 8],
        };
        assert_eq!(to_json(u64_max), Ok(json!(u64::MAX)));
        // 2^64 and -(2^64)
        let mut two_64 = vec![0; 8];
        two_64.push(1);
        let positive = Term::BigInt {
            negative: false,
            magnitude: two_64.clone(),
        };
        assert_eq!(to_json(positive), Ok(json!("18446744073709551616")));
        let negative = Term::BigInt {
            negative: true,
            magnitude: two_64,
        };
        assert_eq!(to_json(negative), Ok(json!("-18446744073709551616")));
        // 10^30, little-endian.
        let magnitude = vec![
            0x00, 0x00, 0x00, 0x40, 0xea, 0xed, 0x74, 0x46, 0xd0, 0x9c, 0x2c, 0x9f, 0x0c,
        ];
        let term = Term::BigInt {
            negative: false,
            magnitude,
        };
        assert_eq!(to_json(term), Ok(json!(format!("1{}", "0".repeat(30)))));
        let huge = Term::BigInt {
            negative: false,
            magnitude: vec![1; MAX_BIG_BYTES + 1],
        };
        assert_eq!(
            to_json(huge),
            Err(TermError::IntegerTooLarge(MAX_BIG_BYTES + 1))
        );
    }

    #[test]
    fn json_maps_back_to_itself() {
        let value = json!({
            "n": null, "t": true, "f": false, "small": 7, "neg": -70000,
            "big": u64::MAX, "min": i64::MIN, "float": -2.5, "s": "hé",
            "bytes": [1, 2, 3], "mixed": [1, "two", 3.5, [], {}],
        });
        assert_eq!(to_json(from_json(&value)), Ok(value));
    }
}
