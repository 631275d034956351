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

use super::jason::{write_object, write_string, NotEncodable};

/// The largest `Decimal` exponent written: `Decimal.new(1, 1, 10_000_000)` would print
/// ten million zeros.
const MAX_DECIMAL_EXPONENT: i64 = 1_000;

/// Writes the struct `module` whose fields are `entries`.
pub(crate) fn write(
    out: &mut String,
    module: &str,
    entries: &[(Term, Term)],
) -> Result<(), NotEncodable> {
    let fields = Fields(entries);
    match module {
        "Elixir.Date" => {
            let text = date(&fields).ok_or(NotEncodable::MalformedStruct("Date"))?;
            write_string(out, &text);
        }
        "Elixir.Time" => {
            let text = time(&fields).ok_or(NotEncodable::MalformedStruct("Time"))?;
            write_string(out, &text);
        }
        "Elixir.NaiveDateTime" => {
            let text =
                naive_datetime(&fields).ok_or(NotEncodable::MalformedStruct("NaiveDateTime"))?;
            write_string(out, &text);
        }
        "Elixir.DateTime" => {
            let text = datetime(&fields).ok_or(NotEncodable::MalformedStruct("DateTime"))?;
            write_string(out, &text);
        }
        "Elixir.Decimal" => {
            let text = decimal_normal(&fields).ok_or(NotEncodable::MalformedStruct("Decimal"))?;
            write_string(out, &text);
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
            write_object(out, pairs.into_iter())?;
        }
        other => {
            let name = other.strip_prefix("Elixir.").unwrap_or(other);
            return Err(NotEncodable::Struct(name.to_owned()));
        }
    }
    Ok(())
}

/// A struct's fields by atom name.
struct Fields<'a>(&'a [(Term, Term)]);

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&Term> {
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
        } if magnitude.len() <= super::jason::MAX_BIG_BYTES => decimal(magnitude),
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

#[cfg(test)]
mod tests {
    use super::super::jason::write_value;
    use super::*;

    fn strukt(module: &str, fields: Vec<(&str, Term)>) -> Term {
        let mut entries = vec![(Term::atom("__struct__"), Term::atom(module))];
        entries.extend(fields.into_iter().map(|(k, v)| (Term::atom(k), v)));
        Term::Map(entries)
    }

    fn iso() -> (&'static str, Term) {
        ("calendar", Term::atom("Elixir.Calendar.ISO"))
    }

    fn micro(value: i64, precision: i64) -> (&'static str, Term) {
        (
            "microsecond",
            Term::Tuple(vec![Term::Int(value), Term::Int(precision)]),
        )
    }

    fn date_fields(y: i64, m: i64, d: i64) -> Vec<(&'static str, Term)> {
        vec![
            iso(),
            ("year", Term::Int(y)),
            ("month", Term::Int(m)),
            ("day", Term::Int(d)),
        ]
    }

    fn time_fields(h: i64, m: i64, s: i64, us: i64, p: i64) -> Vec<(&'static str, Term)> {
        vec![
            ("hour", Term::Int(h)),
            ("minute", Term::Int(m)),
            ("second", Term::Int(s)),
            micro(us, p),
        ]
    }

    fn json(term: &Term) -> Result<String, NotEncodable> {
        let mut out = String::new();
        write_value(&mut out, term).map(|()| out)
    }

    #[test]
    fn calendar_structs_print_as_to_iso8601() {
        assert_eq!(
            json(&strukt("Elixir.Date", date_fields(2026, 12, 5))).unwrap(),
            r#""2026-12-05""#
        );
        assert_eq!(
            json(&strukt("Elixir.Date", date_fields(-44, 3, 15))).unwrap(),
            r#""-0044-03-15""#
        );
        let mut t = vec![iso()];
        t.extend(time_fields(10, 0, 7, 120_000, 3));
        assert_eq!(
            json(&strukt("Elixir.Time", t)).unwrap(),
            r#""10:00:07.120""#
        );
        let mut n = date_fields(2026, 1, 2);
        n.extend(time_fields(3, 4, 5, 0, 0));
        assert_eq!(
            json(&strukt("Elixir.NaiveDateTime", n)).unwrap(),
            r#""2026-01-02T03:04:05""#
        );
        let datetime = |zone: &str, utc: i64, std: i64, us: i64, p: i64| {
            let mut d = date_fields(2026, 12, 5);
            d.extend(time_fields(10, 0, 7, us, p));
            d.extend([
                ("time_zone", Term::binary(zone)),
                ("zone_abbr", Term::binary("X")),
                ("utc_offset", Term::Int(utc)),
                ("std_offset", Term::Int(std)),
            ]);
            json(&strukt("Elixir.DateTime", d)).unwrap()
        };
        assert_eq!(
            datetime("Etc/UTC", 0, 0, 123_456, 6),
            r#""2026-12-05T10:00:07.123456Z""#
        );
        assert_eq!(
            datetime("Europe/Paris", 3600, 3600, 0, 0),
            r#""2026-12-05T10:00:07+02:00""#
        );
        assert_eq!(
            datetime("America/St_Johns", -12_600, 0, 0, 0),
            r#""2026-12-05T10:00:07-03:30""#
        );
        assert_eq!(
            datetime("Europe/London", 0, 0, 0, 0),
            r#""2026-12-05T10:00:07+00:00""#
        );
    }

    #[test]
    fn malformed_or_foreign_calendar_structs_are_refused() {
        let mut other = date_fields(2026, 1, 1);
        other[0] = ("calendar", Term::atom("Elixir.Calendar.Holocene"));
        assert_eq!(
            json(&strukt("Elixir.Date", other)),
            Err(NotEncodable::MalformedStruct("Date"))
        );
        let mut t = vec![iso()];
        t.extend(time_fields(1, 2, 3, 5, 7));
        assert_eq!(
            json(&strukt("Elixir.Time", t)),
            Err(NotEncodable::MalformedStruct("Time"))
        );
    }

    #[test]
    fn decimals_print_as_to_string_normal() {
        let dec = |sign: i64, coef: Term, exp: i64| {
            json(&strukt(
                "Elixir.Decimal",
                vec![
                    ("sign", Term::Int(sign)),
                    ("coef", coef),
                    ("exp", Term::Int(exp)),
                ],
            ))
        };
        assert_eq!(dec(-1, Term::Int(150), -2).unwrap(), r#""-1.50""#);
        assert_eq!(dec(1, Term::Int(123), 2).unwrap(), r#""12300""#);
        assert_eq!(dec(1, Term::Int(5), -3).unwrap(), r#""0.005""#);
        assert_eq!(dec(1, Term::Int(0), 0).unwrap(), r#""0""#);
        assert_eq!(dec(-1, Term::atom("inf"), 0).unwrap(), r#""-Infinity""#);
        assert_eq!(dec(1, Term::atom("NaN"), 0).unwrap(), r#""NaN""#);
        assert_eq!(
            dec(1, Term::Int(1), 10_000_000),
            Err(NotEncodable::MalformedStruct("Decimal"))
        );
    }

    #[test]
    fn ordered_objects_keep_their_order_and_other_structs_are_refused() {
        let ordered = strukt(
            "Elixir.Jason.OrderedObject",
            vec![(
                "values",
                Term::List(vec![
                    Term::Tuple(vec![Term::atom("b"), Term::Int(1)]),
                    Term::Tuple(vec![Term::binary("a"), Term::Int(2)]),
                ]),
            )],
        );
        assert_eq!(json(&ordered).unwrap(), r#"{"b":1,"a":2}"#);
        let user = strukt("Elixir.MyApp.User", vec![("name", Term::binary("ann"))]);
        assert_eq!(
            json(&user),
            Err(NotEncodable::Struct("MyApp.User".to_owned()))
        );
    }
}
