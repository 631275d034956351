//! An uploaded file's name: shown to people and sent back in `Content-Disposition`, but
//! never a path (files are stored under their random id). Still sanitised, because it is
//! displayed and because a browser saving the download uses it.

/// Longest name, in UTF-8 bytes (most file systems' limit).
pub const NAME_MAX_BYTES: usize = 255;

/// Why a name is refused (`400`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing left once directory parts are stripped.
    #[error("the file name is empty")]
    Empty,
    /// `.` or `..`.
    #[error("the file name cannot be . or ..")]
    Dots,
    /// A control character (NUL, newline…) or a bidirectional override, which could
    /// make `gpj.exe` display as `exe.jpg`.
    #[error("the file name has control characters")]
    Control,
    /// Over [`NAME_MAX_BYTES`].
    #[error("the file name is over 255 bytes")]
    TooLong,
}

/// The name to keep: the last part after any `/` or `\` (a browser or an old client
/// may send a whole path), refused when empty, `.`, `..`, over 255 bytes or holding
/// control or bidirectional formatting characters.
pub fn sanitise(raw: &str) -> Result<String, NameError> {
    // The whole name is checked, directory parts included: a client sending control
    // characters anywhere is refused rather than half-trusted.
    if raw.chars().any(is_forbidden) {
        return Err(NameError::Control);
    }
    let name = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    match name {
        "" => Err(NameError::Empty),
        "." | ".." => Err(NameError::Dots),
        _ if name.len() > NAME_MAX_BYTES => Err(NameError::TooLong),
        _ => Ok(name.to_owned()),
    }
}

/// Control characters (C0, DEL, C1) and the bidirectional marks, embeddings,
/// overrides and isolates.
fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `name` as an RFC 5987 `ext-value` for `filename*=`: `UTF-8''` and the name with every
/// byte outside `attr-char` percent-encoded (so quotes, `;`, spaces and non-ASCII cannot
/// end or split the header value).
pub fn rfc5987(name: &str) -> String {
    let mut out = String::from("UTF-8''");
    for byte in name.bytes() {
        let attr_char = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        if attr_char {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_parts_are_stripped() {
        assert_eq!(sanitise("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(sanitise("a\\b.png").unwrap(), "b.png");
        assert_eq!(sanitise("C:\\Users\\ann\\cat.jpg").unwrap(), "cat.jpg");
        assert_eq!(sanitise("/abs/path/x.txt").unwrap(), "x.txt");
        assert_eq!(sanitise("photo (1).png").unwrap(), "photo (1).png");
        assert_eq!(sanitise("résumé.pdf").unwrap(), "résumé.pdf");
        assert_eq!(sanitise(".hidden").unwrap(), ".hidden");
    }

    #[test]
    fn empty_dots_controls_and_long_names_are_refused() {
        assert_eq!(sanitise(""), Err(NameError::Empty));
        assert_eq!(sanitise("dir/"), Err(NameError::Empty));
        assert_eq!(sanitise("."), Err(NameError::Dots));
        assert_eq!(sanitise(".."), Err(NameError::Dots));
        assert_eq!(sanitise("a/.."), Err(NameError::Dots));
        assert_eq!(sanitise("a\0b.png"), Err(NameError::Control));
        assert_eq!(sanitise("a\nb.png"), Err(NameError::Control));
        assert_eq!(sanitise("a\u{7f}b"), Err(NameError::Control));
        assert_eq!(sanitise("a\u{85}b"), Err(NameError::Control));
        assert_eq!(sanitise("gpj\u{202e}.exe"), Err(NameError::Control));
        // A control character in a stripped directory part refuses the name as well.
        assert_eq!(sanitise("a\nb/c.png"), Err(NameError::Control));
        assert_eq!(sanitise(&"a".repeat(255)).unwrap().len(), 255);
        assert_eq!(sanitise(&"a".repeat(256)), Err(NameError::TooLong));
        // 128 two-byte characters: 256 bytes.
        assert_eq!(sanitise(&"é".repeat(128)), Err(NameError::TooLong));
    }

    #[test]
    fn rfc5987_encodes_everything_outside_attr_char() {
        assert_eq!(rfc5987("cat.png"), "UTF-8''cat.png");
        assert_eq!(rfc5987("a b\";x.png"), "UTF-8''a%20b%22%3Bx.png");
        assert_eq!(rfc5987("é"), "UTF-8''%C3%A9");
        assert_eq!(rfc5987("100%"), "UTF-8''100%25");
    }
}
