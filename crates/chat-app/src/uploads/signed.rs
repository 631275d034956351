//! Short-lived signed URLs for uploaded files (docs/chat.md, "Who can fetch a file").
//!
//! An `<img>` cannot send the session token, so a file's URL carries its own
//! authority: `/uploads/<id>-<viewer>-<expiry>-<signature>` (and `…/thumb`), where
//! `viewer` is who it was handed to (`u<user id>` or `g<guest id>`), `expiry` a Unix
//! time in seconds and `signature` the first 128 bits of HMAC-SHA-256, in hex, over the
//! three, keyed from the server secret. The server hands a URL only to who may read the
//! message the file is in (a room's members, through the join reply, `history`,
//! `thread`, the broadcasts and the `attachments` event) and to its uploader before it
//! is posted; a URL stops working at its expiry or when the file is deleted.
//!
//! The whole URL is one path segment of `[A-Za-z0-9-]`, the shape the page already
//! accepts for an upload URL, so the page shows signed URLs unchanged.
//!
//! Expiries are rounded up to a quarter of the lifetime, so the URLs one viewer gets for
//! one file within that quarter are the same and the browser's cache serves them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::store::is_id;

/// How long a signed URL works by default: 1 hour (to 1 h 15 min, rounded up).
pub const DEFAULT_URL_TTL: Duration = Duration::from_secs(3600);
/// Hex digits of a signature (128 bits).
const SIG_HEX: usize = 32;
/// Longest viewer: `g` and a 32-hex-digit guest id.
const VIEWER_MAX: usize = 33;
/// What the key is derived for: another use of the same secret gets another key.
const KEY_CONTEXT: &[u8] = b"phx-chat upload urls v1";

/// Who a URL was handed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer(String);

impl Viewer {
    /// A signed-in user.
    pub fn user(id: i64) -> Self {
        Self(format!("u{id}"))
    }

    /// A guest, by guest id (32 hex digits, see `connect`).
    pub fn guest(guest_id: &str) -> Self {
        let id: String = guest_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(VIEWER_MAX - 1)
            .collect();
        Self(format!("g{id}"))
    }

    /// From a message author key (`user:<id>` / `guest:<guest id>`).
    pub fn of_author(author: &str) -> Option<Self> {
        if let Some(id) = author.strip_prefix("user:") {
            return id.parse().ok().map(Self::user);
        }
        author.strip_prefix("guest:").map(Self::guest)
    }

    /// As it appears in a URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_at_checked(1)?;
        let valid = match kind {
            "u" => !rest.is_empty() && rest.len() <= 19 && rest.bytes().all(|b| b.is_ascii_digit()),
            "g" => {
                !rest.is_empty()
                    && rest.len() < VIEWER_MAX
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric())
            }
            _ => false,
        };
        valid.then(|| Self(text.to_owned()))
    }
}

/// A file's URLs for one viewer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedUrls {
    /// `/uploads/<token>`.
    pub url: String,
    /// `/uploads/<token>/thumb`.
    pub thumb_url: String,
    /// Unix seconds after which both stop working.
    pub expires: u64,
}

/// Why a URL is refused (all `403`, whether or not the file exists: the answer says
/// nothing about a file to who has no valid URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a signed URL at all (a bare id, a made-up path).
    #[error("this link needs a signature: open the file from the chat")]
    Unsigned,
    /// A signed URL whose signature does not match (tampered, or another server's).
    #[error("this link is not valid: open the file from the chat")]
    BadSignature,
    /// Past its expiry.
    #[error("this link has expired: open the file from the chat again")]
    Expired,
}

/// A token's parts once verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The upload id.
    pub id: String,
    /// Who it was handed to.
    pub viewer: Viewer,
    /// Unix seconds.
    pub expires: u64,
}

/// Signs and checks file URLs with a key derived from the server secret.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; 32],
    ttl: Duration,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length")
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl UrlSigner {
    /// URLs valid for `ttl` (at least a second), signed with a key derived from `secret`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut derive = mac(secret);
        derive.update(KEY_CONTEXT);
        Self {
            key: derive.finalize().into_bytes().into(),
            ttl: ttl.max(Duration::from_secs(1)),
        }
    }

    /// The lifetime of a URL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn signature(&self, id: &str, viewer: &Viewer, expires: u64) -> Hmac<Sha256> {
        let mut mac = mac(&self.key);
        for part in [id.as_bytes(), viewer.as_str().as_bytes()] {
            mac.update(part);
            mac.update(b"\0");
        }
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The URLs of upload `id` for `viewer`, as of `now` (Unix seconds).
    pub fn sign(&self, id: &str, viewer: &Viewer, now: u64) -> SignedUrls {
        let ttl = self.ttl.as_secs().max(1);
        let step = (ttl / 4).max(1);
        let expires = (now + ttl).div_ceil(step) * step;
        let mac = self.signature(id, viewer, expires).finalize().into_bytes();
        let sig: String = mac
            .iter()
            .take(SIG_HEX / 2)
            .map(|b| format!("{b:02x}"))
            .collect();
        let token = format!("{id}-{}-{expires}-{sig}", viewer.as_str());
        SignedUrls {
            url: format!("/uploads/{token}"),
            thumb_url: format!("/uploads/{token}/thumb"),
            expires,
        }
    }

    /// The upload a token (the path segment after `/uploads/`) grants, as of `now`.
    pub fn verify(&self, token: &str, now: u64) -> Result<Verified, UrlError> {
        let mut parts = token.splitn(4, '-');
        let (Some(id), Some(viewer), Some(expires), Some(sig)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(UrlError::Unsigned);
        };
        let viewer = Viewer::parse(viewer);
        let expires = (expires.len() <= 12 && expires.bytes().all(|b| b.is_ascii_digit()))
            .then(|| expires.parse::<u64>().ok())
            .flatten();
        let sig = decode_hex(sig);
        let (true, Some(viewer), Some(expires), Some(sig)) = (is_id(id), viewer, expires, sig)
        else {
            return Err(UrlError::Unsigned);
        };
        self.signature(id, &viewer, expires)
            .verify_truncated_left(&sig)
            .map_err(|_| UrlError::BadSignature)?;
        if expires < now {
            return Err(UrlError::Expired);
        }
        Ok(Verified {
            id: id.to_owned(),
            viewer,
            expires,
        })
    }
}

/// Exactly [`SIG_HEX`] lowercase hex digits as bytes.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != SIG_HEX {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn token(url: &str) -> &str {
        url.strip_prefix("/uploads/").unwrap()
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let signer = UrlSigner::new(b"secret", Duration::from_secs(3600));
        let urls = signer.sign(ID, &Viewer::user(42), 1_000_000);
        assert!(
            urls.expires >= 1_003_600 && urls.expires <= 1_004_500,
            "{}",
            urls.expires
        );
        assert_eq!(urls.thumb_url, format!("{}/thumb", urls.url));
        // One path segment of the characters the page accepts.
        assert!(token(&urls.url)
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        let ok = signer.verify(token(&urls.url), 1_003_000).unwrap();
        assert_eq!((ok.id.as_str(), ok.viewer.as_str()), (ID, "u42"));
        assert_eq!(
            signer.verify(token(&urls.url), urls.expires + 1),
            Err(UrlError::Expired)
        );
        // Rounded: the same URL for a quarter of the lifetime, so caches reuse it.
        assert_eq!(signer.sign(ID, &Viewer::user(42), 1_000_001).url, urls.url);
    }

    #[test]
    fn any_change_to_a_url_breaks_it() {
        let signer = UrlSigner::new(b"secret", Duration::from_secs(60));
        let urls = signer.sign(ID, &Viewer::guest("ab12"), 500);
        let good = token(&urls.url).to_owned();
        let parts: Vec<&str> = good.split('-').collect();
        let other_id = "f".repeat(32);
        for forged in [
            format!("{other_id}-{}-{}-{}", parts[1], parts[2], parts[3]),
            format!("{}-u1-{}-{}", parts[0], parts[2], parts[3]),
            format!("{}-{}-99999999-{}", parts[0], parts[1], parts[3]),
            format!("{}-{}-{}-{}", parts[0], parts[1], parts[2], "0".repeat(32)),
        ] {
            assert_eq!(
                signer.verify(&forged, 500),
                Err(UrlError::BadSignature),
                "{forged}"
            );
        }
        let other_server = UrlSigner::new(b"another secret", Duration::from_secs(60));
        assert_eq!(other_server.verify(&good, 500), Err(UrlError::BadSignature));
        for unsigned in [
            ID,
            "",
            "../../etc/passwd",
            &format!("{ID}-u1-5"),
            &format!("{ID}-x1-5-{}", "0".repeat(32)),
            &format!("{ID}-u1-5-{}", "0".repeat(31)),
            &format!("{ID}-u1-5-{}", "G".repeat(32)),
            &format!("{ID}-u-5-{}", "0".repeat(32)),
            &format!("{ID}-u1-1234567890123-{}", "0".repeat(32)),
            &format!("{}-u1-5-{}", ID.to_uppercase(), "0".repeat(32)),
        ] {
            assert_eq!(
                signer.verify(unsigned, 0),
                Err(UrlError::Unsigned),
                "{unsigned}"
            );
        }
    }

    #[test]
    fn viewers_come_from_author_keys() {
        assert_eq!(Viewer::of_author("user:7"), Some(Viewer::user(7)));
        assert_eq!(
            Viewer::of_author("guest:00ff").map(|v| v.as_str().to_owned()),
            Some("g00ff".into())
        );
        assert_eq!(Viewer::of_author("ann"), None);
        assert_eq!(Viewer::of_author("user:x"), None);
    }
}
