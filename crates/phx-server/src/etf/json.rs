//! JSON to terms: the term an Elixir app holds after `Jason.decode!/1` of the same JSON,
//! so that what phx-rs writes reads on the Elixir side as if Elixir had decoded it.

use serde_json::Value;

use super::Term;

/// Objects become maps with binary (string) keys, arrays lists, strings binaries,
/// numbers integers or floats, `true`/`false`/`null` the atoms `true`/`false`/`nil`.
pub(crate) fn from_json(value: &Value) -> Term {
    match value {
        Value::Null => Term::atom("nil"),
        Value::Bool(flag) => Term::Atom(flag.to_string()),
        Value::Number(number) => {
            if let Some(value) = number.as_i64() {
                Term::Int(value)
            } else if let Some(value) = number.as_u64() {
                Term::from_u64(value)
            } else {
                // serde_json numbers are i64, u64 or finite f64.
                Term::Float(number.as_f64().unwrap_or_default())
            }
        }
        Value::String(text) => Term::binary(text),
        Value::Array(items) => Term::List(items.iter().map(from_json).collect()),
        Value::Object(object) => {
            // term_to_binary writes a map of up to 32 keys in Erlang term order, which
            // for binaries is byte order (a prefix first). serde_json may keep insertion
            // order (feature `preserve_order`), so sort here. Larger maps are written by
            // Erlang in its internal hash order; sorted order decodes to the same map.
            let mut entries: Vec<(&String, &Value)> = object.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            Term::Map(
                entries
                    .into_iter()
                    .map(|(key, value)| (Term::binary(key), from_json(value)))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_are_written_with_keys_in_byte_order() {
        let term = from_json(&json!({"b": 1, "a": 2, "ab": 3, "B": 4, "": 5}));
        let keys: Vec<Term> = match term {
            Term::Map(entries) => entries.into_iter().map(|(key, _)| key).collect(),
            other => panic!("not a map: {other:?}"),
        };
        let expected: Vec<Term> = ["", "B", "a", "ab", "b"].map(Term::binary).to_vec();
        assert_eq!(keys, expected);
    }

    #[test]
    fn scalars_become_what_jason_decodes_them_to() {
        assert_eq!(
            from_json(&json!([null, true, false, 1, -1, 1.5, u64::MAX, "s"])),
            Term::List(vec![
                Term::atom("nil"),
                Term::atom("true"),
                Term::atom("false"),
                Term::Int(1),
                Term::Int(-1),
                Term::Float(1.5),
                Term::from_u64(u64::MAX),
                Term::binary("s"),
            ])
        );
    }
}
