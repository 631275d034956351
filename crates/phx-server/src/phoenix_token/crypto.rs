//! Plug.Crypto's three pieces, byte for byte: `KeyGenerator` (PBKDF2 per salt, cached),
//! `MessageVerifier` (the `SFMyNTY.` HMAC form) and `MessageEncryptor` (the `XCP.`
//! XChaCha20-Poly1305 form).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use hmac::digest::FixedOutput;
use hmac::{EagerHash, Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::{Sha256, Sha384, Sha512};

/// Length of every derived key: Plug.Crypto's `key_length` default, and the key size of
/// XChaCha20-Poly1305 (Plug.Crypto's encryptor only accepts 256-bit keys).
pub(crate) const KEY_LENGTH: usize = 32;

/// A derived key.
pub(crate) type Key = [u8; KEY_LENGTH];

/// The hash PBKDF2 runs HMAC with: Plug.Crypto's `:key_digest` option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyDigest {
    /// `:sha256`, the default.
    #[default]
    Sha256,
    /// `:sha384`.
    Sha384,
    /// `:sha512`.
    Sha512,
}

/// How keys are derived from `secret_key_base`: Plug.Crypto's `:key_iterations` and
/// `:key_digest` options (`:key_length` is always 32 here).
///
/// Only needed when the Phoenix side passes those options to `Phoenix.Token`; the
/// default matches Phoenix's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyDerivation {
    /// PBKDF2 iterations (`:key_iterations`, default 1 000). Zero is treated as one,
    /// since Plug.Crypto refuses zero.
    pub iterations: u32,
    /// PBKDF2 hash (`:key_digest`, default SHA-256).
    pub digest: KeyDigest,
}

impl Default for KeyDerivation {
    fn default() -> Self {
        Self {
            iterations: 1_000,
            digest: KeyDigest::Sha256,
        }
    }
}

/// How many salts' keys are kept. Apps use a handful of fixed salts ("user socket",
/// "user auth"); the bound only matters if an app derives salts from input.
pub(crate) const KEY_CACHE_CAPACITY: usize = 64;

/// `Plug.Crypto.KeyGenerator` with its cache: one PBKDF2 run per salt, not per token.
pub(crate) struct KeyGenerator {
    secret_key_base: Vec<u8>,
    derivation: KeyDerivation,
    cache: Mutex<HashMap<Vec<u8>, Key>>,
}

impl KeyGenerator {
    pub(crate) fn new(secret_key_base: &[u8], derivation: KeyDerivation) -> Self {
        Self {
            secret_key_base: secret_key_base.to_vec(),
            derivation,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The key for `salt`: `pbkdf2_hmac(digest, secret_key_base, salt, iterations, 32)`.
    pub(crate) fn key(&self, salt: &[u8]) -> Key {
        // A panic elsewhere cannot leave the map half-written, so a poisoned lock is fine.
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(salt)
            .copied();
        if let Some(key) = cached {
            return key;
        }
        // Derived outside the lock: two threads may both derive a new salt once, which
        // is cheaper than making every verification wait behind a PBKDF2 run.
        let key = self.derive(salt);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= KEY_CACHE_CAPACITY && !cache.contains_key(salt) {
            // Any entry will do: the cache is a bound on memory, not an LRU.
            if let Some(evicted) = cache.keys().next().cloned() {
                cache.remove(&evicted);
            }
        }
        cache.insert(salt.to_vec(), key);
        key
    }

    fn derive(&self, salt: &[u8]) -> Key {
        let password = self.secret_key_base.as_slice();
        let rounds = self.derivation.iterations.max(1);
        let mut key = [0u8; KEY_LENGTH];
        match self.derivation.digest {
            KeyDigest::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, rounds, &mut key),
            KeyDigest::Sha384 => pbkdf2::pbkdf2_hmac::<Sha384>(password, salt, rounds, &mut key),
            KeyDigest::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, rounds, &mut key),
        }
        key
    }

    #[cfg(test)]
    pub(crate) fn cached_salts(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The protected header of the signed form: base64url of `"HS256"`. Plug.Crypto signs
/// with SHA-256 only, but verifies the SHA-384 and SHA-512 headers too.
pub(crate) const HS256: &str = "SFMyNTY";
const HS384: &str = "SFMzODQ";
const HS512: &str = "SFM1MTI";

/// `MessageVerifier.sign/2`: `"SFMyNTY." <> b64(payload) <> "." <> b64(mac)`, the MAC
/// being HMAC-SHA256 over the text before the second dot; base64url without padding.
pub(crate) fn sign(payload: &[u8], key: &Key) -> String {
    let mut token = format!("{HS256}.{}", URL_SAFE_NO_PAD.encode(payload));
    let mac = hmac::<Sha256>(key, token.as_bytes()).finalize_fixed();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(mac));
    token
}

/// `MessageVerifier.verify/2`: the payload of a well-formed token whose MAC checks,
/// compared in constant time.
pub(crate) fn verify(token: &str, key: &Key) -> Option<Vec<u8>> {
    let mut parts = token.split('.');
    let (protected, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let signed_text_len = protected.len() + 1 + payload.len();
    let signed_text = token.as_bytes().get(..signed_text_len)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let valid = match protected {
        HS256 => hmac::<Sha256>(key, signed_text).verify_slice(&signature),
        HS384 => hmac::<Sha384>(key, signed_text).verify_slice(&signature),
        HS512 => hmac::<Sha512>(key, signed_text).verify_slice(&signature),
        _ => return None,
    };
    valid.ok().map(|()| payload)
}

fn hmac<D: EagerHash>(key: &Key, text: &[u8]) -> Hmac<D>
where
    Hmac<D>: KeyInit + Mac,
{
    // HMAC accepts keys of any length, so this cannot fail for a 32-byte key.
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    Mac::update(&mut mac, text);
    mac
}

/// The encrypted form's prefix.
pub(crate) const XCP: &str = "XCP.";

/// The additional authenticated data of the encrypted form. `Plug.Crypto.encrypt`
/// calls `MessageEncryptor.encrypt(message, secret, "")`, which leaves the `aad`
/// parameter at its default, `"A128GCM"` (the empty string is the unused legacy
/// `sign_secret`).
const AAD: &[u8] = b"A128GCM";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// `MessageEncryptor.encrypt/3`: XChaCha20-Poly1305 under the derived key with a random
/// 24-byte nonce; `"XCP." <> b64(nonce ‖ tag ‖ ciphertext)` (tag before ciphertext).
pub(crate) fn encrypt(plaintext: &[u8], key: &Key) -> String {
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut ciphertext = plaintext.to_vec();
    // Errors only for messages past 256 GiB, which no token is.
    let tag = cipher
        .encrypt_inout_detached(&XNonce::from(nonce), AAD, ciphertext.as_mut_slice().into())
        .expect("token payload within the XChaCha20-Poly1305 message limit");
    let mut sealed = Vec::with_capacity(NONCE_LEN + TAG_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&tag);
    sealed.extend_from_slice(&ciphertext);
    format!("{XCP}{}", URL_SAFE_NO_PAD.encode(sealed))
}

/// `MessageEncryptor.decrypt/3` for the `XCP.` form: the plaintext if the tag checks.
pub(crate) fn decrypt(token: &str, key: &Key) -> Option<Vec<u8>> {
    let sealed = URL_SAFE_NO_PAD.decode(token.strip_prefix(XCP)?).ok()?;
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (tag, ciphertext) = rest.split_at(TAG_LEN);
    let nonce = XNonce::try_from(nonce).ok()?;
    let tag = Tag::try_from(tag).ok()?;
    let mut plaintext = ciphertext.to_vec();
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    cipher
        .decrypt_inout_detached(&nonce, AAD, plaintext.as_mut_slice().into(), &tag)
        .ok()?;
    Some(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_pbkdf2_hmac_sha256_of_the_secret_and_salt() {
        // RFC 7914 §11 PBKDF2-HMAC-SHA256 test vector ("passwd", "salt", c = 1).
        let keys = KeyGenerator::new(
            b"passwd",
            KeyDerivation {
                iterations: 1,
                digest: KeyDigest::Sha256,
            },
        );
        let expected = [
            0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f, 0xec, 0x16, 0x91, 0xc2, 0x25, 0x44,
            0xb6, 0x05, 0xf9, 0x41, 0x85, 0x21, 0x6d, 0xde, 0x04, 0x65, 0xe6, 0x8b, 0x9d, 0x57,
            0xc2, 0x0d, 0xac, 0xbc,
        ];
        assert_eq!(keys.key(b"salt"), expected);
    }

    #[test]
    fn key_cache_is_bounded() {
        let keys = KeyGenerator::new(
            b"secret",
            KeyDerivation {
                iterations: 1,
                digest: KeyDigest::Sha256,
            },
        );
        let first = keys.key(b"salt 0");
        for i in 0..KEY_CACHE_CAPACITY * 3 {
            keys.key(format!("salt {i}").as_bytes());
            assert!(keys.cached_salts() <= KEY_CACHE_CAPACITY);
        }
        assert_eq!(keys.cached_salts(), KEY_CACHE_CAPACITY);
        // An evicted salt derives the same key again.
        assert_eq!(keys.key(b"salt 0"), first);
    }

    #[test]
    fn sha384_and_sha512_headers_verify_like_plug() {
        let key = [7u8; KEY_LENGTH];
        let payload = URL_SAFE_NO_PAD.encode(b"data");
        for (header, mac) in [
            (
                HS384,
                hmac::<Sha384>(&key, format!("{HS384}.{payload}").as_bytes())
                    .finalize_fixed()
                    .to_vec(),
            ),
            (
                HS512,
                hmac::<Sha512>(&key, format!("{HS512}.{payload}").as_bytes())
                    .finalize_fixed()
                    .to_vec(),
            ),
        ] {
            let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac));
            assert_eq!(verify(&token, &key).as_deref(), Some(&b"data"[..]));
        }
    }

    #[test]
    fn encryption_round_trips_and_uses_a_fresh_nonce() {
        let key = [9u8; KEY_LENGTH];
        let a = encrypt(b"payload", &key);
        let b = encrypt(b"payload", &key);
        assert_ne!(a, b);
        assert_eq!(decrypt(&a, &key).as_deref(), Some(&b"payload"[..]));
        assert_eq!(decrypt(&a, &[8u8; KEY_LENGTH]), None);
        assert_eq!(decrypt("XCP.", &key), None);
        assert_eq!(decrypt("XCP.AAAA", &key), None);
    }
}
