//! Templates such as `"user_socket:{sub}"` (docs/gateway.md, "Templates").

use serde_json::Value;
use thiserror::Error;

use crate::vars::{Path, Vars};

/// A parsed template: text and `{path}` holes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Path, String),
}

/// Why a template cannot be parsed (reported by `check` with its key and line).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateSyntaxError {
    #[error("unclosed '{{' at byte {0} (write '{{{{' for a literal brace)")]
    Unclosed(usize),
    #[error("'}}' without '{{' at byte {0} (write '}}}}' for a literal brace)")]
    StrayClose(usize),
    #[error("{{{0}}} is not a path (letters, digits, '_', '-' separated by '.')")]
    BadPath(String),
}

/// Why a template could not be rendered for one socket.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("{{{0}}} has no value")]
    Missing(String),
    #[error("{{{0}}} is an object or an array, not text")]
    NotText(String),
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, TemplateSyntaxError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(TemplateSyntaxError::StrayClose(at)),
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(TemplateSyntaxError::Unclosed(at));
                    }
                    let name = name.trim().to_owned();
                    let path = Path::parse(&name)
                        .ok_or_else(|| TemplateSyntaxError::BadPath(name.clone()))?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(path, name));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// The text, holes filled: strings as they are, numbers and booleans as JSON text.
    pub fn render(&self, vars: &Vars<'_>) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(path, name) => match path.resolve(vars).as_deref() {
                    None | Some(Value::Null) => return Err(RenderError::Missing(name.clone())),
                    Some(Value::String(s)) => out.push_str(s),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => out.push_str(&v.to_string()),
                    Some(Value::Object(_) | Value::Array(_)) => {
                        return Err(RenderError::NotText(name.clone()))
                    }
                },
            }
        }
        Ok(out)
    }

    /// A JSON value: a template that is one hole alone keeps the value's type (missing
    /// is `null`); anything else renders to a string (missing holes render empty).
    pub fn render_value(&self, vars: &Vars<'_>) -> Value {
        if let [Part::Var(path, _)] = self.parts.as_slice() {
            return path
                .resolve(vars)
                .map_or(Value::Null, std::borrow::Cow::into_owned);
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(path, _) => match path.resolve(vars).as_deref() {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                },
            }
        }
        Value::String(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_assigns_and_roots() {
        let assigns = json!({"sub": "u1", "n": 7, "ok": true, "o": {}});
        let vars = Vars {
            assigns: assigns.as_object(),
            transport: Some("websocket"),
            ..Vars::default()
        };
        let t = |s: &str| Template::parse(s).unwrap().render(&vars);
        assert_eq!(t("user_socket:{sub}").unwrap(), "user_socket:u1");
        assert_eq!(t("{n}-{ok}-{ transport }").unwrap(), "7-true-websocket");
        assert_eq!(t("{{literal}} {sub}").unwrap(), "{literal} u1");
        assert_eq!(t("x{nope}"), Err(RenderError::Missing("nope".into())));
        assert_eq!(t("{o}"), Err(RenderError::NotText("o".into())));
    }

    #[test]
    fn one_hole_alone_keeps_its_type() {
        let assigns = json!({"n": 7, "o": {"a": 1}});
        let vars = Vars {
            assigns: assigns.as_object(),
            transport: Some("longpoll"),
            ..Vars::default()
        };
        let v = |s: &str| Template::parse(s).unwrap().render_value(&vars);
        assert_eq!(v("{n}"), json!(7));
        assert_eq!(v("{o}"), json!({"a": 1}));
        assert_eq!(v("{missing}"), Value::Null);
        assert_eq!(v(":{transport}"), json!(":longpoll"));
        assert_eq!(v("n={n}"), json!("n=7"));
    }

    #[test]
    fn syntax_errors_say_where() {
        assert_eq!(
            Template::parse("a{b"),
            Err(TemplateSyntaxError::Unclosed(1))
        );
        assert_eq!(
            Template::parse("a}b"),
            Err(TemplateSyntaxError::StrayClose(1))
        );
        assert!(matches!(
            Template::parse("{a b}"),
            Err(TemplateSyntaxError::BadPath(_))
        ));
        assert!(matches!(
            Template::parse("{}"),
            Err(TemplateSyntaxError::BadPath(_))
        ));
    }
}
