//! The structs Jason encodes without a `@derive`: the calendar types (as
//! `to_iso8601/1` prints them for `Calendar.ISO`), `Decimal` and `Jason.OrderedObject`.
//!
//! | struct | JSON |
//! |---|---|
//! | `~D[2026-12-05]` | `"2026-12-05"` |
//! | `~T[10:00:07.120]` | `"10:00:07.120"` (as many fraction digits as the precision) |
//! | `~N[2026-01-02 03:04:05]` | `"2026-01-02T03:04:05"` |
//! | `~U[2026-12-05 10:00:00Z]` | `"2026-12-05T10:00:00Z"`; another zone: `"…+01:00"` |
//! | `Decimal.new("-1.50")` | `"-1.50"` (`Decimal.to_string(d, :normal)`) |
//! | `%Jason.OrderedObject{values: [b: 1, a: 2]}` | `{"b":1,"a":2}` |
//!
//! A calendar struct of another calendar than `Calendar.ISO` is not encodable here
//! (Elixir would convert it through its calendar module).

use std::fmt::Write as _;

use crate::etf::{decimal, Term};

use super::not_encodable::{NotEncodable, MAX_BIG_BYTES};

/// The largest `Decimal` exponent written: `Decimal.new(1, 1, 10_000_000)` would print
/// ten million zeros.
const MAX_DECIMAL_EXPONENT: i64 = 1_000;

/// A struct's JSON form: a string, or an object whose values the JSON writer writes
/// (they are terms again, possibly structs).
#[derive(Debug, PartialEq)]
pub(crate) enum StructJson<'a> {
    /// A JSON string (the text, unescaped).
    Text(String),
    /// A JSON object from these pairs, in this order.
    Object(Vec<(&'a Term, &'a Term)>),
}

/// The JSON form of the struct `module` whose fields are `entries`.
pub(crate) fn encode<'a>(
    module: &str,
    entries: &'a [(Term, Term)],
) -> Result<StructJson<'a>, NotEncodable> {
    let fields = Fields(entries);
    let text = match module {
        "Elixir.Date" => date(&fields).ok_or(NotEncodable::MalformedStruct("Date"))?,
        "Elixir.Time" => time(&fields).ok_or(NotEncodable::MalformedStruct("Time"))?,
        "Elixir.NaiveDateTime" => {
            naive_datetime(&fields).ok_or(NotEncodable::MalformedStruct("NaiveDateTime"))?
        }
        "Elixir.DateTime" => datetime(&fields).ok_or(NotEncodable::MalformedStruct("DateTime"))?,
        "Elixir.Decimal" => {
            decimal_normal(&fields).ok_or(NotEncodable::MalformedStruct("Decimal"))?
        }
        "Elixir.Jason.OrderedObject" => {
            let Some(Term::List(values)) = fields.get("values") else {
                return Err(NotEncodable::MalformedStruct("Jason.OrderedObject"));
            };
            let pairs = values
                .iter()
                .map(|pair| match pair {
                    Term::Tuple(kv) => match kv.as_slice() {
                        [key, value] => Some((key, value)),
                        _ => None,
                    },
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or(NotEncodable::MalformedStruct("Jason.OrderedObject"))?;
            return Ok(StructJson::Object(pairs));
        }
        other => {
            let name = other.strip_prefix("Elixir.").unwrap_or(other);
            return Err(NotEncodable::Struct(name.to_owned()));
        }
    };
    Ok(StructJson::Text(text))
}

/// A struct's fields by atom name.
struct Fields<'a>(&'a [(Term, Term)]);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Term> {
        self.0
            .iter()
            .find_map(|(key, value)| key.is_atom(name).then_some(value))
    }
    fn int(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Term::Int(value) => Some(*value),
            _ => None,
        }
    }
    fn iso(&self) -> Option<()> {
        self.get("calendar")?
            .is_atom("Elixir.Calendar.ISO")
            .then_some(())
    }
}

/// Calendar.ISO's `zero_pad/2`: at least `count` digits, a `-` before negatives.
fn zero_pad(out: &mut String, value: i64, count: usize) {
    if value < 0 {
        out.push('-');
    }
    let _ = write!(out, "{:0count$}", value.unsigned_abs());
}

fn date(fields: &Fields<'_>) -> Option<String> {
    fields.iso()?;
    let mut out = String::with_capacity(10);
    write_date(&mut out, fields)?;
    Some(out)
}

fn write_date(out: &mut String, fields: &Fields<'_>) -> Option<()> {
    zero_pad(out, fields.int("year")?, 4);
    out.push('-');
    zero_pad(out, fields.int("month")?, 2);
    out.push('-');
    zero_pad(out, fields.int("day")?, 2);
    Some(())
}

fn time(fields: &Fields<'_>) -> Option<String> {
    fields.iso()?;
    let mut out = String::with_capacity(15);
    write_time(&mut out, fields)?;
    Some(out)
}

/// `HH:MM:SS`, then `.` and the first `precision` digits of the six-digit microseconds
/// when the precision is not 0.
fn write_time(out: &mut String, fields: &Fields<'_>) -> Option<()> {
    zero_pad(out, fields.int("hour")?, 2);
    out.push(':');
    zero_pad(out, fields.int("minute")?, 2);
    out.push(':');
    zero_pad(out, fields.int("second")?, 2);
    let Term::Tuple(microsecond) = fields.get("microsecond")? else {
        return None;
    };
    let [Term::Int(value), Term::Int(precision)] = microsecond.as_slice() else {
        return None;
    };
    if !(0..=999_999).contains(value) || !(0..=6).contains(precision) {
        return None;
    }
    if *precision > 0 {
        let digits = format!("{value:06}");
        out.push('.');
        out.push_str(&digits[..usize::try_from(*precision).ok()?]);
    }
    Some(())
}

fn naive_datetime(fields: &Fields<'_>) -> Option<String> {
    fields.iso()?;
    let mut out = String::with_capacity(26);
    write_date(&mut out, fields)?;
    out.push('T');
    write_time(&mut out, fields)?;
    Some(out)
}

/// `DateTime.to_iso8601/1`: `Z` for UTC itself (`Etc/UTC` with no offset), else the
/// total offset as `±HH:MM`.
fn datetime(fields: &Fields<'_>) -> Option<String> {
    let mut out = naive_datetime(fields)?;
    let utc = fields.int("utc_offset")?;
    let std = fields.int("std_offset")?;
    let Term::Binary(zone) = fields.get("time_zone")? else {
        return None;
    };
    if utc == 0 && std == 0 && zone == b"Etc/UTC" {
        out.push('Z');
    } else {
        let total = utc.checked_add(std)?;
        let seconds = total.unsigned_abs();
        out.push(if total < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}:{:02}", seconds / 3600, seconds % 3600 / 60);
    }
    Some(out)
}

/// `Decimal.to_string(d, :normal)`.
fn decimal_normal(fields: &Fields<'_>) -> Option<String> {
    let negative = match fields.int("sign")? {
        1 => false,
        -1 => true,
        _ => return None,
    };
    let sign = if negative { "-" } else { "" };
    let digits = match fields.get("coef")? {
        Term::Int(coef) if *coef >= 0 => coef.to_string(),
        Term::BigInt {
            negative: false,
            magnitude,
        } if magnitude.len() <= MAX_BIG_BYTES => decimal(magnitude),
        Term::Atom(special) => {
            let name = match special.as_str() {
                "NaN" | "qNaN" => "NaN",
                "sNaN" => "sNaN",
                "inf" => "Infinity",
                _ => return None,
            };
            return Some(format!("{sign}{name}"));
        }
        _ => return None,
    };
    let exp = fields.int("exp")?;
    if exp.abs() > MAX_DECIMAL_EXPONENT {
        return None;
    }
    let mut out = String::from(sign);
    let len = i64::try_from(digits.len()).ok()?;
    if exp >= 0 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', usize::try_from(exp).ok()?));
    } else if len + exp > 0 {
        let point = usize::try_from(len + exp).ok()?;
        out.push_str(&digits[..point]);
        out.push('.');
        out.push_str(&digits[point..]);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n(
            '0',
            usize::try_from(-(len + exp)).ok()?,
        ));
        out.push_str(&digits);
    }
    Some(out)
}
