//! Name folding: two names that fold alike are the same account name, so "Admin",
//! "ADMIN" and "аdmin" (Cyrillic а) cannot be registered next to "admin"; the same for
//! room names ("Release-Team" beside "release-team") and guest names.
//!
//! The fold is NFKC (compatibility forms: full-width letters, ligatures), then
//! lowercase, then the Unicode confusable skeleton (UTS #39, `unicode-security`), then
//! lowercase again (a skeleton may map to capitals, e.g. "l" and "I").

use unicode_normalization::UnicodeNormalization;
use unicode_security::confusable_detection::skeleton;
use unicode_security::MixedScript;

/// The folded form of a (validated) name; unique among accounts, and among rooms.
pub fn fold(name: &str) -> String {
    let nfkc: String = name.trim().nfkc().collect::<String>().to_lowercase();
    skeleton(&nfkc).collect::<String>().to_lowercase()
}

/// Whether a name is in one script (UTS #39 "single-script", after NFKC): digits and
/// punctuation go with any script, and Japanese kana with Han count as one. "rеlease"
/// with a Cyrillic е is not; neither Latin "release" nor Cyrillic "релиз" mixes.
pub fn single_script(name: &str) -> bool {
    let nfkc: String = name.nfkc().collect();
    nfkc.as_str().is_single_script()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_confusables_fold_alike() {
        assert_eq!(fold("admin"), fold("Admin"));
        assert_eq!(fold("admin"), fold("ADMIN"));
        assert_eq!(fold("admin"), fold("\u{430}dmin")); // Cyrillic а
        assert_eq!(fold("admin"), fold("ａｄｍｉｎ")); // full width
        assert_ne!(fold("admin"), fold("admins"));
        assert_ne!(fold("ann"), fold("bob"));
        assert_eq!(fold("release-team"), fold("R\u{435}lease-Team"));
    }

    #[test]
    fn mixed_scripts_are_told_apart_from_one_script() {
        for one in [
            "release-team",
            "room_42",
            "\u{440}\u{435}\u{43b}\u{438}\u{437}",
            "日本語のへや",
            "ｒｅｌｅａｓｅ",
            "x.y-z",
        ] {
            assert!(single_script(one), "{one}");
        }
        for mixed in ["r\u{435}lease", "\u{430}dmin", "abcαβγ"] {
            assert!(!single_script(mixed), "{mixed}");
        }
    }
}
