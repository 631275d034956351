//! What templates and expressions can name: a socket's assigns, its channel's assigns,
//! the topic, the transport, a payload. Shared by [`crate::template`] and [`crate::expr`].

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The names a path may start with; any other first name is looked up in the assigns
/// (`{sub}` is `{assigns.sub}`).
pub const ROOTS: &[&str] = &[
    "assigns",
    "channel_assigns",
    "topic",
    "subtopic",
    "transport",
    "socket_id",
    "payload",
];

/// A dotted path such as `assigns.user.id`, resolved against [`Vars`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// The root (one of [`ROOTS`]).
    root: &'static str,
    /// Object keys (or array indexes) below the root.
    rest: Vec<String>,
}

impl Path {
    /// Parses `a.b.c`; `None` when a segment is empty or holds a character other than
    /// letters, digits, `_` and `-`.
    pub fn parse(text: &str) -> Option<Self> {
        let segments: Vec<&str> = text.split('.').collect();
        if segments.iter().any(|s| {
            s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        }) {
            return None;
        }
        let (first, rest) = segments.split_first()?;
        match ROOTS.iter().find(|r| **r == *first) {
            Some(root) => Some(Self {
                root,
                rest: rest.iter().map(|s| (*s).to_owned()).collect(),
            }),
            None => Some(Self {
                root: "assigns",
                rest: segments.iter().map(|s| (*s).to_owned()).collect(),
            }),
        }
    }

    /// The value at this path, if there is one.
    pub fn resolve<'v>(&self, vars: &Vars<'v>) -> Option<Cow<'v, Value>> {
        let mut value: Cow<'v, Value> = match self.root {
            "assigns" => return descend_map(vars.assigns?, &self.rest),
            "channel_assigns" => return descend_map(vars.channel_assigns?, &self.rest),
            "payload" => Cow::Borrowed(vars.payload?),
            "topic" => Cow::Owned(Value::String(vars.topic?.to_owned())),
            "subtopic" => Cow::Owned(Value::String(vars.subtopic?.to_owned())),
            "transport" => Cow::Owned(Value::String(vars.transport?.to_owned())),
            "socket_id" => Cow::Owned(vars.socket_id.map_or(Value::Null, |s| s.into())),
            _ => return None,
        };
        for key in &self.rest {
            value = match value {
                Cow::Borrowed(v) => Cow::Borrowed(child(v, key)?),
                Cow::Owned(v) => Cow::Owned(child(&v, key)?.clone()),
            };
        }
        Some(value)
    }
}

fn descend_map<'v>(map: &'v Map<String, Value>, rest: &[String]) -> Option<Cow<'v, Value>> {
    let Some((first, rest)) = rest.split_first() else {
        // `assigns` alone: the whole object. Rare (templates refuse objects), so a copy.
        return Some(Cow::Owned(Value::Object(map.clone())));
    };
    let mut value = map.get(first)?;
    for key in rest {
        value = child(value, key)?;
    }
    Some(Cow::Borrowed(value))
}

fn child<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    match value {
        Value::Object(map) => map.get(key),
        Value::Array(list) => list.get(key.parse::<usize>().ok()?),
        _ => None,
    }
}

/// The values one evaluation can see; absent ones resolve to nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Vars<'v> {
    pub assigns: Option<&'v Map<String, Value>>,
    pub channel_assigns: Option<&'v Map<String, Value>>,
    pub topic: Option<&'v str>,
    pub subtopic: Option<&'v str>,
    pub transport: Option<&'v str>,
    pub socket_id: Option<&'v str>,
    pub payload: Option<&'v Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_names_are_assigns_and_roots_are_roots() {
        let assigns = json!({"sub": "u1", "topic": "mine", "user": {"ids": [4, 5]}});
        let vars = Vars {
            assigns: assigns.as_object(),
            topic: Some("room:1"),
            ..Vars::default()
        };
        let get = |p: &str| Path::parse(p).unwrap().resolve(&vars).map(Cow::into_owned);
        assert_eq!(get("sub"), Some(json!("u1")));
        assert_eq!(get("assigns.sub"), Some(json!("u1")));
        assert_eq!(get("topic"), Some(json!("room:1")));
        assert_eq!(get("assigns.topic"), Some(json!("mine")));
        assert_eq!(get("user.ids.1"), Some(json!(5)));
        assert_eq!(get("user.ids.9"), None);
        assert_eq!(get("missing"), None);
        assert_eq!(get("payload.x"), None);
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in ["", "a..b", ".a", "a.", "a b", "a{b"] {
            assert!(Path::parse(bad).is_none(), "{bad:?}");
        }
    }
}
