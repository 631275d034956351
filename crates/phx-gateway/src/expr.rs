//! Expressions such as `"assigns.role == 'admin' || subtopic == user_id"`: join
//! predicates and outgoing-rule conditions (docs/gateway.md, "Expressions").
//!
//! ```text
//! or         := and ("||" and)*
//! and        := unary ("&&" unary)*
//! unary      := "!" unary | "(" or ")" | comparison
//! comparison := atom (("==" | "!=") atom | "in" "[" atom ("," atom)* "]")?
//! atom       := path | 'text' | "text" | number | true | false | null
//! ```

use std::borrow::Cow;

use serde_json::Value;
use thiserror::Error;

use crate::vars::{Path, Vars};

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Eq(Atom, Atom),
    Ne(Atom, Atom),
    In(Atom, Vec<Atom>),
    /// A path or literal alone: true unless missing, `null` or `false`.
    Truthy(Atom),
}

/// A value in an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Atom {
    Path(Path),
    Literal(Value),
}

/// Why an expression cannot be parsed (reported by `check` with its key and line).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{message} at character {at}")]
pub struct ExprError {
    pub message: String,
    pub at: usize,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    EqEq,
    NotEq,
    And,
    Or,
    Bang,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |message: &str, at: usize| ExprError {
        message: message.to_owned(),
        at,
    };
    while let Some(&c) = chars.get(i) {
        let start = i;
        let two = |next: char| chars.get(i + 1) == Some(&next);
        let token = match c {
            ' ' | '\t' | '\n' | '\r' => {
                i += 1;
                continue;
            }
            '=' if two('=') => {
                i += 2;
                Token::EqEq
            }
            '!' if two('=') => {
                i += 2;
                Token::NotEq
            }
            '&' if two('&') => {
                i += 2;
                Token::And
            }
            '|' if two('|') => {
                i += 2;
                Token::Or
            }
            '!' => {
                i += 1;
                Token::Bang
            }
            '(' => {
                i += 1;
                Token::LParen
            }
            ')' => {
                i += 1;
                Token::RParen
            }
            '[' => {
                i += 1;
                Token::LBracket
            }
            ']' => {
                i += 1;
                Token::RBracket
            }
            ',' => {
                i += 1;
                Token::Comma
            }
            '\'' | '"' => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err(err("unterminated string", start)),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(&e) => s.push(e),
                                None => return Err(err("unterminated string", start)),
                            }
                            i += 2;
                        }
                        Some(&q) if q == quote => {
                            i += 1;
                            break;
                        }
                        Some(&other) => {
                            s.push(other);
                            i += 1;
                        }
                    }
                }
                Token::Text(s)
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == 'E')
                {
                    i += 1;
                }
                let literal: String = chars[start..i].iter().collect();
                Token::Number(
                    literal
                        .parse()
                        .map_err(|_| err("malformed number", start))?,
                )
            }
            c if c.is_alphanumeric() || c == '_' => {
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
                {
                    i += 1;
                }
                Token::Word(chars[start..i].iter().collect())
            }
            other => return Err(err(&format!("unexpected {other:?}"), start)),
        };
        out.push((start, token));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(p, _)| *p)
    }

    fn fail<T>(&self, message: &str) -> Result<T, ExprError> {
        Err(ExprError {
            message: message.to_owned(),
            at: self.position(),
        })
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.eat(&Token::Or) {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.unary()?;
        while self.eat(&Token::And) {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.eat(&Token::Bang) {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat(&Token::LParen) {
            let inner = self.or()?;
            if !self.eat(&Token::RParen) {
                return self.fail("expected ')'");
            }
            return Ok(inner);
        }
        let left = self.atom()?;
        if self.eat(&Token::EqEq) {
            return Ok(Expr::Eq(left, self.atom()?));
        }
        if self.eat(&Token::NotEq) {
            return Ok(Expr::Ne(left, self.atom()?));
        }
        if self.peek() == Some(&Token::Word("in".into())) {
            self.at += 1;
            if !self.eat(&Token::LBracket) {
                return self.fail("expected '[' after 'in'");
            }
            let mut list = Vec::new();
            if !self.eat(&Token::RBracket) {
                loop {
                    list.push(self.atom()?);
                    if self.eat(&Token::RBracket) {
                        break;
                    }
                    if !self.eat(&Token::Comma) {
                        return self.fail("expected ',' or ']'");
                    }
                }
            }
            return Ok(Expr::In(left, list));
        }
        Ok(Expr::Truthy(left))
    }

    fn atom(&mut self) -> Result<Atom, ExprError> {
        let Some(token) = self.peek().cloned() else {
            return self.fail("expected a value, found the end");
        };
        let atom = match token {
            Token::Text(s) => Atom::Literal(Value::String(s)),
            Token::Number(n) => {
                Atom::Literal(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
            }
            Token::Word(w) => match w.as_str() {
                "true" => Atom::Literal(Value::Bool(true)),
                "false" => Atom::Literal(Value::Bool(false)),
                "null" => Atom::Literal(Value::Null),
                "in" => return self.fail("expected a value, found 'in'"),
                path => match Path::parse(path) {
                    Some(p) => Atom::Path(p),
                    None => return self.fail(&format!("{path:?} is not a path")),
                },
            },
            other => return self.fail(&format!("expected a value, found {other:?}")),
        };
        self.at += 1;
        Ok(atom)
    }
}

impl Expr {
    /// Parses an expression.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        let mut parser = Parser {
            tokens: tokenize(text)?,
            at: 0,
            end: text.chars().count(),
        };
        let expr = parser.or()?;
        if parser.at < parser.tokens.len() {
            return parser.fail("unexpected text after the expression");
        }
        Ok(expr)
    }

    /// Evaluates against `vars`.
    pub fn eval(&self, vars: &Vars<'_>) -> bool {
        match self {
            Self::Or(a, b) => a.eval(vars) || b.eval(vars),
            Self::And(a, b) => a.eval(vars) && b.eval(vars),
            Self::Not(a) => !a.eval(vars),
            Self::Eq(a, b) => same(&a.value(vars), &b.value(vars)),
            Self::Ne(a, b) => !same(&a.value(vars), &b.value(vars)),
            Self::In(a, list) => {
                let a = a.value(vars);
                list.iter().any(|b| same(&a, &b.value(vars)))
            }
            Self::Truthy(a) => !matches!(a.value(vars).as_ref(), Value::Null | Value::Bool(false)),
        }
    }
}

impl Atom {
    fn value<'v>(&'v self, vars: &Vars<'v>) -> Cow<'v, Value> {
        match self {
            Self::Literal(v) => Cow::Borrowed(v),
            Self::Path(p) => p.resolve(vars).unwrap_or(Cow::Owned(Value::Null)),
        }
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(text: &str, assigns: Value) -> bool {
        let vars = Vars {
            assigns: assigns.as_object(),
            topic: Some("user:42"),
            subtopic: Some("42"),
            transport: Some("websocket"),
            ..Vars::default()
        };
        Expr::parse(text).unwrap().eval(&vars)
    }

    #[test]
    fn comparisons_and_logic() {
        let a = json!({"role": "admin", "id": "42", "n": 1, "banned": false, "tags": ["x"]});
        assert!(eval("assigns.role == 'admin'", a.clone()));
        assert!(eval("role == \"admin\" && !banned", a.clone()));
        assert!(eval("subtopic == id", a.clone()));
        assert!(!eval("subtopic == n", a.clone()), "'42' is not 1");
        assert!(eval("n == 1.0", a.clone()));
        assert!(eval("role in ['mod', 'admin']", a.clone()));
        assert!(!eval("role in []", a.clone()));
        assert!(eval(
            "(role == 'x' || role == 'admin') && transport != 'longpoll'",
            a.clone()
        ));
        assert!(eval("tags", a.clone()));
        assert!(!eval("banned", a.clone()));
        assert!(!eval("missing", a.clone()));
        assert!(eval("missing == null", a.clone()));
        assert!(eval("!missing", a.clone()));
        assert!(eval("n == -1 || true", a));
    }

    #[test]
    fn a_path_to_nowhere_is_not_an_error_at_run_time() {
        assert!(!eval("a.b.c == 'x'", json!({"a": 5})));
    }

    #[test]
    fn syntax_errors_say_where() {
        for (text, at) in [
            ("role ==", 7),
            ("role = 'x'", 5),
            ("(role", 5),
            ("role == 'x", 8),
            ("role in 'x'", 8),
            ("role == 'x' y", 12),
            ("", 0),
        ] {
            let error = Expr::parse(text).unwrap_err();
            assert_eq!(error.at, at, "{text:?}: {error}");
        }
    }
}
