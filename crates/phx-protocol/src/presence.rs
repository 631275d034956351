//! Presence (§6): the `phx_ref` that tags every presence meta.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Formats a `phx_ref` the way phoenix_pubsub does (§6.1): URL-safe base64 without
/// padding of 12 bytes — 64-bit nanosecond time ‖ 16-bit node hash ‖ 16-bit counter —
/// giving 16 characters from `[A-Za-z0-9_-]`. The clock reading is the caller's.
///
/// ```
/// let r = phx_protocol::presence::format_phx_ref(1_732_400_000_000_000_000, 0xABCD, 7);
/// assert_eq!(r.len(), 16);
/// ```
pub fn format_phx_ref(nanos: u64, node_hash: u16, unique: u16) -> String {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&nanos.to_be_bytes());
    bytes[8..10].copy_from_slice(&node_hash.to_be_bytes());
    bytes[10..].copy_from_slice(&unique.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phx_ref_is_16_url_safe_chars_and_unique_per_counter() {
        let a = format_phx_ref(u64::MAX, 0xFFFF, 0xFFFF);
        assert_eq!(a, "________________");
        let b = format_phx_ref(1, 2, 3);
        assert_eq!(b.len(), 16);
        assert!(b
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(format_phx_ref(1, 2, 3), format_phx_ref(1, 2, 4));
    }

    #[test]
    fn phx_ref_matches_the_example_of_section_6_1() {
        // `GBnW9Yv8yC4pAAKB` is 18 19 D6 F5 8B FC C8 2E ‖ 29 00 ‖ 02 81.
        assert_eq!(
            format_phx_ref(0x1819_D6F5_8BFC_C82E, 0x2900, 0x0281),
            "GBnW9Yv8yC4pAAKB"
        );
        assert_eq!(format_phx_ref(0, 0, 0), "AAAAAAAAAAAAAAAA");
    }

    #[test]
    fn phx_ref_fields_are_big_endian() {
        // Only the last byte of the counter is set: only the last characters change.
        let a = format_phx_ref(0, 0, 1);
        assert_eq!(a, "AAAAAAAAAAAAAAAB");
        let b = format_phx_ref(1 << 56, 0, 0);
        assert_eq!(b, "AQAAAAAAAAAAAAAA");
    }
}
