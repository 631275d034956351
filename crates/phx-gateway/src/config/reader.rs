//! Reading the configuration file: a walk over toml's span-carrying tables that records
//! every problem (unknown key, wrong type, bad value) with its key and line, and goes on,
//! so `phx-gateway check` can print them all at once instead of the first one.

use std::cell::RefCell;
use std::ops::Range;
use std::time::Duration;

use serde_json::{Map, Number, Value};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::env::substitute;
use super::units::{parse_duration, parse_size};

/// One problem in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// The key's path, `socket[0].auth.algorithms` (empty for the file as a whole).
    pub key: String,
    pub message: String,
}

/// Looks environment variables up (the process's, or a fixed map in tests).
pub type EnvLookup<'e> = &'e dyn Fn(&str) -> Option<String>;

/// The file being read and the problems found so far.
pub struct Doc<'s> {
    source: &'s str,
    env: EnvLookup<'s>,
    problems: RefCell<Vec<Problem>>,
    root: Spanned<DeTable<'s>>,
}

impl<'s> Doc<'s> {
    /// Parses `source`; TOML syntax errors are problems too (the walk then sees what
    /// could be recovered).
    pub fn parse(source: &'s str, env: EnvLookup<'s>) -> Self {
        let (root, errors) = DeTable::parse_recoverable(source);
        let doc = Self {
            source,
            env,
            problems: RefCell::new(Vec::new()),
            root,
        };
        for error in errors {
            let line = error.span().map_or(1, |s| doc.line(s.start));
            doc.push(
                line,
                String::new(),
                format!("TOML syntax: {}", error.message().trim()),
            );
        }
        doc
    }

    /// The top-level table.
    pub fn root(&self) -> Table<'_, 's> {
        Table {
            doc: self,
            path: String::new(),
            table: self.root.get_ref(),
            span: self.root.span(),
            used: RefCell::new(Vec::new()),
        }
    }

    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.source.len());
        self.source.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn push(&self, line: usize, key: String, message: String) {
        self.problems
            .borrow_mut()
            .push(Problem { line, key, message });
    }

    /// Records a problem at a span.
    pub fn problem(&self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        self.push(self.line(span.start), key.to_owned(), message.into());
    }

    /// Every problem, in file order.
    pub fn into_problems(self) -> Vec<Problem> {
        let mut problems = self.problems.into_inner();
        problems.sort_by_key(|p| p.line);
        problems
    }

    /// Substitutes `${VAR}` in a string value, recording a problem on failure.
    fn substitute(&self, span: &Range<usize>, key: &str, text: &str) -> Option<String> {
        match substitute(text, self.env) {
            Ok(s) => Some(s),
            Err(e) => {
                self.problem(span, key, e.to_string());
                None
            }
        }
    }
}

/// A value with where it is, for keys that take several shapes.
pub struct Item<'a, 's> {
    pub value: &'a DeValue<'s>,
    pub span: Range<usize>,
    pub key: String,
}

/// One table of the file being read. Every key read is marked; [`Table::finish`]
/// reports the others as unknown.
pub struct Table<'a, 's> {
    doc: &'a Doc<'s>,
    path: String,
    table: &'a DeTable<'s>,
    span: Range<usize>,
    used: RefCell<Vec<String>>,
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 's> Table<'a, 's> {
    /// The document, to record problems of values read through [`Item`]s.
    pub fn doc(&self) -> &'a Doc<'s> {
        self.doc
    }

    /// `path.key`.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value under `key`, marked as known.
    pub fn item(&self, key: &str) -> Option<Item<'a, 's>> {
        self.used.borrow_mut().push(key.to_owned());
        let value = self.table.get(key)?;
        Some(Item {
            value: value.get_ref(),
            span: value.span(),
            key: self.key_path(key),
        })
    }

    /// Whether `key` is present (marks it known).
    pub fn has(&self, key: &str) -> bool {
        self.used.borrow_mut().push(key.to_owned());
        self.table.get(key).is_some()
    }

    /// A problem about `key`: at its value when present, else at this table.
    pub fn error(&self, key: &str, message: impl Into<String>) {
        let span = self
            .table
            .get(key)
            .map_or_else(|| self.span.clone(), Spanned::span);
        self.doc.problem(&span, &self.key_path(key), message);
    }

    /// A problem about this table as a whole.
    pub fn table_error(&self, message: impl Into<String>) {
        self.doc.problem(&self.span, &self.path, message);
    }

    fn wrong_type(&self, item: &Item<'_, '_>, expected: &str) {
        self.doc.problem(
            &item.span,
            &item.key,
            format!("expected {expected}, found {}", type_name(item.value)),
        );
    }

    /// A string (environment variables substituted).
    pub fn string(&self, key: &str) -> Option<String> {
        let item = self.item(key)?;
        self.string_of(&item)
    }

    /// A string that must be there.
    pub fn required_string(&self, key: &str) -> Option<String> {
        if !self.has(key) {
            self.error(
                key,
                format!("missing (required in [{}])", self.display_path()),
            );
            return None;
        }
        self.string(key)
    }

    fn display_path(&self) -> &str {
        if self.path.is_empty() {
            "the top level"
        } else {
            &self.path
        }
    }

    /// A string from an item read otherwise.
    pub fn string_of(&self, item: &Item<'_, '_>) -> Option<String> {
        match item.value {
            DeValue::String(s) => self.doc.substitute(&item.span, &item.key, s),
            _ => {
                self.wrong_type(item, "a string");
                None
            }
        }
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Option<bool> {
        let item = self.item(key)?;
        match item.value {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(&item, "true or false");
                None
            }
        }
    }

    /// A non-negative integer.
    pub fn count(&self, key: &str) -> Option<u64> {
        let item = self.item(key)?;
        self.count_of(&item)
    }

    fn count_of(&self, item: &Item<'_, '_>) -> Option<u64> {
        let DeValue::Integer(i) = item.value else {
            self.wrong_type(item, "an integer");
            return None;
        };
        match u64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.doc
                    .problem(&item.span, &item.key, "expected a non-negative integer");
                None
            }
        }
    }

    /// A duration string (`"5s"`).
    pub fn duration(&self, key: &str) -> Option<Duration> {
        let item = self.item(key)?;
        let text = self.string_of(&item)?;
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.doc.problem(&item.span, &item.key, e);
                None
            }
        }
    }

    /// A size: an integer of bytes or a string with a unit (`"1MiB"`).
    pub fn size(&self, key: &str) -> Option<usize> {
        let item = self.item(key)?;
        let bytes = match item.value {
            DeValue::Integer(_) => self.count_of(&item)?,
            DeValue::String(_) => {
                let text = self.string_of(&item)?;
                match parse_size(&text) {
                    Ok(n) => n,
                    Err(e) => {
                        self.doc.problem(&item.span, &item.key, e);
                        return None;
                    }
                }
            }
            _ => {
                self.wrong_type(&item, "a size (bytes, or a string such as \"1MiB\")");
                return None;
            }
        };
        match usize::try_from(bytes) {
            Ok(n) => Some(n),
            Err(_) => {
                self.doc.problem(&item.span, &item.key, "too large");
                None
            }
        }
    }

    /// A list of strings.
    pub fn strings(&self, key: &str) -> Option<Vec<String>> {
        let item = self.item(key)?;
        self.strings_of(&item)
    }

    /// A list of strings from an item read otherwise.
    pub fn strings_of(&self, item: &Item<'_, '_>) -> Option<Vec<String>> {
        let DeValue::Array(list) = item.value else {
            self.wrong_type(item, "a list of strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, entry) in list.iter().enumerate() {
            let entry = Item {
                value: entry.get_ref(),
                span: entry.span(),
                key: format!("{}[{i}]", item.key),
            };
            match self.string_of(&entry) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A string or a list of strings (`audience = "a"` or `["a", "b"]`).
    pub fn string_or_strings(&self, key: &str) -> Option<Vec<String>> {
        let item = self.item(key)?;
        match item.value {
            DeValue::String(_) => self.string_of(&item).map(|s| vec![s]),
            DeValue::Array(_) => self.strings_of(&item),
            _ => {
                self.wrong_type(&item, "a string or a list of strings");
                None
            }
        }
    }

    /// A sub-table.
    pub fn table(&self, key: &str) -> Option<Table<'a, 's>> {
        let item = self.item(key)?;
        match item.value {
            DeValue::Table(t) => Some(Table {
                doc: self.doc,
                path: item.key,
                table: t,
                span: item.span,
                used: RefCell::new(Vec::new()),
            }),
            _ => {
                self.wrong_type(&item, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[socket]]`); each element is named `key[i]`.
    pub fn tables(&self, key: &str) -> Vec<Table<'a, 's>> {
        let Some(item) = self.item(key) else {
            return Vec::new();
        };
        let DeValue::Array(list) = item.value else {
            self.wrong_type(&item, &format!("an array of tables ([[{key}]])"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let key = format!("{}[{i}]", item.key);
            match entry.get_ref() {
                DeValue::Table(t) => out.push(Table {
                    doc: self.doc,
                    path: key,
                    table: t,
                    span: entry.span(),
                    used: RefCell::new(Vec::new()),
                }),
                other => self.doc.problem(
                    &entry.span(),
                    &key,
                    format!("expected a table, found {}", type_name(other)),
                ),
            }
        }
        out
    }

    /// Any value as JSON (strings substituted); dates are refused.
    #[cfg(test)]
    pub fn json(&self, key: &str) -> Option<Value> {
        let item = self.item(key)?;
        self.json_of(&item)
    }

    /// JSON from an item read otherwise.
    pub fn json_of(&self, item: &Item<'_, '_>) -> Option<Value> {
        Some(match item.value {
            DeValue::String(_) => Value::String(self.string_of(item)?),
            DeValue::Integer(_) | DeValue::Float(_) => {
                let text = match item.value {
                    DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                    DeValue::Float(f) => f.as_str().replace('_', ""),
                    _ => String::new(),
                };
                match serde_json::from_str::<Number>(&text) {
                    Ok(n) => Value::Number(n),
                    Err(_) => {
                        self.doc
                            .problem(&item.span, &item.key, "a number JSON cannot hold");
                        return None;
                    }
                }
            }
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Datetime(_) => {
                self.doc.problem(
                    &item.span,
                    &item.key,
                    "dates have no JSON form: write a string",
                );
                return None;
            }
            DeValue::Array(list) => {
                let mut out = Vec::new();
                for (i, entry) in list.iter().enumerate() {
                    out.push(self.json_of(&Item {
                        value: entry.get_ref(),
                        span: entry.span(),
                        key: format!("{}[{i}]", item.key),
                    })?);
                }
                Value::Array(out)
            }
            DeValue::Table(t) => {
                let mut out = Map::new();
                for (k, v) in t.iter() {
                    let value = self.json_of(&Item {
                        value: v.get_ref(),
                        span: v.span(),
                        key: format!("{}.{}", item.key, k.get_ref()),
                    })?;
                    out.insert(k.get_ref().to_string(), value);
                }
                Value::Object(out)
            }
        })
    }

    /// Every key of a free-form table (`set`, `meta`), in file order.
    pub fn json_keys(&self) -> Vec<String> {
        let mut keys: Vec<(usize, String)> = self
            .table
            .iter()
            .map(|(k, _)| (k.span().start, k.get_ref().to_string()))
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    /// Reports every key of this table that was never read as unknown.
    pub fn finish(self) {
        let used = self.used.borrow().clone();
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref();
            if !used.iter().any(|u| u == name) {
                let known: Vec<&str> = {
                    let mut k: Vec<&str> = used.iter().map(String::as_str).collect();
                    k.sort_unstable();
                    k.dedup();
                    k
                };
                let hint = match closest(name, &known) {
                    Some(near) => format!(" (did you mean {near:?}?)"),
                    None => String::new(),
                };
                self.doc.problem(
                    &key.span(),
                    &self.key_path(name),
                    format!(
                        "unknown key{hint}; [{}] takes: {}",
                        self.display_path(),
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

/// The known key nearest to a misspelt one, if one is close.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance (short keys only).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let source = "a = 1\n[t]\nname = 5\ntypo = true\nwait = \"5 parsecs\"\n";
        let doc = Doc::parse(source, &no_env);
        let root = doc.root();
        let _ = root.count("a");
        if let Some(t) = root.table("t") {
            assert_eq!(t.string("name"), None);
            assert_eq!(t.duration("wait"), None);
            let _ = t.bool("type");
            t.finish();
        }
        root.finish();
        let problems = doc.into_problems();
        let lines: Vec<(usize, &str)> = problems.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            lines,
            vec![(3, "t.name"), (4, "t.typo"), (5, "t.wait")],
            "{problems:?}"
        );
        assert!(
            problems[1].message.contains("did you mean \"type\""),
            "{}",
            problems[1].message
        );
    }

    #[test]
    fn syntax_errors_are_problems_too() {
        let doc = Doc::parse("a = \n[t\n", &no_env);
        let problems = doc.into_problems();
        assert!(!problems.is_empty());
        assert!(problems[0].message.starts_with("TOML syntax"));
    }

    #[test]
    fn json_values_keep_their_shape() {
        let env = |name: &str| (name == "X").then(|| "ex".to_owned());
        let doc = Doc::parse("m = { a = 1, b = [true, \"${X}\"], c = 1.5 }", &env);
        let m = doc.root().json("m");
        assert_eq!(
            m,
            Some(serde_json::json!({"a": 1, "b": [true, "ex"], "c": 1.5}))
        );
    }

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(
            closest("idle_timout", &["idle_timeout", "path"]),
            Some("idle_timeout")
        );
        assert_eq!(closest("zzz", &["idle_timeout", "path"]), None);
    }
}
