//! Username folding: two names that fold alike are the same account name, so "Admin",
//! "ADMIN" and "аdmin" (Cyrillic а) cannot be registered next to "admin".
//!
//! The fold is NFKC (compatibility forms: full-width letters, ligatures), then
//! lowercase, then the Unicode confusable skeleton (UTS #39, `unicode-security`), then
//! lowercase again (a skeleton may map to capitals, e.g. "l" and "I").

use unicode_normalization::UnicodeNormalization;
use unicode_security::confusable_detection::skeleton;

/// The folded form of a (validated) username; unique among accounts.
pub fn fold(name: &str) -> String {
    let nfkc: String = name.trim().nfkc().collect::<String>().to_lowercase();
    skeleton(&nfkc).collect::<String>().to_lowercase()
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
    }
}
