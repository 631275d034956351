//! Memory figures of this test process (each file in tests/ is its own process).
//!
//! Two figures, because they answer different questions. The live heap (bytes allocated
//! and not yet freed, counted by wrapping the system allocator) says whether the server
//! gave its memory back: it is exact and independent of the allocator. The resident set
//! (`VmRSS`) says what the machine pays: glibc's malloc keeps freed memory in its
//! per-thread arenas for reuse instead of returning it to the kernel, so RSS stays at its
//! high-water mark after a burst even when the live heap is back where it started; what
//! can be asserted on RSS is that it is bounded and that a second burst reuses the
//! memory of the first instead of adding to it.
#![allow(dead_code)] // each test file uses part of it

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed, process-wide.
pub fn live_heap_bytes() -> u64 {
    let stats = ALLOCATOR.stats();
    // `realloc` growth and shrinkage are already in these two counters.
    stats
        .bytes_allocated
        .saturating_sub(stats.bytes_deallocated) as u64
}

/// Resident set size in bytes (`VmRSS` of /proc/self/status).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a VmRSS line in /proc/self/status");
    kib * 1024
}

pub const MIB: u64 = 1024 * 1024;

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// Highest live heap and RSS seen, sampled every few milliseconds by a task.
#[derive(Debug, Default)]
pub struct Peaks {
    pub live_heap: std::sync::atomic::AtomicU64,
    pub rss: std::sync::atomic::AtomicU64,
}

impl Peaks {
    pub fn sample(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.live_heap.fetch_max(live_heap_bytes(), Relaxed);
        self.rss.fetch_max(rss_bytes(), Relaxed);
    }
    pub fn reset(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.live_heap.store(0, Relaxed);
        self.rss.store(0, Relaxed);
    }
    pub fn live_heap(&self) -> u64 {
        self.live_heap.load(std::sync::atomic::Ordering::Relaxed)
    }
    pub fn rss(&self) -> u64 {
        self.rss.load(std::sync::atomic::Ordering::Relaxed)
    }
}
