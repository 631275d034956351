//! Connect params: the query string decoded with Plug's rules (§1.2).
//!
//! phoenix.js serializes nested objects as `key[sub]=v`, so `a[b]=1` must become
//! `{"a": {"b": "1"}}`. All leaves are strings, duplicate keys resolve to the last one
//! (load-bearing for long poll, whose session `token` is appended after the app's own),
//! `a[]=x&a[]=y` builds a list, and empty segments are ignored.

use serde_json::{Map, Value};

/// Decoded connect params, as the app's connect hook sees them (including `vsn`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(Map<String, Value>);

impl Params {
    /// Decodes a raw (still percent-encoded) query string.
    ///
    /// ```
    /// let p = phx_server::Params::from_query("token=abc&nested%5Ba%5D=1&vsn=2.0.0");
    /// assert_eq!(p.get_str("token"), Some("abc"));
    /// assert_eq!(p.get("nested").unwrap()["a"], "1");
    /// ```
    pub fn from_query(query: &str) -> Self {
        let mut map = Map::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            insert(&mut map, &key, Value::String(value.into_owned()));
        }
        Self(map)
    }

    /// A param by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A param by key, when it is a string leaf.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// All params as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// Splits `a[b][]` into `("a", ["b", ""])`. A key whose brackets do not close is taken
/// literally, as Plug does.
fn split_key(key: &str) -> (&str, Vec<&str>) {
    let Some(open) = key.find('[') else {
        return (key, Vec::new());
    };
    let (head, mut rest) = key.split_at(open);
    let mut parts = Vec::new();
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            return (key, Vec::new());
        };
        parts.push(&stripped[..close]);
        rest = &stripped[close + 1..];
    }
    if !rest.is_empty() || head.is_empty() {
        return (key, Vec::new());
    }
    (head, parts)
}

fn insert(map: &mut Map<String, Value>, key: &str, value: Value) {
    let (head, parts) = split_key(key);
    insert_path(map, head, &parts, value);
}

fn insert_path(map: &mut Map<String, Value>, key: &str, path: &[&str], value: Value) {
    let Some((next, rest)) = path.split_first() else {
        map.insert(key.to_owned(), value);
        return;
    };
    if next.is_empty() && rest.is_empty() {
        // `a[]=x`: append to a list (a non-list value is replaced, last wins).
        match map.get_mut(key) {
            Some(Value::Array(items)) => items.push(value),
            _ => {
                map.insert(key.to_owned(), Value::Array(vec![value]));
            }
        }
        return;
    }
    let entry = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(child) = entry {
        insert_path(child, next, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_keys_become_maps_with_string_leaves() {
        let p = Params::from_query("a%5Bb%5D=1&a%5Bc%5D%5Bd%5D=x+y&vsn=2.0.0");
        assert_eq!(
            Value::Object(p.0),
            json!({"a": {"b": "1", "c": {"d": "x y"}}, "vsn": "2.0.0"})
        );
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let p = Params::from_query("token=user&vsn=2.0.0&token=session");
        assert_eq!(p.get_str("token"), Some("session"));
    }

    #[test]
    fn empty_segments_ignored_and_lists_built() {
        let p = Params::from_query("&a[]=1&&a[]=2&vsn=2.0.0&");
        assert_eq!(p.get("a"), Some(&json!(["1", "2"])));
        assert_eq!(p.as_map().len(), 2);
    }

    #[test]
    fn phoenix_js_array_params_are_index_maps() {
        let p = Params::from_query("ids%5B0%5D=a&ids%5B1%5D=b");
        assert_eq!(p.get("ids"), Some(&json!({"0": "a", "1": "b"})));
    }

    #[test]
    fn unclosed_bracket_is_literal() {
        let p = Params::from_query("a[b=1");
        assert_eq!(p.get_str("a[b"), Some("1"));
    }
}
