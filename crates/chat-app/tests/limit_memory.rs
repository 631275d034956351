//! The memory of a rate-limit table at its key cap ([`MAX_KEYS`]), measured on the live
//! heap (a counting allocator: this file is its own process), for the figures in
//! SECURITY.md. The login tables have fixed-size keys (16 bytes of a hashed username, an
//! address), so a flood of long or random names cannot make them bigger.

use std::alloc::System;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use chat_app::accounts::api::username_key;
use chat_app::limit::{Rate, RateLimit, MAX_KEYS};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MIB: f64 = 1024.0 * 1024.0;

fn live_heap() -> usize {
    let stats = ALLOCATOR.stats();
    stats
        .bytes_allocated
        .saturating_sub(stats.bytes_deallocated)
}

/// Live heap of a table filled with `MAX_KEYS + extra` new keys (`extra` at most an
/// eighth of the cap: the first of them makes room by forgetting an eighth), in MiB.
fn at_cap<K: std::hash::Hash + Eq + Clone>(key: impl Fn(usize) -> K, extra: usize) -> f64 {
    let before = live_heap();
    let limit = RateLimit::new(Rate::new(5, Duration::from_secs(60)));
    let t0 = Instant::now();
    for i in 0..MAX_KEYS + extra {
        let now = t0 + Duration::from_micros(i as u64);
        assert!(limit.try_acquire(&key(i), now), "key {i} refused");
    }
    // Past the cap, an eighth was forgotten to make room for the extra keys.
    assert_eq!(limit.len(), MAX_KEYS - MAX_KEYS / 8 + extra);
    let used = live_heap().saturating_sub(before);
    drop(limit);
    used as f64 / MIB
}

#[test]
fn the_tables_at_their_cap_take_what_security_md_says() {
    // The per-username login table: 16-byte keys, whatever the names.
    let names = at_cap(|i| username_key(&format!("user {i}")), 1);
    // The per-address tables: IPv6 /64s (a /48 holds 65 536 of them).
    let addresses = at_cap(
        |i| {
            IpAddr::V6(Ipv6Addr::from(
                (0x2001_0db8_u128 << 96) | ((i as u128) << 64),
            ))
        },
        1,
    );
    // `typing`: "room/user" at their longest (64 and 32 characters of 4-byte UTF-8).
    let typing = at_cap(|i| format!("{:\u{10348}<64}/{:\u{10348}<32}", i, i), 1);
    println!(
        "at {MAX_KEYS} keys: usernames {names:.1} MiB, addresses {addresses:.1} MiB, \
         typing (longest keys) {typing:.1} MiB"
    );
    assert!(names < 6.0, "{names} MiB");
    assert!(addresses < 6.0, "{addresses} MiB");
    assert!(typing < 40.0, "{typing} MiB");
}
