//! `Phoenix.Token`, byte-compatible: verify in phx-rs the tokens an existing Phoenix
//! backend issues, and issue tokens that Phoenix verifies.
//!
//! A Phoenix app typically renders a token into its page,
//!
//! ```elixir
//! token = Phoenix.Token.sign(MyAppWeb.Endpoint, "user socket", user.id)
//! ```
//!
//! and phoenix.js passes it as a connect param
//! (`new Socket("/socket", {params: {token}})`). With the same `secret_key_base`, a
//! phx-rs [`Connect`](crate::Connect) hook verifies it:
//!
//! ```
//! use phx_server::phoenix_token::{Token, VerifyOptions};
//! use phx_server::{Connect, ConnectInfo, Connected, Params, Refusal, SocketConfig};
//!
//! struct UserSocket {
//!     tokens: Token,
//! }
//!
//! /// What channels of this socket know about the user.
//! struct UserId(u64);
//!
//! impl Connect for UserSocket {
//!     type Assigns = UserId;
//!
//!     async fn connect(&self, params: &Params, _info: &ConnectInfo) -> Result<Connected<UserId>, Refusal> {
//!         // Phoenix: Phoenix.Token.verify(socket, "user socket", token, max_age: 1_209_600)
//!         let options = VerifyOptions::default().max_age(std::time::Duration::from_secs(1_209_600));
//!         let user_id = match self.tokens.verify("user socket", params.get_str("token"), options) {
//!             // The data is whatever the Phoenix side signed: here an integer id.
//!             Ok(data) => data.as_u64().ok_or_else(Refusal::forbidden)?,
//!             Err(error) => {
//!                 // Missing, Invalid, Expired, NotYetValid, ...
//!                 tracing::info!(%error, "refused socket");
//!                 return Err(Refusal::forbidden());
//!             }
//!         };
//!         Ok(Connected::new(UserId(user_id)).with_id(format!("users_socket:{user_id}")))
//!     }
//! }
//!
//! // The same secret_key_base as `config :my_app, MyAppWeb.Endpoint, secret_key_base: ...`.
//! let tokens = Token::new("a-secret-key-base-of-at-least-64-bytes-shared-with-the-phoenix-app");
//! let config = SocketConfig::new(UserSocket { tokens: tokens.clone() });
//! # let _ = config;
//!
//! // What Phoenix.Token.sign(endpoint, "user socket", 42) would hand the page:
//! let token = tokens.sign("user socket", &serde_json::json!(42));
//! assert!(token.starts_with("SFMyNTY."));
//! # let params = Params::from_query(&format!("token={token}&vsn=2.0.0")).unwrap();
//! # let info = ConnectInfo {
//! #     peer_addr: None,
//! #     uri: "/socket/websocket".parse().unwrap(),
//! #     headers: Default::default(),
//! #     auth_token: None,
//! #     transport: phx_server::Transport::WebSocket,
//! # };
//! # let socket = UserSocket { tokens };
//! # let connected = tokio::runtime::Builder::new_current_thread()
//! #     .build()
//! #     .unwrap()
//! #     .block_on(socket.connect(&params, &info))
//! #     .unwrap();
//! # assert_eq!(connected.id.as_deref(), Some("users_socket:42"));
//! ```
//!
//! # What "compatible" covers
//!
//! This follows `Phoenix.Token` as implemented by Plug.Crypto 2.x (checked against
//! Phoenix 1.7.14 with plug_crypto 2.1.0, whose tokens are in this crate's tests):
//!
//! - **Key**: `PBKDF2-HMAC-SHA256(secret_key_base, salt, 1 000 iterations, 32 bytes)`,
//!   one key per salt, cached (as Plug.Crypto caches it; PBKDF2 costs 1 000 HMACs).
//!   Phoenix's `:key_iterations` and `:key_digest` options map to [`KeyDerivation`].
//! - **Payload**: `:erlang.term_to_binary({data, signed_at_ms, max_age_s})`, a 3-tuple:
//!   the data, the signing time in **milliseconds** since the Unix epoch, and the max age
//!   in **seconds** (default 86 400, or the atom `:infinity`). Verification also accepts
//!   the older envelopes Plug.Crypto still reads: `{data, signed_at_ms}` and
//!   `%{data: data, signed: signed_at_ms}`, both with a max age of 86 400 s.
//! - **Signed form** ([`Token::sign`]): `"SFMyNTY." <> b64(payload) <> "." <> b64(mac)`,
//!   where `SFMyNTY` is base64url of `HS256`, `mac` is HMAC-SHA256 under the derived key
//!   over the text before the second dot, and `b64` is base64url without padding.
//!   [`Token::verify`] also accepts the `SFMzODQ` (HMAC-SHA384) and `SFM1MTI`
//!   (HMAC-SHA512) headers, as Plug.Crypto does. MACs are compared in constant time.
//! - **Encrypted form** ([`Token::encrypt`]): XChaCha20-Poly1305 (not AES-GCM) under the
//!   derived key, with a random 24-byte nonce and the additional data `"A128GCM"`;
//!   `"XCP." <> b64(nonce ‖ tag ‖ ciphertext)`. Plug.Crypto 2.x still decrypts the
//!   AES-GCM `A128GCM` tokens of Plug.Crypto 1.x; phx-rs does not (they are refused as
//!   [`TokenError::Invalid`]).
//! - **Expiry**: a token is expired when `signed_at_ms + trunc(max_age_s * 1000) < now_ms`,
//!   or at once when the max age is zero or negative; the max age is the one signed into
//!   the token unless [`VerifyOptions::max_age`] overrides it, and
//!   [`MaxAge::Infinity`] never expires.
//! - **Errors** ([`TokenError`]): Phoenix's `:missing` (no token), `:invalid` (anything
//!   that is not a token this key signed) and `:expired`, plus cases Phoenix does not
//!   have (below).
//!
//! Where phx-rs differs, and why:
//!
//! - **Tokens from the future.** Plug.Crypto accepts a token whose `signed_at` lies in
//!   the future (only expiry is checked). phx-rs refuses one signed more than
//!   [`VerifyOptions::max_clock_skew`] (default 60 s) ahead of its clock with
//!   [`TokenError::NotYetValid`]: such a token means a broken clock or a forged
//!   `signed_at`, and would outlive its max age. Allow clock skew generously between
//!   hosts, or set `max_clock_skew` to `None` for Phoenix's behaviour.
//! - **Data that JSON cannot hold.** The data comes back as a [`serde_json::Value`], by
//!   the table below. Terms outside it (pids, references, funs, ports, bitstrings,
//!   non-UTF-8 binaries…) are refused with [`TokenError::Payload`] where Phoenix would
//!   return them; malformed envelopes are [`TokenError::Envelope`] where Phoenix raises.
//! - **Byte-identical signing** holds for the JSON data types below, with maps of up to
//!   32 keys (Erlang writes larger maps in its internal hash order; phx-rs writes them
//!   sorted, which Phoenix decodes to the same map). Atoms are written as OTP 26+ does
//!   (UTF-8 atom tags); OTP 25 and older wrote `nil`/`true`/`false` with Latin-1 tags,
//!   so tokens holding `null` or booleans differ in bytes (not in meaning) from those.
//!
//! # Data mapping
//!
//! | Elixir term | JSON | signed by phx-rs as |
//! |---|---|---|
//! | integer fitting `i64` or `u64` | number | the same integer |
//! | larger integer | string of its decimal digits (up to 1 024 bytes) | a string |
//! | float | number | float |
//! | `true`, `false` | `true`, `false` | the atoms |
//! | `nil` | `null` | `nil` |
//! | any other atom (`:admin`) | string (`"admin"`) | a string |
//! | binary holding UTF-8 text | string | binary |
//! | list, including a charlist (`'ab'`) | array (`[97, 98]`) | list |
//! | tuple (`{:ok, 1}`) | array (`["ok", 1]`) | list |
//! | map with atom or string keys | object, keys as strings | map with string keys |
//!
//! Refused with [`TermError`]: improper lists, binaries that are not UTF-8, map keys
//! that are not atoms or strings, two keys that become the same string (`:id` and
//! `"id"`), and every other term type. A compressed payload (`term_to_binary(T,
//! [:compressed])`, which Plug.Crypto never writes but reads) is read like any other, up
//! to 1 MiB inflated. Any JSON value signed by phx-rs verifies to the same value. The
//! term codec (`src/etf`) is shared with the Phoenix mode of the Redis adapter.

mod crypto;
mod json;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use thiserror::Error;

pub use crate::etf::TermError;
pub use crypto::{KeyDerivation, KeyDigest};
pub use json::MAX_BIG_BYTES;

use crate::etf::{self as term, json::from_json, Term};
use crypto::KeyGenerator;

/// Phoenix's default max age: one day, in seconds.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(86_400);

/// The default [`VerifyOptions::max_clock_skew`].
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Signs, verifies, encrypts and decrypts `Phoenix.Token` tokens under one
/// `secret_key_base`. Cheap to clone (the key cache is shared).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use phx_server::phoenix_token::{Token, TokenError, VerifyOptions};
/// use serde_json::json;
///
/// let tokens = Token::new("my-secret-key-base");
/// let token = tokens.sign("user auth", &json!({"id": 7}));
/// assert_eq!(tokens.verify("user auth", token.as_str(), VerifyOptions::default()), Ok(json!({"id": 7})));
/// assert_eq!(tokens.verify("other salt", token.as_str(), VerifyOptions::default()), Err(TokenError::Invalid));
///
/// // Two days later the default one-day max age has passed.
/// let later = VerifyOptions::default().now(SystemTime::now() + Duration::from_secs(172_800));
/// assert_eq!(tokens.verify("user auth", token.as_str(), later), Err(TokenError::Expired));
/// ```
#[derive(Clone)]
pub struct Token {
    keys: Arc<KeyGenerator>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str("Token(..)")
    }
}

/// How long a token lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaxAge {
    /// Expires this long after `signed_at` (millisecond precision; zero means expired).
    Limited(Duration),
    /// Never expires (Elixir's `:infinity`).
    Infinity,
}

impl From<Duration> for MaxAge {
    fn from(duration: Duration) -> Self {
        Self::Limited(duration)
    }
}

/// Options of [`Token::sign_with`] and [`Token::encrypt_with`]: Phoenix's `:signed_at`
/// and `:max_age`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignOptions {
    /// When the token counts as signed; `None` means now. Stored with millisecond
    /// precision, like Phoenix's `trunc(signed_at * 1000)`.
    pub signed_at: Option<SystemTime>,
    /// The max age written into the token (default one day), which verification uses
    /// unless [`VerifyOptions::max_age`] overrides it. Whole seconds are written as an
    /// integer, like Phoenix's default; other durations as float seconds.
    pub max_age: MaxAge,
}

impl Default for SignOptions {
    fn default() -> Self {
        Self {
            signed_at: None,
            max_age: MaxAge::Limited(DEFAULT_MAX_AGE),
        }
    }
}

impl SignOptions {
    /// Sets [`SignOptions::signed_at`].
    pub fn signed_at(mut self, signed_at: SystemTime) -> Self {
        self.signed_at = Some(signed_at);
        self
    }

    /// Sets [`SignOptions::max_age`].
    pub fn max_age(mut self, max_age: impl Into<MaxAge>) -> Self {
        self.max_age = max_age.into();
        self
    }
}

/// Options of [`Token::verify`] and [`Token::decrypt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Overrides the max age signed into the token (Phoenix's `:max_age` on `verify/4`).
    /// `None` (the default) uses the token's own.
    pub max_age: Option<MaxAge>,
    /// The clock: "now" for the expiry check; `None` (the default) reads the system
    /// clock. Tests set it to check tokens with a fixed `signed_at`.
    pub now: Option<SystemTime>,
    /// How far ahead of `now` a token's `signed_at` may be before it is refused as
    /// [`TokenError::NotYetValid`] (default [`DEFAULT_MAX_CLOCK_SKEW`]); `None` accepts
    /// any future `signed_at`, as Phoenix does.
    pub max_clock_skew: Option<Duration>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            max_age: None,
            now: None,
            max_clock_skew: Some(DEFAULT_MAX_CLOCK_SKEW),
        }
    }
}

impl VerifyOptions {
    /// Sets [`VerifyOptions::max_age`].
    pub fn max_age(mut self, max_age: impl Into<MaxAge>) -> Self {
        self.max_age = Some(max_age.into());
        self
    }

    /// Sets [`VerifyOptions::now`].
    pub fn now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// Sets [`VerifyOptions::max_clock_skew`].
    pub fn max_clock_skew(mut self, skew: Option<Duration>) -> Self {
        self.max_clock_skew = skew;
        self
    }
}

/// Why a token was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// No token was given (Phoenix's `{:error, :missing}`).
    #[error("token is missing")]
    Missing,
    /// Not a token this `secret_key_base` and salt produced: malformed, truncated,
    /// tampered with, another salt or secret, or an unknown format (Phoenix's
    /// `{:error, :invalid}`).
    #[error("token is invalid")]
    Invalid,
    /// Older than its max age (Phoenix's `{:error, :expired}`).
    #[error("token has expired")]
    Expired,
    /// Signed further in the future than [`VerifyOptions::max_clock_skew`] allows.
    /// Phoenix has no such error; see the module docs.
    #[error("token is signed in the future")]
    NotYetValid,
    /// Authentic, but the payload is not Phoenix.Token's `{data, signed_at, max_age}`
    /// (Phoenix would raise).
    #[error("token payload is not a Phoenix.Token envelope")]
    Envelope,
    /// Authentic, but the data holds a term phx-rs does not map to JSON, or is not a
    /// well-formed term.
    #[error("token data cannot be read: {0}")]
    Payload(#[from] TermError),
}

impl Token {
    /// A signer for `secret_key_base` with Phoenix's default key derivation.
    ///
    /// Use the Phoenix endpoint's `secret_key_base` verbatim (the string, not a
    /// decoding of it). Nothing here checks its length; Phoenix generates 64 bytes.
    pub fn new(secret_key_base: impl AsRef<[u8]>) -> Self {
        Self::with_key_derivation(secret_key_base, KeyDerivation::default())
    }

    /// A signer whose keys are derived as the Phoenix side's `:key_iterations` and
    /// `:key_digest` options say.
    pub fn with_key_derivation(
        secret_key_base: impl AsRef<[u8]>,
        derivation: KeyDerivation,
    ) -> Self {
        Self {
            keys: Arc::new(KeyGenerator::new(secret_key_base.as_ref(), derivation)),
        }
    }

    /// `Phoenix.Token.sign(endpoint, salt, data)`: signed now, max age one day.
    ///
    /// # Panics
    ///
    /// If a string, array or object in `data` has more than `u32::MAX` elements.
    pub fn sign(&self, salt: impl AsRef<[u8]>, data: &Value) -> String {
        self.sign_with(salt, data, SignOptions::default())
    }

    /// `Phoenix.Token.sign(endpoint, salt, data, signed_at: …, max_age: …)`.
    ///
    /// For the same data, `signed_at` and max age, the token is byte-identical to
    /// Phoenix's (see the module docs for the limits).
    ///
    /// # Panics
    ///
    /// As [`Token::sign`].
    pub fn sign_with(&self, salt: impl AsRef<[u8]>, data: &Value, options: SignOptions) -> String {
        let payload = envelope(data, options);
        crypto::sign(&payload, &self.keys.key(salt.as_ref()))
    }

    /// `Phoenix.Token.verify(endpoint, salt, token, opts)`: the data of a token this
    /// secret signed with this salt, if it has not expired.
    ///
    /// `token` may be `None` (a missing param), which is [`TokenError::Missing`].
    pub fn verify<'t>(
        &self,
        salt: impl AsRef<[u8]>,
        token: impl Into<Option<&'t str>>,
        options: VerifyOptions,
    ) -> Result<Value, TokenError> {
        let token = token.into().ok_or(TokenError::Missing)?;
        let payload =
            crypto::verify(token, &self.keys.key(salt.as_ref())).ok_or(TokenError::Invalid)?;
        open(&payload, options)
    }

    /// `Phoenix.Token.encrypt(endpoint, salt, data)`: like [`Token::sign`] but the data
    /// is unreadable without the secret. Each call uses a fresh random nonce, so the
    /// token differs every time.
    ///
    /// # Panics
    ///
    /// As [`Token::sign`].
    pub fn encrypt(&self, salt: impl AsRef<[u8]>, data: &Value) -> String {
        self.encrypt_with(salt, data, SignOptions::default())
    }

    /// `Phoenix.Token.encrypt(endpoint, salt, data, signed_at: …, max_age: …)`.
    ///
    /// # Panics
    ///
    /// As [`Token::sign`].
    pub fn encrypt_with(
        &self,
        salt: impl AsRef<[u8]>,
        data: &Value,
        options: SignOptions,
    ) -> String {
        let payload = envelope(data, options);
        crypto::encrypt(&payload, &self.keys.key(salt.as_ref()))
    }

    /// `Phoenix.Token.decrypt(endpoint, salt, token, opts)`: the data of a token this
    /// secret encrypted with this salt, if it has not expired.
    pub fn decrypt<'t>(
        &self,
        salt: impl AsRef<[u8]>,
        token: impl Into<Option<&'t str>>,
        options: VerifyOptions,
    ) -> Result<Value, TokenError> {
        let token = token.into().ok_or(TokenError::Missing)?;
        let payload =
            crypto::decrypt(token, &self.keys.key(salt.as_ref())).ok_or(TokenError::Invalid)?;
        open(&payload, options)
    }
}

/// Milliseconds since the Unix epoch (negative before it), truncated.
fn unix_millis(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_millis()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_millis()).unwrap_or(i128::MAX),
    }
}

/// `term_to_binary({data, signed_at_ms, max_age_s})`.
fn envelope(data: &Value, options: SignOptions) -> Vec<u8> {
    let signed_at = unix_millis(options.signed_at.unwrap_or_else(SystemTime::now));
    // A SystemTime past i64 milliseconds (292 million years) cannot occur in practice.
    let signed_at = Term::Int(i64::try_from(signed_at).unwrap_or(i64::MAX));
    let max_age = match options.max_age {
        MaxAge::Infinity => Term::Atom("infinity".to_owned()),
        MaxAge::Limited(age) if age.subsec_nanos() == 0 => Term::from_u64(age.as_secs()),
        MaxAge::Limited(age) => Term::Float(age.as_secs_f64()),
    };
    term::encode(&Term::Tuple(vec![from_json(data), signed_at, max_age]))
}

/// The age limit of a token, in Plug.Crypto's terms.
enum Age {
    /// A max age of zero or less: expired whenever it is checked.
    NonPositive,
    /// `trunc(max_age_s * 1000)` milliseconds.
    Millis(i128),
    Infinity,
}

impl Age {
    fn of_option(max_age: MaxAge) -> Self {
        match max_age {
            MaxAge::Infinity => Self::Infinity,
            MaxAge::Limited(age) if age.is_zero() => Self::NonPositive,
            MaxAge::Limited(age) => {
                Self::Millis(i128::try_from(age.as_millis()).unwrap_or(i128::MAX))
            }
        }
    }

    /// The max age slot of an envelope: integer or float seconds, or `:infinity`.
    fn of_term(term: &Term) -> Result<Self, TokenError> {
        Ok(match term {
            Term::Atom(name) if name == "infinity" => Self::Infinity,
            Term::Int(seconds) if *seconds <= 0 => Self::NonPositive,
            Term::Int(seconds) => Self::Millis(i128::from(*seconds) * 1000),
            Term::BigInt { negative: true, .. } => Self::NonPositive,
            // More seconds than i64 holds: longer than the universe has existed.
            Term::BigInt { .. } => Self::Infinity,
            Term::Float(seconds) if *seconds <= 0.0 => Self::NonPositive,
            // `as` saturates; the float is finite (the decoder refuses NaN and infinities).
            Term::Float(seconds) => Self::Millis((seconds * 1000.0).trunc() as i128),
            _ => return Err(TokenError::Envelope),
        })
    }
}

/// Reads a verified payload: the envelope, then the age checks, then the data.
fn open(payload: &[u8], options: VerifyOptions) -> Result<Value, TokenError> {
    let (data, signed_at, max_age) = match term::decode(payload)? {
        Term::Tuple(items) => {
            let mut items = items.into_iter();
            match (items.next(), items.next(), items.next(), items.next()) {
                (Some(data), Some(signed), Some(max_age), None) => (data, signed, Some(max_age)),
                // Plug.Crypto 1.1 wrote {data, signed_at_ms}.
                (Some(data), Some(signed), None, None) => (data, signed, None),
                _ => return Err(TokenError::Envelope),
            }
        }
        // Phoenix before Plug.Crypto wrote %{data: data, signed: signed_at_ms}.
        Term::Map(entries) => {
            let (mut data, mut signed) = (None, None);
            for (key, value) in entries {
                match key {
                    Term::Atom(name) if name == "data" => data = Some(value),
                    Term::Atom(name) if name == "signed" => signed = Some(value),
                    _ => {}
                }
            }
            match (data, signed) {
                (Some(data), Some(signed)) => (data, signed, None),
                _ => return Err(TokenError::Envelope),
            }
        }
        _ => return Err(TokenError::Envelope),
    };
    let Term::Int(signed_at) = signed_at else {
        return Err(TokenError::Envelope);
    };
    let signed_at = i128::from(signed_at);
    let age = match (options.max_age, max_age) {
        (Some(max_age), _) => Age::of_option(max_age),
        (None, Some(slot)) => Age::of_term(&slot)?,
        (None, None) => Age::of_option(MaxAge::Limited(DEFAULT_MAX_AGE)),
    };
    let now = unix_millis(options.now.unwrap_or_else(SystemTime::now));
    match age {
        Age::NonPositive => return Err(TokenError::Expired),
        Age::Millis(max_age) if signed_at.saturating_add(max_age) < now => {
            return Err(TokenError::Expired)
        }
        Age::Millis(_) | Age::Infinity => {}
    }
    if let Some(skew) = options.max_clock_skew {
        let skew = i128::try_from(skew.as_millis()).unwrap_or(i128::MAX);
        if signed_at > now.saturating_add(skew) {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(json::to_json(data)?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    fn signed(tokens: &Token, payload: &Term) -> String {
        crypto::sign(&term::encode(payload), &tokens.keys.key(b"salt"))
    }

    fn check(tokens: &Token, token: &str, now: u64) -> Result<Value, TokenError> {
        tokens.verify("salt", token, VerifyOptions::default().now(at(now)))
    }

    #[test]
    fn older_envelopes_verify_with_a_one_day_max_age() {
        let tokens = Token::new("secret");
        let pair = signed(&tokens, &Term::Tuple(vec![Term::Int(1), Term::Int(1_000)]));
        assert_eq!(check(&tokens, &pair, 1_000 + 86_400_000), Ok(json!(1)));
        assert_eq!(
            check(&tokens, &pair, 1_001 + 86_400_000),
            Err(TokenError::Expired)
        );
        let map = signed(
            &tokens,
            &Term::Map(vec![
                (Term::Atom("data".into()), Term::Int(2)),
                (Term::Atom("signed".into()), Term::Int(1_000)),
            ]),
        );
        assert_eq!(check(&tokens, &map, 1_000 + 86_400_000), Ok(json!(2)));
        assert_eq!(
            check(&tokens, &map, 1_001 + 86_400_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn max_age_slot_takes_floats_infinity_and_nonpositive_values() {
        let tokens = Token::new("secret");
        let with_age = |age: Term| {
            signed(
                &tokens,
                &Term::Tuple(vec![Term::Int(1), Term::Int(1_000), age]),
            )
        };
        let half_second = with_age(Term::Float(0.5));
        assert_eq!(check(&tokens, &half_second, 1_500), Ok(json!(1)));
        assert_eq!(
            check(&tokens, &half_second, 1_501),
            Err(TokenError::Expired)
        );
        let forever = with_age(Term::Atom("infinity".into()));
        assert_eq!(check(&tokens, &forever, u64::MAX / 4), Ok(json!(1)));
        for age in [Term::Int(0), Term::Int(-5), Term::Float(-0.5)] {
            assert_eq!(
                check(&tokens, &with_age(age), 1_000),
                Err(TokenError::Expired)
            );
        }
        let garbage = with_age(Term::Binary(b"soon".to_vec()));
        assert_eq!(check(&tokens, &garbage, 1_000), Err(TokenError::Envelope));
        // An override never looks at the slot, as in Plug.Crypto.
        assert_eq!(
            tokens.verify(
                "salt",
                garbage.as_str(),
                VerifyOptions::default()
                    .now(at(1_000))
                    .max_age(MaxAge::Infinity)
            ),
            Ok(json!(1))
        );
    }

    #[test]
    fn payloads_that_are_not_envelopes_are_refused() {
        let tokens = Token::new("secret");
        for payload in [
            Term::Int(1),
            Term::Tuple(vec![Term::Int(1)]),
            Term::Tuple(vec![Term::Int(1); 4]),
            Term::Tuple(vec![Term::Int(1), Term::Float(1.0), Term::Int(1)]),
            Term::Map(vec![(Term::Atom("data".into()), Term::Int(1))]),
        ] {
            let token = signed(&tokens, &payload);
            assert_eq!(
                check(&tokens, &token, 1_000),
                Err(TokenError::Envelope),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn sub_second_max_age_is_written_as_float_seconds() {
        let tokens = Token::new("secret");
        let options = SignOptions::default()
            .signed_at(at(1_000))
            .max_age(Duration::from_millis(1_500));
        let token = tokens.sign_with("salt", &json!(1), options);
        let payload = crypto::verify(&token, &tokens.keys.key(b"salt")).unwrap();
        assert_eq!(
            term::decode(&payload),
            Ok(Term::Tuple(vec![
                Term::Int(1),
                Term::Int(1_000),
                Term::Float(1.5)
            ]))
        );
    }
}
