//! Signed, expiring long-poll session tokens (§7.2).
//!
//! The token is the only credential of a long-poll session, so it is unforgeable
//! (HMAC-SHA256 under a key derived from `secret_key_base`) and unguessable (the session
//! id inside is 64 random bits). Format: `base64url(id ‖ issued_at) "." base64url(mac)`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Phoenix's long-poll token max age: 14 days.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(1_209_600);

/// Signs and verifies session tokens.
pub(crate) struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Signer {
    /// Derives the signing key from `secret_key_base` (so the raw secret is never the
    /// MAC key of user-visible data).
    pub(crate) fn new(secret_key_base: &[u8]) -> Self {
        let mut mac =
            HmacSha256::new_from_slice(secret_key_base).expect("HMAC takes any key length");
        mac.update(b"phx-rs long-poll session token v1");
        let mut key = [0u8; 32];
        key.copy_from_slice(&mac.finalize().into_bytes());
        Self { key }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    pub(crate) fn sign(&self, session: u64) -> String {
        self.sign_at(session, now_secs())
    }

    fn sign_at(&self, session: u64, issued_at: u64) -> String {
        let mut data = [0u8; 16];
        data[..8].copy_from_slice(&session.to_be_bytes());
        data[8..].copy_from_slice(&issued_at.to_be_bytes());
        let mut mac = self.mac();
        mac.update(&data);
        let sig = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(data),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// The session id of a token that verifies and has not expired.
    pub(crate) fn verify(&self, token: &str) -> Option<u64> {
        self.verify_at(token, now_secs())
    }

    fn verify_at(&self, token: &str, now: u64) -> Option<u64> {
        let (data, sig) = token.split_once('.')?;
        let data = URL_SAFE_NO_PAD.decode(data).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut mac = self.mac();
        mac.update(&data);
        mac.verify_slice(&sig).ok()?;
        let session = u64::from_be_bytes(data.get(..8)?.try_into().ok()?);
        let issued_at = u64::from_be_bytes(data.get(8..16)?.try_into().ok()?);
        (now.saturating_sub(issued_at) <= MAX_AGE.as_secs()).then_some(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_to_its_session() {
        let signer = Signer::new(b"secret");
        assert_eq!(signer.verify(&signer.sign(42)), Some(42));
    }

    #[test]
    fn tampered_or_foreign_tokens_do_not_verify() {
        let signer = Signer::new(b"secret");
        let token = signer.sign(42);
        let (data, sig) = token.split_once('.').unwrap();
        let mut forged = URL_SAFE_NO_PAD.decode(data).unwrap();
        forged[7] ^= 1; // session 43 with 42's signature
        assert_eq!(
            signer.verify(&format!("{}.{sig}", URL_SAFE_NO_PAD.encode(forged))),
            None
        );
        assert_eq!(Signer::new(b"other").verify(&token), None);
        assert_eq!(signer.verify("garbage"), None);
        assert_eq!(signer.verify(""), None);
    }

    #[test]
    fn tokens_carry_the_wall_clock_time_they_were_issued_at() {
        let signer = Signer::new(b"secret");
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = signer.sign(9);
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let data = URL_SAFE_NO_PAD
            .decode(token.split_once('.').unwrap().0)
            .unwrap();
        let issued_at = u64::from_be_bytes(data[8..16].try_into().unwrap());
        assert!((before..=after).contains(&issued_at), "{issued_at}");
        // A token issued more than MAX_AGE ago no longer verifies against today's clock.
        let old = signer.sign_at(9, before - MAX_AGE.as_secs() - 60);
        assert_eq!(signer.verify(&old), None);
    }

    #[test]
    fn tokens_expire_after_max_age() {
        let signer = Signer::new(b"secret");
        let token = signer.sign_at(7, 1_000);
        assert_eq!(signer.verify_at(&token, 1_000 + MAX_AGE.as_secs()), Some(7));
        assert_eq!(signer.verify_at(&token, 1_001 + MAX_AGE.as_secs()), None);
    }
}
