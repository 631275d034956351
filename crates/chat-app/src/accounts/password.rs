//! Passwords: no composition rules, a minimum and maximum length, a short list of common
//! passwords, Argon2id (the `argon2` crate's defaults: m = 19 MiB, t = 2, p = 1, the
//! OWASP recommendation) with a random salt. Only the PHC hash string is stored.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password, in characters.
pub const PASSWORD_MIN: usize = 10;
/// Longest password, in bytes (bounds the hashing work per request).
pub const PASSWORD_MAX_BYTES: usize = 256;

/// Passwords refused whatever their length (lowercased compare).
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "0123456789",
    "1111111111",
    "0000000000",
    "qwertyuiop",
    "1q2w3e4r5t",
    "password123",
    "password1234",
    "passwordpassword",
    "iloveyou123",
    "qwerty12345",
    "qwerty123456",
    "abcdefghij",
    "abc1234567",
    "letmein123",
    "welcome123",
    "administrator",
    "changeme123",
    "football123",
    "baseball123",
    "sunshine123",
    "princess123",
    "trustno1234",
    "monkey12345",
    "dragon12345",
    "123456789a",
    "a123456789",
    "987654321",
    "9876543210",
    "zaq12wsxcde",
    "1qaz2wsx3edc",
    "passw0rd123",
    "p@ssw0rd123",
    "superman123",
    "starwars123",
];

/// Whether `password` may be used, with a reason if not.
pub fn check(password: &str, username: &str) -> Result<(), String> {
    if password.chars().count() < PASSWORD_MIN {
        return Err(format!(
            "password must be at least {PASSWORD_MIN} characters"
        ));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(format!(
            "password must be at most {PASSWORD_MAX_BYTES} bytes"
        ));
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) || lower == username.trim().to_lowercase() {
        return Err("this password is too common: choose another".into());
    }
    Ok(())
}

/// The Argon2id PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters and a generated salt")
        .to_string()
}

/// Whether `password` matches `phc` (false for a malformed hash).
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash to verify against when the user does not exist, so that an unknown user takes
/// as long as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("not a password of anyone"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(check("short", "ann").is_err());
        assert!(check("1234567890", "ann").is_err());
        assert!(check("Password123", "ann").is_err());
        assert!(check("annannann1", "annannann1").is_err());
        assert!(check(&"x".repeat(300), "ann").is_err());
        assert!(check("correct horse battery", "ann").is_ok());
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery");
        let b = hash("correct horse battery");
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(!a.contains("correct horse"));
        assert!(verify("correct horse battery", &a));
        assert!(!verify("wrong horse battery", &a));
        assert!(!verify("x", "not a hash"));
    }
}
