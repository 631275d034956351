//! `${NAME}` in configuration strings, so secrets stay in the environment and the file
//! can be committed.

use thiserror::Error;

/// Why a string could not be substituted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("environment variable {0} is not set (write ${{{0}:-default}} for a default)")]
    Unset(String),
    #[error("unclosed '${{' (write '$$' for a literal '$')")]
    Unclosed,
    #[error("'${{{0}}}' is not a variable name (letters, digits, '_')")]
    BadName(String),
}

/// Replaces `${NAME}` and `${NAME:-default}`; `$$` is a literal `$`. A `$` followed by
/// anything else stays as it is.
pub fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').ok_or(EnvError::Unclosed)?;
            let spec = &inner[..end];
            let (name, default) = match spec.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (spec, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(EnvError::BadName(spec.to_owned()));
            }
            match (
                env(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(EnvError::Unset(name.to_owned())),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_variables_and_defaults() {
        assert_eq!(substitute("a ${SECRET} b", &env).unwrap(), "a s3cret b");
        assert_eq!(substitute("${NOPE:-60s}", &env).unwrap(), "60s");
        assert_eq!(substitute("${EMPTY:-x}", &env).unwrap(), "x");
        assert_eq!(substitute("${EMPTY}", &env).unwrap(), "");
        assert_eq!(substitute("$$5 and $HOME", &env).unwrap(), "$5 and $HOME");
        assert_eq!(substitute("${NOPE:-}", &env).unwrap(), "");
    }

    #[test]
    fn refuses_what_it_cannot_fill() {
        assert_eq!(
            substitute("${NOPE}", &env),
            Err(EnvError::Unset("NOPE".into()))
        );
        assert_eq!(substitute("${SECRET", &env), Err(EnvError::Unclosed));
        assert_eq!(
            substitute("${A B}", &env),
            Err(EnvError::BadName("A B".into()))
        );
    }
}
