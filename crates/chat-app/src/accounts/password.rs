//! Passwords: no composition rules, a minimum and maximum length, a short list of common
//! passwords, Argon2id (the `argon2` crate's defaults: m = 19 MiB, t = 2, p = 1, the
//! OWASP recommendation) with a random salt. Only the PHC hash string is stored.
//!
//! Argon2's 19 MiB work area is a [`Memory`] the caller passes in, so that the hash
//! queue (`hash_queue`) can hand one area from a finished hash to the next one: Argon2
//! memory is then exactly one area per running hash, allocated no more often than that,
//! whatever the allocator keeps of freed memory.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Memory of one Argon2id hash, in MiB (`m_cost` of `argon2::Params::default()`, the
/// parameters `hash` and `verify` use).
pub const ARGON2_MIB: usize = Params::DEFAULT_M_COST as usize / 1024;

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

/// Argon2's work area for one hash with the parameters [`hash_in`] uses (19 MiB).
pub struct Memory(Vec<Block>);

impl Memory {
    /// A zeroed area (allocated and touched now: 19 MiB of resident memory).
    pub fn new() -> Self {
        Self(vec![Block::new(); Params::DEFAULT.block_count()])
    }

    /// Its size in bytes.
    pub fn bytes(&self) -> usize {
        self.0.len() * Block::SIZE
    }
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

/// The Argon2id PHC string of `password` with a fresh random salt, computed in `memory`.
pub fn hash_in(memory: &mut Memory, password: &str) -> String {
    let argon2 = Argon2::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    // A generated salt is valid B64 of 16 bytes, and the default parameters are valid:
    // none of these can fail.
    let raw_salt = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .expect("a generated salt decodes");
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), raw_salt, out, &mut memory.0)
            .map_err(Into::into)
    })
    .expect("Argon2 with default parameters, a generated salt and its own memory");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).expect("default parameters"),
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string()
}

/// Whether `password` matches `phc`, computed in `memory` (false for a malformed hash,
/// or one whose parameters need more memory than `memory` has: only [`hash_in`] made
/// the hashes this app stores).
pub fn verify_in(memory: &mut Memory, password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    if params.block_count() > memory.0.len() {
        tracing::warn!(
            m_cost = params.m_cost(),
            "a stored password hash needs more memory than this app hashes with: refused"
        );
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(raw_salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), raw_salt, out, &mut memory.0)
            .map_err(Into::into)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok_and(|computed| computed == expected)
}

/// [`hash_in`] with an area of its own (tests, start-up).
pub fn hash(password: &str) -> String {
    hash_in(&mut Memory::new(), password)
}

/// [`verify_in`] with an area of its own (tests).
pub fn verify(password: &str, phc: &str) -> bool {
    verify_in(&mut Memory::new(), password, phc)
}

/// A hash to verify against when the user does not exist, so that an unknown user takes
/// as long as a wrong password: Argon2id with the default parameters (a test checks
/// they are still the ones [`hash_in`] uses), of a password nobody has.
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$qfAFg4M2INKV4PLIeYq6+w$jde5hCRM/KHPjUX3+ZFb5ABSqsq/iuXeGHDG8jcS+Co"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(dummy_hash()).unwrap();
        let real = hash("correct horse battery");
        let real = PasswordHash::new(&real).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert!(verify("not a password of anyone", dummy_hash()));
    }

    #[test]
    fn the_stated_memory_is_the_one_used() {
        assert_eq!(ARGON2_MIB, 19);
        assert_eq!(
            Argon2::default().params().m_cost() as usize,
            ARGON2_MIB * 1024
        );
    }

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

    #[test]
    fn hashes_of_the_argon2_crate_verify_here_and_ours_there() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let mut memory = Memory::new();
        assert_eq!(memory.bytes(), ARGON2_MIB * 1024 * 1024);
        assert!(verify_in(&mut memory, "correct horse battery", &theirs));
        assert!(!verify_in(&mut memory, "correct horse batterY", &theirs));
        // The same area again, for a hash of ours, checked by the crate's own verifier.
        let ours = hash_in(&mut memory, "correct horse battery");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        assert!(verify_in(&mut memory, "correct horse battery", &ours));
        // A hash asking for more memory than the area has is refused, not computed.
        let big = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(2 * Params::DEFAULT_M_COST, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert!(!verify_in(&mut memory, "pw", &big));
    }
}
