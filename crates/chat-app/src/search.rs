//! The room channel's `search` event (docs/chat.md): a query's rules, its bounds, and the
//! rate at which one author may search. Searching is per room: the channel's join already
//! decided that this user may read the room (private rooms and DMs refuse non-members),
//! so a search never reaches another room's messages.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::limit::Rate;
use crate::store::SearchQuery;
use crate::validate;

/// A query shorter than this (in characters, after trimming) is refused.
pub const QUERY_MIN_CHARS: usize = 2;
/// A query longer than this (in characters) is refused.
pub const QUERY_MAX_CHARS: usize = 100;
/// Results of one search when the page does not say.
pub const LIMIT_DEFAULT: u32 = 20;
/// Results of one search at most.
pub const LIMIT_MAX: u32 = 50;
/// Searches one signed-in user, or one client address for guests, may make at once (all
/// rooms, every tab and channel)…
pub const SEARCH_BURST: u32 = 5;
/// …then one more per this interval.
pub const SEARCH_REFILL: Duration = Duration::from_secs(2);

/// The rate of [`SEARCH_BURST`] and [`SEARCH_REFILL`].
pub fn default_rate() -> Rate {
    Rate::new(SEARCH_BURST, SEARCH_REFILL)
}

/// What the page sends.
#[derive(Deserialize)]
struct Payload {
    query: Option<Value>,
    before_id: Option<Value>,
    limit: Option<Value>,
}

/// A valid `search` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchRequest {
    /// The terms.
    pub query: SearchQuery,
    /// Only messages older than this (the next page: the last result's id).
    pub before_id: i64,
    /// Results at most.
    pub limit: u32,
}

/// The request in `payload` (the JSON of the push), or the reason it is refused.
///
/// ```
/// use chat_app::search::parse;
/// use serde_json::json;
///
/// let req = parse(&json!({"query": "  ship it ", "limit": 5})).unwrap();
/// assert_eq!(req.query.terms(), ["ship", "it"]);
/// assert_eq!((req.before_id, req.limit), (i64::MAX, 5));
/// assert!(parse(&json!({"query": "x"})).is_err());
/// ```
pub fn parse(payload: &Value) -> Result<SearchRequest, String> {
    let p = Payload::deserialize(payload).map_err(|_| "search takes an object".to_owned())?;
    let Some(Value::String(text)) = p.query else {
        return Err("query must be a string".into());
    };
    let text = text.trim();
    let chars = text.chars().count();
    if !(QUERY_MIN_CHARS..=QUERY_MAX_CHARS).contains(&chars) {
        return Err(format!(
            "query must be {QUERY_MIN_CHARS} to {QUERY_MAX_CHARS} characters"
        ));
    }
    let query =
        SearchQuery::new(text).ok_or_else(|| "query must have a letter or a digit".to_owned())?;
    let before_id = validate::before_id(p.before_id.as_ref())?;
    let limit = match p.limit {
        None | Some(Value::Null) => LIMIT_DEFAULT,
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=LIMIT_MAX).contains(n))
            .ok_or_else(|| format!("limit must be an integer from 1 to {LIMIT_MAX}"))?,
    };
    Ok(SearchRequest {
        query,
        before_id,
        limit,
    })
}

/// The refusal of a search past the author's rate.
pub fn too_many() -> String {
    format!(
        "too many searches: try again in {} seconds",
        SEARCH_REFILL.as_secs().max(1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_are_trimmed_and_bounded_with_reasons() {
        assert!(parse(&json!({"query": "ab"})).is_ok());
        assert!(parse(&json!({"query": "é".repeat(QUERY_MAX_CHARS)})).is_ok());
        for (bad, why) in [
            (json!({"query": " a "}), "2 to 100 characters"),
            (
                json!({"query": "x".repeat(QUERY_MAX_CHARS + 1)}),
                "2 to 100",
            ),
            (json!({"query": 42}), "must be a string"),
            (json!({}), "must be a string"),
            (json!({"query": "?!"}), "a letter or a digit"),
            (json!("ship"), "takes an object"),
            (json!({"query": "ship", "limit": 0}), "1 to 50"),
            (json!({"query": "ship", "limit": 51}), "1 to 50"),
            (json!({"query": "ship", "limit": "5"}), "1 to 50"),
            (json!({"query": "ship", "before_id": "9"}), "before_id"),
        ] {
            let error = parse(&bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        let req = parse(&json!({"query": "ship", "before_id": 9, "limit": 50})).unwrap();
        assert_eq!((req.before_id, req.limit), (9, 50));
    }

    #[test]
    fn the_refusal_says_when_to_retry() {
        assert!(too_many().contains("2 seconds"));
    }
}
