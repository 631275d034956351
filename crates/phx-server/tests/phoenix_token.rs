//! `Phoenix.Token` compatibility, against tokens made by real Phoenix 1.7.14 /
//! plug_crypto 2.1.0 (`tests/data/phoenix-token-vectors.json`) and payloads made by
//! `erlang:term_to_binary/1`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use phx_server::phoenix_token::{
    KeyDerivation, KeyDigest, MaxAge, SignOptions, TermError, Token, TokenError, VerifyOptions,
};
use phx_server::{Connect, ConnectInfo, Connected, Params, Refusal, SocketConfig};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

#[derive(Deserialize)]
struct Vectors {
    secret_key_base: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    data: Value,
    salt: String,
    signed_at: u64,
    signed: String,
    encrypted: String,
    verify_infinity: String,
    verify_now_max_age_86400: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("data/phoenix-token-vectors.json"))
        .expect("tests/data/phoenix-token-vectors.json parses")
}

fn secs(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn at(seconds: u64) -> VerifyOptions {
    VerifyOptions::default().now(secs(seconds))
}

/// 2026-11-28T00:00:00Z, the day the vectors were made (their `verify_now_*` results).
const VECTORS_MADE: u64 = 1_795_824_000;

// A signed vector of data 42, salt "user socket", signed at 1 764 000 000 s.
const SIGNED_42: &str =
    "SFMyNTY.g2gDYSpuBgAA6Je2mgFiAAFRgA.PxLU5ZPA3ICl36KANRaDtcI54njDZLCujxPz6RtBsUQ";
const SIGNED_42_AT: u64 = 1_764_000_000;

fn phoenix() -> Token {
    Token::new(vectors().secret_key_base)
}

#[test]
fn vectors_cover_every_case_the_file_holds() {
    let vectors = vectors();
    assert_eq!(vectors.cases.len(), 4);
    for case in &vectors.cases {
        // What Phoenix printed must be what the tests below assume.
        assert!(
            case.verify_infinity.starts_with("{:ok, "),
            "{}",
            case.verify_infinity
        );
        assert_eq!(case.verify_now_max_age_86400, "{:error, :expired}");
    }
}

#[test]
fn every_phoenix_signed_vector_verifies_to_its_data() {
    let vectors = vectors();
    let tokens = Token::new(&vectors.secret_key_base);
    for case in &vectors.cases {
        let now = at(case.signed_at + 1);
        assert_eq!(
            tokens.verify(&case.salt, case.signed.as_str(), now),
            Ok(case.data.clone()),
            "{}",
            case.signed
        );
        let forever = at(case.signed_at + 10 * 365 * 86_400).max_age(MaxAge::Infinity);
        assert_eq!(
            tokens.verify(&case.salt, case.signed.as_str(), forever),
            Ok(case.data.clone())
        );
    }
}

#[test]
fn every_phoenix_encrypted_vector_decrypts_to_its_data() {
    let vectors = vectors();
    let tokens = Token::new(&vectors.secret_key_base);
    for case in &vectors.cases {
        assert_eq!(
            tokens.decrypt(&case.salt, case.encrypted.as_str(), at(case.signed_at + 1)),
            Ok(case.data.clone()),
            "{}",
            case.encrypted
        );
        let forever = at(case.signed_at + 10 * 365 * 86_400).max_age(MaxAge::Infinity);
        assert_eq!(
            tokens.decrypt(&case.salt, case.encrypted.as_str(), forever),
            Ok(case.data.clone())
        );
    }
}

#[test]
fn vectors_are_expired_a_day_later_as_phoenix_reported() {
    let vectors = vectors();
    let tokens = Token::new(&vectors.secret_key_base);
    for case in &vectors.cases {
        let now = at(VECTORS_MADE).max_age(Duration::from_secs(86_400));
        assert_eq!(
            tokens.verify(&case.salt, case.signed.as_str(), now),
            Err(TokenError::Expired)
        );
        assert_eq!(
            tokens.decrypt(&case.salt, case.encrypted.as_str(), now),
            Err(TokenError::Expired)
        );
    }
}

#[test]
fn resigning_vector_data_reproduces_phoenix_bytes() {
    let vectors = vectors();
    let tokens = Token::new(&vectors.secret_key_base);
    for case in &vectors.cases {
        let options = SignOptions::default().signed_at(secs(case.signed_at));
        assert_eq!(
            tokens.sign_with(&case.salt, &case.data, options),
            case.signed
        );
    }
}

#[test]
fn phx_rs_encrypted_tokens_decrypt_with_phoenix_key_and_layout() {
    let vectors = vectors();
    let tokens = Token::new(&vectors.secret_key_base);
    for case in &vectors.cases {
        let options = SignOptions::default().signed_at(secs(case.signed_at));
        let token = tokens.encrypt_with(&case.salt, &case.data, options);
        assert!(token.starts_with("XCP."));
        // Same layout as Phoenix's: nonce (24) + tag (16) + ciphertext of the same size.
        assert_eq!(token.len(), case.encrypted.len(), "{token}");
        assert_eq!(
            tokens.decrypt(&case.salt, token.as_str(), at(case.signed_at)),
            Ok(case.data.clone())
        );
    }
}

#[test]
fn expiry_is_checked_to_the_millisecond_and_the_limit_itself_is_valid() {
    let tokens = phoenix();
    let signed = secs(SIGNED_42_AT);
    let limit = signed + Duration::from_secs(86_400);
    let options = |now| VerifyOptions::default().now(now);
    assert_eq!(
        tokens.verify("user socket", SIGNED_42, options(limit)),
        Ok(json!(42))
    );
    assert_eq!(
        tokens.verify(
            "user socket",
            SIGNED_42,
            options(limit + Duration::from_millis(1))
        ),
        Err(TokenError::Expired)
    );
    // A shorter max age at verification wins over the one in the token.
    let short = options(signed + Duration::from_secs(61)).max_age(Duration::from_secs(60));
    assert_eq!(
        tokens.verify("user socket", SIGNED_42, short),
        Err(TokenError::Expired)
    );
    // A zero max age is always expired.
    let zero = options(signed).max_age(Duration::ZERO);
    assert_eq!(
        tokens.verify("user socket", SIGNED_42, zero),
        Err(TokenError::Expired)
    );
}

#[test]
fn max_age_signed_into_the_token_is_the_default_at_verification() {
    let tokens = phoenix();
    let options = SignOptions::default()
        .signed_at(secs(1_000))
        .max_age(Duration::from_secs(10));
    let token = tokens.sign_with("s", &json!("x"), options);
    assert_eq!(
        tokens.verify("s", token.as_str(), at(1_010)),
        Ok(json!("x"))
    );
    assert_eq!(
        tokens.verify("s", token.as_str(), at(1_011)),
        Err(TokenError::Expired)
    );
    let forever = SignOptions::default()
        .signed_at(secs(1_000))
        .max_age(MaxAge::Infinity);
    let token = tokens.sign_with("s", &json!("x"), forever);
    assert_eq!(
        tokens.verify("s", token.as_str(), at(u64::from(u32::MAX))),
        Ok(json!("x"))
    );
}

#[test]
fn token_signed_in_the_future_is_not_yet_valid() {
    let tokens = phoenix();
    let before = |seconds| at(SIGNED_42_AT - seconds);
    // Within the default 60 s of clock skew: accepted.
    assert_eq!(
        tokens.verify("user socket", SIGNED_42, before(60)),
        Ok(json!(42))
    );
    assert_eq!(
        tokens.verify("user socket", SIGNED_42, before(61)),
        Err(TokenError::NotYetValid)
    );
    let encrypted = &vectors().cases[0].encrypted;
    assert_eq!(
        tokens.decrypt("user socket", encrypted.as_str(), before(3_600)),
        Err(TokenError::NotYetValid)
    );
    // Phoenix's behaviour, on request: any future signed_at is accepted.
    assert_eq!(
        tokens.verify(
            "user socket",
            SIGNED_42,
            before(86_400 * 365).max_clock_skew(None)
        ),
        Ok(json!(42))
    );
}

#[test]
fn missing_token_is_missing() {
    let tokens = phoenix();
    assert_eq!(
        tokens.verify("user socket", None, VerifyOptions::default()),
        Err(TokenError::Missing)
    );
    assert_eq!(
        tokens.decrypt("user socket", None, VerifyOptions::default()),
        Err(TokenError::Missing)
    );
    // An absent connect param is the usual way to get there.
    let params = Params::from_query("vsn=2.0.0").unwrap();
    assert_eq!(
        tokens.verify(
            "user socket",
            params.get_str("token"),
            VerifyOptions::default()
        ),
        Err(TokenError::Missing)
    );
}

#[test]
fn wrong_salt_is_invalid() {
    let tokens = phoenix();
    for case in vectors().cases {
        let now = at(case.signed_at);
        let salt = format!("{} ", case.salt);
        assert_eq!(
            tokens.verify(&salt, case.signed.as_str(), now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            tokens.decrypt(&salt, case.encrypted.as_str(), now),
            Err(TokenError::Invalid)
        );
    }
}

#[test]
fn wrong_secret_is_invalid() {
    let vectors = vectors();
    let tokens = Token::new(format!("{}x", vectors.secret_key_base));
    for case in vectors.cases {
        let now = at(case.signed_at);
        assert_eq!(
            tokens.verify(&case.salt, case.signed.as_str(), now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            tokens.decrypt(&case.salt, case.encrypted.as_str(), now),
            Err(TokenError::Invalid)
        );
    }
}

#[test]
fn truncated_tokens_are_invalid() {
    let tokens = phoenix();
    for case in vectors().cases {
        let now = at(case.signed_at);
        for len in 0..case.signed.len() {
            assert_eq!(
                tokens.verify(&case.salt, &case.signed[..len], now),
                Err(TokenError::Invalid),
                "{}",
                &case.signed[..len]
            );
        }
        for len in 0..case.encrypted.len() {
            assert_eq!(
                tokens.decrypt(&case.salt, &case.encrypted[..len], now),
                Err(TokenError::Invalid),
                "{}",
                &case.encrypted[..len]
            );
        }
    }
}

/// Every token obtained by replacing one character of `token` in `range` by another
/// base64url character.
fn one_char_changes(token: &str, range: std::ops::Range<usize>) -> Vec<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut tampered = Vec::new();
    for i in range {
        let original = token.as_bytes()[i];
        let replacement = ALPHABET
            .iter()
            .copied()
            .find(|&c| c != original && (c ^ original) & 0x0f != 0)
            .unwrap();
        let mut bytes = token.as_bytes().to_vec();
        bytes[i] = replacement;
        tampered.push(String::from_utf8(bytes).unwrap());
    }
    tampered
}

#[test]
fn tampered_payload_is_invalid() {
    let tokens = phoenix();
    for case in vectors().cases {
        let now = at(case.signed_at);
        let start = case.signed.find('.').unwrap() + 1;
        let end = case.signed.rfind('.').unwrap();
        for token in one_char_changes(&case.signed, start..end) {
            assert_eq!(
                tokens.verify(&case.salt, token.as_str(), now),
                Err(TokenError::Invalid),
                "{token}"
            );
        }
        // Nonce, tag and ciphertext of the encrypted form.
        for token in one_char_changes(&case.encrypted, 4..case.encrypted.len()) {
            assert_eq!(
                tokens.decrypt(&case.salt, token.as_str(), now),
                Err(TokenError::Invalid),
                "{token}"
            );
        }
    }
}

#[test]
fn tampered_signature_is_invalid() {
    let tokens = phoenix();
    for case in vectors().cases {
        let now = at(case.signed_at);
        let start = case.signed.rfind('.').unwrap() + 1;
        for token in one_char_changes(&case.signed, start..case.signed.len()) {
            assert_eq!(
                tokens.verify(&case.salt, token.as_str(), now),
                Err(TokenError::Invalid),
                "{token}"
            );
        }
        // A valid payload with another token's signature.
        let (head, _) = case.signed.rsplit_once('.').unwrap();
        let (_, other_sig) = SIGNED_42.rsplit_once('.').unwrap();
        let swapped = format!("{head}.{other_sig}");
        if swapped != case.signed {
            assert_eq!(
                tokens.verify(&case.salt, swapped.as_str(), now),
                Err(TokenError::Invalid)
            );
        }
    }
}

#[test]
fn wrong_prefix_is_invalid() {
    let tokens = phoenix();
    let now = at(SIGNED_42_AT);
    let rest = SIGNED_42.strip_prefix("SFMyNTY").unwrap();
    for prefix in ["SFMzODQ", "SFM1MTI", "sfmynty", "SFMyNTZ", "", "XCP"] {
        let token = format!("{prefix}{rest}");
        assert_eq!(
            tokens.verify("user socket", token.as_str(), now),
            Err(TokenError::Invalid),
            "{token}"
        );
    }
    let encrypted = &vectors().cases[0].encrypted;
    let rest = encrypted.strip_prefix("XCP.").unwrap();
    // Plug.Crypto 1.x's AES-GCM form is not read; nor is anything else.
    for prefix in ["xcp.", "XCP", "QTEyOEdDTQ.", "", "SFMyNTY."] {
        let token = format!("{prefix}{rest}");
        assert_eq!(
            tokens.decrypt("user socket", token.as_str(), now),
            Err(TokenError::Invalid),
            "{token}"
        );
    }
    // Each form is refused by the other's function.
    assert_eq!(
        tokens.decrypt("user socket", SIGNED_42, now),
        Err(TokenError::Invalid)
    );
    assert_eq!(
        tokens.verify("user socket", encrypted.as_str(), now),
        Err(TokenError::Invalid)
    );
}

#[test]
fn garbage_tokens_are_invalid() {
    let tokens = phoenix();
    let now = at(SIGNED_42_AT);
    let long = "A".repeat(100_000);
    let garbage = [
        "",
        ".",
        "..",
        "...",
        "SFMyNTY..",
        "SFMyNTY.g2gDYSpuBgAA6Je2mgFiAAFRgA.",
        "SFMyNTY..PxLU5ZPA3ICl36KANRaDtcI54njDZLCujxPz6RtBsUQ",
        "SFMyNTY.g2gDYSpuBgAA6Je2mgFiAAFRgA.PxLU5ZPA3ICl36KANRaDtcI54njDZLCujxPz6RtBsUQ.",
        "SFMyNTY.g2gDYSpuBgAA6Je2mgFiAAFRgA==.PxLU5ZPA3ICl36KANRaDtcI54njDZLCujxPz6RtBsUQ",
        "SFMyNTY.g2gDYSpuBgAA6Je2mgFiAAFRgA.PxLU5ZPA3ICl36KANRaDtcI54njDZLCujxPz6RtBsUQ=",
        "SFMyNTY.g2gDYSpu+gAA6Je2mgFiAAFRgA.PxLU5ZPA3ICl36KANRaDtcI54njDZLCujxPz6RtBsUQ",
        "not a token",
        "XCP.",
        "XCP.!!!!",
        "ünïcødé.ünïcødé.ünïcødé",
        "\0\0\0",
        long.as_str(),
    ];
    for token in garbage {
        assert_eq!(
            tokens.verify("user socket", token, now),
            Err(TokenError::Invalid),
            "{token}"
        );
        assert_eq!(
            tokens.decrypt("user socket", token, now),
            Err(TokenError::Invalid),
            "{token}"
        );
    }
}

/// A token over `payload` made without phx-rs's signer: PBKDF2 and HMAC as Plug.Crypto
/// documents them.
fn hand_signed(secret_key_base: &str, salt: &str, payload: &[u8]) -> String {
    let key =
        pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(secret_key_base.as_bytes(), salt.as_bytes(), 1_000);
    let text = format!("SFMyNTY.{}", URL_SAFE_NO_PAD.encode(payload));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(text.as_bytes());
    format!(
        "{text}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn hand_signed_token_matches_the_vector() {
    let vectors = vectors();
    let case = &vectors.cases[0];
    let payload = hex("836803612a6e060000e897b69a016200015180");
    assert_eq!(
        hand_signed(&vectors.secret_key_base, &case.salt, &payload),
        case.signed
    );
}

#[test]
fn elixir_terms_real_apps_use_map_to_json() {
    // term_to_binary({#{user_id => 42, role => admin, scopes => [read, write],
    //   result => {ok, <<"x">>}, big => 1 bsl 70, negbig => -(1 bsl 64), name => "bob",
    //   <<"string key">> => nil, flag => true, ratio => 0.25,
    //   nested => #{<<"list">> => [1, [2, []]]}}, 1764000000000, 86400}) on OTP 25.
    let payload = hex(concat!(
        "836803740000000b6400036269676e0900000000000000000040640004666c6167640004747275",
        "656400046e616d656b0003626f626400066e65676269676e09010000000000000000016400066e",
        "657374656474000000016d000000046c6973746c0000000261016c0000000261026a6a6a640005",
        "726174696f463fd0000000000000640006726573756c7468026400026f6b6d0000000178640004",
        "726f6c6564000561646d696e64000673636f7065736c0000000264000472656164640005777269",
        "74656a640007757365725f6964612a6d0000000a737472696e67206b65796400036e696c6e0600",
        "00e897b69a016200015180"
    ));
    let vectors = vectors();
    let token = hand_signed(&vectors.secret_key_base, "user socket", &payload);
    assert_eq!(
        phoenix().verify("user socket", token.as_str(), at(SIGNED_42_AT)),
        Ok(json!({
            "user_id": 42,
            "role": "admin",
            "scopes": ["read", "write"],
            "result": ["ok", "x"],
            "big": "1180591620717411303424",
            "negbig": "-18446744073709551616",
            "name": [98, 111, 98],
            "string key": null,
            "flag": true,
            "ratio": 0.25,
            "nested": {"list": [1, [2, []]]},
        }))
    );
}

#[test]
fn unsupported_terms_are_refused_with_a_typed_error() {
    // term_to_binary({Data, 1764000000000, 86400}) on OTP 25 for each Data.
    let tail = "6e060000e897b69a016200015180";
    let cases: Vec<(&str, TermError)> = vec![
        (
            // self()
            "5864000d6e6f6e6f6465406e6f686f7374000000090000000000000000",
            TermError::Unsupported {
                tag: 88,
                name: "NEW_PID_EXT",
            },
        ),
        (
            // fun erlang:self/0
            "7164000665726c616e6764000473656c666100",
            TermError::Unsupported {
                tag: 113,
                name: "EXPORT_EXT",
            },
        ),
        (
            // <<1:3>>
            "4d000000010320",
            TermError::Unsupported {
                tag: 77,
                name: "BIT_BINARY_EXT",
            },
        ),
        // [1 | 2]
        ("6c0000000161016102", TermError::ImproperList),
        // <<255, 254>>
        ("6d00000002fffe", TermError::NonUtf8Binary),
        // #{1 => 2}
        ("740000000161016102", TermError::UnsupportedMapKey),
    ];
    let vectors = vectors();
    let tokens = phoenix();
    for (data, error) in cases {
        let payload = hex(&format!("836803{data}{tail}"));
        let token = hand_signed(&vectors.secret_key_base, "s", &payload);
        assert_eq!(
            tokens.verify("s", token.as_str(), at(SIGNED_42_AT)),
            Err(TokenError::Payload(error.clone())),
            "{error}"
        );
    }
    // A compressed payload verifies, as binary_to_term reads it in Plug.Crypto:
    // term_to_binary({lists:duplicate(100, 0), 1764000000000, 86400}, [compressed]).
    let compressed = hex(concat!(
        "835000000077789ccb60ce664861a003c863636078317ddb2cc62406c6c006",
        "00b1b005b3"
    ));
    let token = hand_signed(&vectors.secret_key_base, "s", &compressed);
    assert_eq!(
        tokens.verify("s", token.as_str(), at(SIGNED_42_AT)),
        Ok(serde_json::json!(vec![0; 100]))
    );
    // Authentic bytes that are not a term at all.
    let token = hand_signed(&vectors.secret_key_base, "s", b"not a term");
    assert_eq!(
        tokens.verify("s", token.as_str(), at(SIGNED_42_AT)),
        Err(TokenError::Payload(TermError::Version(b'n')))
    );
    // A well-formed term that is not an envelope.
    let token = hand_signed(&vectors.secret_key_base, "s", &hex("83612a"));
    assert_eq!(
        tokens.verify("s", token.as_str(), at(SIGNED_42_AT)),
        Err(TokenError::Envelope)
    );
}

#[test]
fn key_derivation_options_are_honoured() {
    let vectors = vectors();
    let case = &vectors.cases[0];
    let payload = hex("836803612a6e060000e897b69a016200015180");
    let key = pbkdf2::pbkdf2_hmac_array::<sha2::Sha512, 32>(
        vectors.secret_key_base.as_bytes(),
        case.salt.as_bytes(),
        2_000,
    );
    let text = format!("SFMyNTY.{}", URL_SAFE_NO_PAD.encode(&payload));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(text.as_bytes());
    let token = format!(
        "{text}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    let custom = Token::with_key_derivation(
        &vectors.secret_key_base,
        KeyDerivation {
            iterations: 2_000,
            digest: KeyDigest::Sha512,
        },
    );
    let now = at(case.signed_at);
    assert_eq!(
        custom.verify(&case.salt, token.as_str(), now),
        Ok(json!(42))
    );
    assert_eq!(
        phoenix().verify(&case.salt, token.as_str(), now),
        Err(TokenError::Invalid)
    );
}

/// JSON values in the supported subset: every JSON value (numbers are i64, u64 or
/// finite f64 in serde_json).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u8..=255).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".*", inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn sign_then_verify_returns_the_same_json(data in json_value(), signed_at in 0u64..4_000_000_000) {
        let tokens = Token::new("proptest-secret-key-base");
        let options = SignOptions::default().signed_at(secs(signed_at));
        let token = tokens.sign_with("salt", &data, options);
        prop_assert_eq!(tokens.verify("salt", token.as_str(), at(signed_at)), Ok(data.clone()));
        let token = tokens.encrypt_with("salt", &data, options);
        prop_assert_eq!(tokens.decrypt("salt", token.as_str(), at(signed_at)), Ok(data));
    }

    #[test]
    fn arbitrary_tokens_never_panic(token in ".*", suffix in "[A-Za-z0-9_-]{0,64}") {
        let tokens = Token::new("proptest-secret-key-base");
        let _ = tokens.verify("salt", token.as_str(), VerifyOptions::default());
        let _ = tokens.decrypt("salt", token.as_str(), VerifyOptions::default());
        let shaped = format!("SFMyNTY.{suffix}.{suffix}");
        prop_assert_eq!(
            tokens.verify("salt", shaped.as_str(), VerifyOptions::default()),
            Err(TokenError::Invalid)
        );
    }
}

/// The connect hook of the module docs: a Phoenix-issued token in the `token` param.
struct UserSocket {
    tokens: Token,
    now: SystemTime,
}

impl Connect for UserSocket {
    type Assigns = ();

    async fn connect(
        &self,
        params: &Params,
        _info: &ConnectInfo,
    ) -> Result<Connected<()>, Refusal> {
        let options = VerifyOptions::default().now(self.now);
        let user_id = self
            .tokens
            .verify("user socket", params.get_str("token"), options)
            .ok()
            .and_then(|data| data.as_u64())
            .ok_or_else(Refusal::forbidden)?;
        Ok(Connected {
            id: Some(format!("users_socket:{user_id}")),
            ..Connected::default()
        })
    }
}

/// The status line of a WebSocket upgrade request to `/socket/websocket?{query}`.
async fn upgrade_status(port: u16, query: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "GET /socket/websocket?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut byte))
            .await
            .expect("server answers within 30 s")
            .unwrap();
        assert_eq!(read, 1, "connection closed before a status line");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap().trim_end().to_owned()
}

#[tokio::test]
async fn connect_hook_accepts_phoenix_token_and_refuses_others() {
    let config = || {
        SocketConfig::new(UserSocket {
            tokens: phoenix(),
            now: secs(SIGNED_42_AT + 3_600),
        })
    };
    let (_endpoint, port) = support::start(config).await;
    assert_eq!(
        upgrade_status(port, &format!("token={SIGNED_42}&vsn=2.0.0")).await,
        "HTTP/1.1 101 Switching Protocols"
    );
    let wrong_salt = vectors().cases[2].signed.clone();
    let not_an_id = vectors().cases[1].signed.clone(); // "alice"
    for query in [
        "vsn=2.0.0".to_owned(),
        format!("token={not_an_id}&vsn=2.0.0"),
        format!("token={wrong_salt}&vsn=2.0.0"),
        format!("token={}x&vsn=2.0.0", SIGNED_42),
    ] {
        assert_eq!(
            upgrade_status(port, &query).await,
            "HTTP/1.1 403 Forbidden",
            "{query}"
        );
    }
}
