//! The signature on every request to the backend (docs/gateway.md, "Checking the
//! signature"): `x-phx-gateway-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>." + body)>`, Stripe's scheme, so the backend knows the request came from the
//! gateway and is fresh.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// The header's name.
pub const HEADER: &str = "x-phx-gateway-signature";

/// The header's value for `body` sent at `unix_seconds`.
pub fn sign(secret: &[u8], unix_seconds: u64, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes keys of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("t={unix_seconds},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_computation() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'secret'
        assert_eq!(
            sign(b"secret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }
}
