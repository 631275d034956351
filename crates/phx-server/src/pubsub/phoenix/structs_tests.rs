//! The structs Jason encodes without a `@derive`, through the whole JSON writer.

use super::jason::write_value;
use super::not_encodable::NotEncodable;
use crate::etf::Term;

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
