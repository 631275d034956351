//! What a search asks the store for (docs/chat.md, `search`): the terms of a query, and
//! how each store matches them. PostgreSQL matches every term as a word prefix with its
//! full-text search (`to_tsvector('simple', body)`, indexed by migration
//! `0004_message_search`); the memory store matches every term as a case-insensitive
//! substring. Both answer the same queries the same way for whole words.

/// Terms of one query kept at most (more are ignored): each one is a condition.
pub const TERMS_MAX: usize = 8;

/// The terms of a search: runs of letters and digits, lowercased, without repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchQuery {
    terms: Vec<String>,
}

impl SearchQuery {
    /// The terms of `text`, at most [`TERMS_MAX`]; `None` when it has no letter or digit.
    ///
    /// ```
    /// use chat_app::store::SearchQuery;
    ///
    /// let q = SearchQuery::new("Deploy, deploy: 'prod' & v2!").unwrap();
    /// assert_eq!(q.terms(), ["deploy", "prod", "v2"]);
    /// assert!(SearchQuery::new(" :-) ").is_none());
    /// ```
    pub fn new(text: &str) -> Option<Self> {
        let mut terms: Vec<String> = Vec::new();
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            let word = word.to_lowercase();
            if !terms.contains(&word) {
                terms.push(word);
            }
            if terms.len() == TERMS_MAX {
                break;
            }
        }
        (!terms.is_empty()).then_some(Self { terms })
    }

    /// The terms, lowercased, in query order.
    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    /// The memory store's match: every term is a substring of `body`, ignoring case.
    pub fn matches(&self, body: &str) -> bool {
        let body = body.to_lowercase();
        self.terms.iter().all(|term| body.contains(term.as_str()))
    }

    /// The PostgreSQL match, for `to_tsquery('simple', …)`: every term as a prefix
    /// (`'deploy':* & 'prod':*`). A term holds only letters and digits, so nothing in it
    /// is tsquery syntax and the quotes cannot be closed early.
    pub fn tsquery(&self) -> String {
        self.terms
            .iter()
            .map(|term| format!("'{term}':*"))
            .collect::<Vec<_>>()
            .join(" & ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_letter_and_digit_runs_lowercased_deduplicated_and_bounded() {
        let q = SearchQuery::new("Ünïcode ÜNÏCODE x1,y2").unwrap();
        assert_eq!(q.terms(), ["ünïcode", "x1", "y2"]);
        let many = (0..20)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(SearchQuery::new(&many).unwrap().terms().len(), TERMS_MAX);
        for nothing in ["", "   ", "'&|!():*<->", "—"] {
            assert!(SearchQuery::new(nothing).is_none(), "{nothing:?}");
        }
    }

    #[test]
    fn every_term_must_match_ignoring_case() {
        let q = SearchQuery::new("ship FRIDAY").unwrap();
        assert!(q.matches("We ship on Friday."));
        assert!(q.matches("friday? shipping!"));
        assert!(!q.matches("We ship on Monday."));
    }

    #[test]
    fn the_tsquery_quotes_every_term_as_a_prefix() {
        let q = SearchQuery::new("it's a 'test'); DROP TABLE messages; --").unwrap();
        assert_eq!(
            q.tsquery(),
            "'it':* & 's':* & 'a':* & 'test':* & 'drop':* & 'table':* & 'messages':*"
        );
        assert!(q.tsquery().matches('\'').count().is_multiple_of(2));
    }
}
