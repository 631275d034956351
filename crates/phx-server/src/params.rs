//! Connect params: the query string decoded with Plug's rules (§1.2).
//!
//! phoenix.js serializes nested objects as `key[sub]=v`, so `a[b]=1` must become
//! `{"a": {"b": "1"}}`. All leaves are strings, duplicate keys resolve to the last one
//! (load-bearing for long poll, whose session `token` is appended after the app's own),
//! `a[]=x&a[]=y` builds a list, and empty segments are ignored.
//!
//! A key may nest at most [`Params::MAX_DEPTH`] levels: the decoder walks the key in a
//! loop (no recursion), and the cap keeps the decoded tree shallow, so neither decoding
//! nor dropping it can use stack in proportion to the input.

use serde_json::{Map, Value};

/// Decoded connect params, as the app's connect hook sees them (including `vsn`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(Map<String, Value>);

/// Why a query string is not accepted as connect params. Both transports answer 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// A key with more bracketed segments than [`Params::MAX_DEPTH`] (`a[b][c]` has two).
    #[error("a connect param key is nested {depth} levels deep; at most {limit} are allowed")]
    TooDeep {
        /// Bracketed segments of the refused key.
        depth: usize,
        /// The cap, [`Params::MAX_DEPTH`].
        limit: usize,
    },
}

impl Params {
    /// Deepest nesting a key may have: `a[b][c]=1` has depth 2, `a[]=1` depth 1.
    ///
    /// Plug sets no cap of its own (its recursion runs on the BEAM's growable process
    /// stack, bounded in practice by the server's request line limit). Ours keeps the
    /// decoded tree shallow whatever the request line limit is; phoenix.js params nest
    /// as deep as the app's object, which is a handful of levels in practice.
    pub const MAX_DEPTH: usize = 32;

    /// Decodes a raw (still percent-encoded) query string.
    ///
    /// ```
    /// let p = phx_server::Params::from_query("token=abc&nested%5Ba%5D=1&vsn=2.0.0").unwrap();
    /// assert_eq!(p.get_str("token"), Some("abc"));
    /// assert_eq!(p.get("nested").unwrap()["a"], "1");
    ///
    /// let deep = format!("a{}=1", "[b]".repeat(phx_server::Params::MAX_DEPTH + 1));
    /// assert!(phx_server::Params::from_query(&deep).is_err());
    /// ```
    pub fn from_query(query: &str) -> Result<Self, ParamsError> {
        let mut map = Map::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let (head, path) = split_key(&key);
            if path.len() > Self::MAX_DEPTH {
                return Err(ParamsError::TooDeep {
                    depth: path.len(),
                    limit: Self::MAX_DEPTH,
                });
            }
            insert(&mut map, head, &path, Value::String(value.into_owned()));
        }
        Ok(Self(map))
    }

    /// Params as a connect hook would get them, from a JSON object (what
    /// `connect(UserSocket, %{...})` passes in Phoenix's tests).
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// The params as JSON for a log line, with the values of secret-looking keys
    /// (`password`, `token`, `secret`, `key`, anywhere in the name) replaced by
    /// `[FILTERED]`, as Phoenix's `filter_parameters` does; at most 512 bytes.
    pub(crate) fn filtered(&self) -> String {
        fn filter(value: &Value) -> Value {
            match value {
                Value::Object(map) => Value::Object(
                    map.iter()
                        .map(|(k, v)| {
                            let lower = k.to_ascii_lowercase();
                            let secret = ["password", "token", "secret", "key"]
                                .iter()
                                .any(|s| lower.contains(s));
                            let v = if secret {
                                Value::String("[FILTERED]".into())
                            } else {
                                filter(v)
                            };
                            (k.clone(), v)
                        })
                        .collect(),
                ),
                other => other.clone(),
            }
        }
        let mut text = filter(&Value::Object(self.0.clone())).to_string();
        if text.len() > 512 {
            let mut end = 512;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        text
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
        let Some((part, after)) = stripped.split_once(']') else {
            return (key, Vec::new());
        };
        parts.push(part);
        rest = after;
    }
    if !rest.is_empty() || head.is_empty() {
        return (key, Vec::new());
    }
    (head, parts)
}

/// Stores `value` at `key[path…]`, creating maps on the way (a non-map in the way is
/// replaced: last wins). A loop, not recursion, so stack use does not depend on `path`.
fn insert(root: &mut Map<String, Value>, head: &str, path: &[&str], value: Value) {
    let mut map = root;
    let mut key = head;
    for (i, next) in path.iter().enumerate() {
        if next.is_empty() && i + 1 == path.len() {
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
        let Value::Object(child) = entry else {
            // Unreachable: `entry` was made an object just above.
            return;
        };
        map = child;
        key = next;
    }
    map.insert(key.to_owned(), value);
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_lines_filter_secret_looking_keys_at_any_depth() {
        let p = Params::from_query("user=ann&token=t0k&auth[password]=pw&auth[name]=x&apiKey=k")
            .unwrap();
        let logged: Value = serde_json::from_str(&p.filtered()).unwrap();
        assert_eq!(
            logged,
            json!({
                "user": "ann",
                "token": "[FILTERED]",
                "auth": {"password": "[FILTERED]", "name": "x"},
                "apiKey": "[FILTERED]"
            })
        );
    }

    #[test]
    fn log_lines_are_cut_at_512_bytes_on_a_character_boundary() {
        let short = Params::from_query("a=b").unwrap().filtered();
        assert_eq!(short, r#"{"a":"b"}"#, "short params are whole");
        // {"a":"…"} is 8 bytes around the value.
        let exact = Params::from_query(&format!("a={}", "x".repeat(512 - 8))).unwrap();
        assert_eq!(
            exact.filtered().len(),
            512,
            "exactly 512 bytes are kept whole"
        );
        // `{"a":"x` is 7 bytes, so every `é` (2 bytes) starts at an odd offset and byte
        // 512 falls inside one: the cut moves back to 511, never forward.
        let long = Params::from_query(&format!("a=x{}", "é".repeat(400)))
            .unwrap()
            .filtered();
        assert!(long.ends_with('…'));
        let body = long.strip_suffix('…').unwrap();
        assert_eq!(body.len(), 511);
    }

    #[test]
    fn params_from_a_map_are_that_map() {
        let map = json!({"user_id": "7", "opts": {"a": 1}});
        let p = Params::from_map(map.as_object().unwrap().clone());
        assert_eq!(p.get_str("user_id"), Some("7"));
        assert_eq!(p.get("opts"), Some(&json!({"a": 1})));
        assert_eq!(Value::Object(p.as_map().clone()), map);
    }

    #[test]
    fn brackets_that_do_not_follow_a_name_are_literal() {
        let p = Params::from_query("[a]=1&a[b]x=2").unwrap();
        assert_eq!(p.get_str("[a]"), Some("1"));
        assert_eq!(p.get_str("a[b]x"), Some("2"));
    }

    use super::*;
    use serde_json::json;

    fn params(query: &str) -> Params {
        Params::from_query(query).unwrap()
    }

    #[test]
    fn nested_keys_become_maps_with_string_leaves() {
        let p = params("a%5Bb%5D=1&a%5Bc%5D%5Bd%5D=x+y&vsn=2.0.0");
        assert_eq!(
            Value::Object(p.0),
            json!({"a": {"b": "1", "c": {"d": "x y"}}, "vsn": "2.0.0"})
        );
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let p = params("token=user&vsn=2.0.0&token=session");
        assert_eq!(p.get_str("token"), Some("session"));
    }

    #[test]
    fn empty_segments_ignored_and_lists_built() {
        let p = params("&a[]=1&&a[]=2&vsn=2.0.0&");
        assert_eq!(p.get("a"), Some(&json!(["1", "2"])));
        assert_eq!(p.as_map().len(), 2);
    }

    #[test]
    fn phoenix_js_array_params_are_index_maps() {
        let p = params("ids%5B0%5D=a&ids%5B1%5D=b");
        assert_eq!(p.get("ids"), Some(&json!({"0": "a", "1": "b"})));
    }

    #[test]
    fn unclosed_bracket_is_literal() {
        let p = params("a[b=1");
        assert_eq!(p.get_str("a[b"), Some("1"));
    }

    #[test]
    fn a_scalar_in_the_way_of_a_nested_key_is_replaced() {
        let p = params("a=1&a[b]=2&a[b][c]=3&l[]=x&l[y]=z");
        assert_eq!(p.get("a"), Some(&json!({"b": {"c": "3"}})));
        assert_eq!(p.get("l"), Some(&json!({"y": "z"})));
    }

    /// `key[b][b]…=1` with `depth` bracketed segments (`[]` last when `list`).
    fn nested(depth: usize, list: bool) -> String {
        let mut key = "key".to_owned() + &"[b]".repeat(depth - usize::from(list));
        if list {
            key.push_str("[]");
        }
        format!("{key}=1&vsn=2.0.0")
    }

    #[test]
    fn keys_nested_up_to_the_cap_decode_fully() {
        for list in [false, true] {
            let p = params(&nested(Params::MAX_DEPTH, list));
            let mut node = p.get("key").unwrap();
            for _ in 1..Params::MAX_DEPTH {
                node = &node["b"];
            }
            let leaf = if list {
                json!(["1"])
            } else {
                json!({"b": "1"})
            };
            assert_eq!(node, &leaf, "list: {list}");
            assert_eq!(p.get_str("vsn"), Some("2.0.0"));
        }
    }

    #[test]
    fn keys_nested_past_the_cap_are_refused() {
        for depth in [Params::MAX_DEPTH + 1, 8_000, 100_000] {
            assert_eq!(
                Params::from_query(&nested(depth, false)),
                Err(ParamsError::TooDeep {
                    depth,
                    limit: Params::MAX_DEPTH
                })
            );
        }
        let encoded = format!("a{}=1", "%5Bb%5D".repeat(Params::MAX_DEPTH + 1));
        assert!(
            Params::from_query(&encoded).is_err(),
            "percent-encoded brackets count"
        );
    }

    /// Takes a tree apart node by node: `Value`'s own drop recurses per level.
    fn dismantle(root: Value) {
        let mut stack = vec![root];
        while let Some(mut node) = stack.pop() {
            match &mut node {
                Value::Object(map) => stack.extend(std::mem::take(map).into_iter().map(|(_, v)| v)),
                Value::Array(items) => stack.append(items),
                _ => {}
            }
        }
    }

    #[test]
    fn the_decoder_walks_a_key_of_any_depth_without_recursion() {
        // 100 000 levels on a 64 KiB stack: one stack frame per level would overflow it.
        // (The cap keeps such keys out; this proves the walk itself does not depend on it.)
        let worker = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let path = vec!["b"; 100_000];
                let mut map = Map::new();
                insert(&mut map, "key", &path, Value::String("1".into()));
                let key = format!("key{}", "[b]".repeat(100_000));
                assert_eq!(split_key(&key).1.len(), 100_000);
                assert!(Params::from_query(&format!("{key}=1")).is_err());
                dismantle(Value::Object(map));
            })
            .unwrap();
        worker.join().unwrap();
    }
}
