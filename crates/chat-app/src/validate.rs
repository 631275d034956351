//! Input rules for rooms, usernames, messages and history pages, with reasons a person
//! can read. Every rule lives here, before any store, so the memory store and PostgreSQL
//! see (and refuse) exactly the same input.

use serde_json::Value;

/// Longest username, in characters (after trimming).
pub const USERNAME_MAX: usize = 32;
/// Longest room name, in characters.
pub const ROOM_MAX: usize = 64;
/// Longest message body, in characters (after trimming).
pub const BODY_MAX: usize = 4000;
/// Most messages one `history` call returns.
pub const HISTORY_MAX: u32 = 100;
/// Messages the join reply carries.
pub const RECENT_ON_JOIN: u32 = 50;
/// Most messages a rejoin with `after_id` replays; beyond, the page gets the recent
/// messages and `gap: true` (docs/chat.md, "Join").
pub const REPLAY_MAX: u32 = 200;
/// Most changed messages a rejoin with `after_seq` brings; beyond, the page gets
/// `refetch: true` (docs/chat.md, "Changes while away").
pub const CHANGES_MAX: u32 = 200;
/// Most attachments per message.
pub const ATTACHMENTS_MAX: usize = 10;
/// Most `@name`s of one message that are recorded (and notified).
pub const MENTIONS_MAX: usize = 20;
/// Longest `client_id`, in characters.
pub const CLIENT_ID_MAX: usize = 64;
/// Longest emoji, in bytes.
pub const EMOJI_MAX_BYTES: usize = 32;

/// A `client_id`: absent or `null` → none; else 1–64 characters of `[A-Za-z0-9_-]`.
pub fn client_id(raw: Option<&Value>) -> Result<Option<String>, String> {
    let refuse = || {
        format!("client_id must be 1 to {CLIENT_ID_MAX} characters of letters, digits, '_' and '-'")
    };
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id))
            if (1..=CLIENT_ID_MAX).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) =>
        {
            Ok(Some(id.clone()))
        }
        Some(_) => Err(refuse()),
    }
}

/// A message id given by the page (`id`, `parent_id`, `after_id`): an integer.
pub fn message_id(raw: Option<&Value>, field: &str) -> Result<i64, String> {
    raw.and_then(Value::as_i64)
        .ok_or_else(|| format!("{field} must be an integer"))
}

/// An optional message id: absent or `null` → none.
pub fn optional_id(raw: Option<&Value>, field: &str) -> Result<Option<i64>, String> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        some => message_id(some, field).map(Some),
    }
}

/// A reaction: 1–32 bytes, no ASCII letters or digits, no whitespace or control
/// characters. Not a list of emoji (Unicode adds some every year, and sequences with
/// joiners and modifiers are open-ended): the rule only keeps reactions from carrying
/// words, so they cannot be a second, unmoderated message channel.
pub fn emoji(raw: Option<&Value>) -> Result<String, String> {
    let refuse = || {
        format!(
            "emoji must be 1 to {EMOJI_MAX_BYTES} bytes, without letters, digits, spaces \
             or control characters"
        )
    };
    let Some(Value::String(emoji)) = raw else {
        return Err(refuse());
    };
    let ok = (1..=EMOJI_MAX_BYTES).contains(&emoji.len())
        && !emoji
            .chars()
            .any(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || c.is_control());
    if ok {
        Ok(emoji.clone())
    } else {
        Err(refuse())
    }
}

/// The `@name`s of a body, as written, deduplicated, at most [`MENTIONS_MAX`]. A name
/// is what follows `@` up to the first character a username cannot have (spaces
/// included, so `@ann` of "Ann Lee" is not found; a trailing `.` ends the sentence, not
/// the name); an `@` right after a letter or digit (an e-mail address) is no mention.
pub fn mentions(body: &str) -> Vec<String> {
    let name_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    let mut found: Vec<String> = Vec::new();
    let mut prev: Option<char> = None;
    for (at, c) in body.char_indices() {
        if c == '@' && !prev.is_some_and(char::is_alphanumeric) {
            let rest = &body[at + 1..];
            let end = rest.find(|c: char| !name_char(c)).unwrap_or(rest.len());
            let name = rest[..end].trim_end_matches('.');
            if username(name).is_ok_and(|n| n == name) && !found.iter().any(|f| f == name) {
                found.push(name.to_owned());
                if found.len() == MENTIONS_MAX {
                    break;
                }
            }
        }
        prev = Some(c);
    }
    found
}

/// A username: trimmed, 1–32 characters, letters, digits, spaces and `_ - .`.
pub fn username(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let count = name.chars().count();
    if count == 0 {
        return Err("username can't be blank".into());
    }
    if count > USERNAME_MAX {
        return Err(format!(
            "username must be at most {USERNAME_MAX} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.'))
    {
        return Err("username may only contain letters, digits, spaces, '_', '-' and '.'".into());
    }
    Ok(name.to_owned())
}

/// A room name (the part after `room:`): 1–64 characters, letters, digits, `_ - .`.
pub fn room(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let count = name.chars().count();
    if count == 0 {
        return Err("room name can't be blank".into());
    }
    if count > ROOM_MAX {
        return Err(format!("room name must be at most {ROOM_MAX} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err("room name may only contain letters, digits, '_', '-' and '.'".into());
    }
    Ok(name.to_owned())
}

/// A message body: trimmed, 1–4000 characters, no control characters but line breaks
/// and tabs.
///
/// Refused: every Unicode control character (C0 `U+0000`–`U+001F`, DEL, C1
/// `U+0080`–`U+009F`) except `\n`, `\r` and `\t`. NUL is the one PostgreSQL cannot store
/// in `text`; the others are never typed in a chat and only serve to garble terminals
/// and logs. Line breaks (`\r\n` included, as some clients send) and tabs are text.
pub fn body(raw: &str) -> Result<String, String> {
    let body = raw.trim();
    let count = body.chars().count();
    if count == 0 {
        return Err("message can't be blank".into());
    }
    if count > BODY_MAX {
        return Err(format!("message must be at most {BODY_MAX} characters"));
    }
    if body
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(
            "message may not contain control characters (line breaks and tabs are fine)".into(),
        );
    }
    Ok(body.to_owned())
}

/// The `limit` of a `history` call: absent or `null` → [`RECENT_ON_JOIN`]; otherwise an
/// integer from 1 to [`HISTORY_MAX`]. Larger limits are refused, not clamped: a clamped
/// page shorter than asked for would read as "no older messages" to a client that
/// pages until a short page (as the chat page does).
pub fn history_limit(raw: Option<&Value>) -> Result<u32, String> {
    let refuse = || format!("limit must be an integer from 1 to {HISTORY_MAX}");
    match raw {
        None | Some(Value::Null) => Ok(RECENT_ON_JOIN),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=HISTORY_MAX).contains(n))
            .ok_or_else(refuse),
    }
}

/// The `before_id` of a `history` call: absent or `null` → from the newest message;
/// otherwise an integer (a message id; any integer is accepted, ids below 1 just match
/// nothing).
pub fn before_id(raw: Option<&Value>) -> Result<i64, String> {
    match raw {
        None | Some(Value::Null) => Ok(i64::MAX),
        Some(value) => value
            .as_i64()
            .ok_or_else(|| "before_id must be an integer".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_trimmed_and_bounded() {
        assert_eq!(username("  alice ").unwrap(), "alice");
        assert!(username("   ").is_err());
        assert!(username(&"x".repeat(32)).is_ok());
        assert!(username(&"x".repeat(33)).is_err());
        assert!(username("Zoë O.").is_ok());
        assert!(username("<script>").is_err());
    }

    #[test]
    fn room_names_are_bounded_and_plain() {
        assert_eq!(room("lobby").unwrap(), "lobby");
        assert!(room("").is_err());
        assert!(room(&"r".repeat(64)).is_ok());
        assert!(room(&"r".repeat(65)).is_err());
        assert!(room("a b").is_err());
        assert!(room("a/b").is_err());
    }

    #[test]
    fn bodies_are_trimmed_and_counted_in_characters() {
        assert_eq!(body("  hi \n").unwrap(), "hi");
        assert!(body(" \n\t ").is_err());
        assert!(body(&"é".repeat(4000)).is_ok());
        assert!(body(&"é".repeat(4001)).is_err());
    }

    #[test]
    fn bodies_refuse_control_characters_but_keep_line_breaks_and_tabs() {
        let refused = "message may not contain control characters (line breaks and tabs are fine)";
        for bad in [
            "a\0b",
            "\0",
            "x\u{1b}[2J",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}x",
            "a\u{b}b",
        ] {
            assert_eq!(body(bad), Err(refused.to_owned()), "{bad:?}");
        }
        assert_eq!(body("line 1\nline 2\tend").unwrap(), "line 1\nline 2\tend");
        assert_eq!(body("windows\r\nline").unwrap(), "windows\r\nline");
        // Whitespace controls at the ends are trimmed like spaces, not refused.
        assert_eq!(body("\u{b}hi\u{c}").unwrap(), "hi");
        assert_eq!(
            body("zero\u{200b}width and émoji 🎉").unwrap(),
            "zero\u{200b}width and émoji 🎉"
        );
    }

    #[test]
    fn names_never_let_control_characters_through() {
        assert!(username("a\0b").is_err());
        assert!(username("ann\u{7}").is_err());
        assert!(room("lobby\0").is_err());
        assert!(room("lo\nbby").is_err());
    }

    #[test]
    fn history_limits_are_integers_from_1_to_100() {
        use serde_json::json;
        let refused = Err("limit must be an integer from 1 to 100".to_owned());
        assert_eq!(history_limit(None), Ok(RECENT_ON_JOIN));
        assert_eq!(history_limit(Some(&Value::Null)), Ok(RECENT_ON_JOIN));
        assert_eq!(history_limit(Some(&json!(1))), Ok(1));
        assert_eq!(history_limit(Some(&json!(100))), Ok(100));
        for bad in [
            json!(-1),
            json!(0),
            json!(1.5),
            json!(10.0),
            json!("10"),
            json!(101),
            json!(1u64 << 40),
            json!(u64::MAX),
            json!(true),
            json!([10]),
            json!({}),
        ] {
            assert_eq!(history_limit(Some(&bad)), refused, "{bad}");
        }
    }

    #[test]
    fn client_ids_are_short_and_plain() {
        use serde_json::json;
        assert_eq!(client_id(None), Ok(None));
        assert_eq!(client_id(Some(&json!("a-B_9"))), Ok(Some("a-B_9".into())));
        assert!(client_id(Some(&json!("x".repeat(64)))).unwrap().is_some());
        for bad in [
            json!(""),
            json!("x".repeat(65)),
            json!("a b"),
            json!("é"),
            json!(5),
        ] {
            assert!(client_id(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn emoji_are_short_and_carry_no_words() {
        use serde_json::json;
        for good in ["👍", "🎉", "👩‍👩‍👧", "❤️", ":)"] {
            assert_eq!(emoji(Some(&json!(good))), Ok(good.to_owned()), "{good}");
        }
        for bad in [
            json!(""),
            json!("ok"),
            json!("a👍"),
            json!("1"),
            json!("👍 👍"),
            json!("\u{7}"),
            json!("👍".repeat(9)),
            json!(1),
            json!(null),
        ] {
            assert!(emoji(Some(&bad)).is_err(), "{bad}");
        }
        assert!(emoji(None).is_err());
    }

    #[test]
    fn mentions_are_names_after_an_at_sign() {
        assert_eq!(mentions("hi @ann and @bob."), ["ann", "bob"]);
        assert_eq!(mentions("@ann @ann @Zoë_1"), ["ann", "Zoë_1"]);
        assert_eq!(mentions("mail me at ann@example.com"), Vec::<String>::new());
        assert_eq!(mentions("@ @. @@ann"), ["ann"]);
        assert_eq!(
            mentions(&format!("@{}", "x".repeat(33))),
            Vec::<String>::new()
        );
        let many: String = (0..30).map(|i| format!("@u{i} ")).collect();
        assert_eq!(mentions(&many).len(), MENTIONS_MAX);
    }

    #[test]
    fn before_ids_are_integers() {
        use serde_json::json;
        let refused = Err("before_id must be an integer".to_owned());
        assert_eq!(before_id(None), Ok(i64::MAX));
        assert_eq!(before_id(Some(&Value::Null)), Ok(i64::MAX));
        assert_eq!(before_id(Some(&json!(42))), Ok(42));
        assert_eq!(before_id(Some(&json!(-1))), Ok(-1));
        for bad in [
            json!(1.5),
            json!("42"),
            json!(u64::MAX),
            json!(false),
            json!({}),
        ] {
            assert_eq!(before_id(Some(&bad)), refused, "{bad}");
        }
    }
}
