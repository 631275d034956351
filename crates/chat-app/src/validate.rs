//! Input rules for rooms, usernames and messages, with reasons a person can read.

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

/// A message body: trimmed, 1–4000 characters.
pub fn body(raw: &str) -> Result<String, String> {
    let body = raw.trim();
    let count = body.chars().count();
    if count == 0 {
        return Err("message can't be blank".into());
    }
    if count > BODY_MAX {
        return Err(format!("message must be at most {BODY_MAX} characters"));
    }
    Ok(body.to_owned())
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
}
