//! How many long-poll sessions may live at once: a global cap and a cap per client
//! address (counted by [`crate::address_limit`]), so neither a flood of token-less GETs
//! nor one client can grow memory without bound or take every session for itself.
//!
//! A session holds a slot from before its origin check and connect hook run until it
//! ends.

/// Default cap on live long-poll sessions of one endpoint (see
/// [`crate::EndpointBuilder::longpoll_max_sessions`]).
///
/// Why this number: an idle session costs ~5 KB and one whose client stopped polling
/// holds at most its outbound budget ([`crate::DEFAULT_OUTBOUND_BYTES`], 128 KiB) before
/// it is ended, so 10 000 sessions are ~50 MB in the common case and 1.25 GiB in the worst
/// (every buffer full at once), the same order as the WebSocket worst case. Long poll is
/// the fallback transport: 10 000 concurrent fallback clients is far above what one node
/// serves that way in practice.
pub const DEFAULT_LONGPOLL_MAX_SESSIONS: usize = 10_000;

/// Default cap on live long-poll sessions per client address (see
/// [`crate::EndpointBuilder::longpoll_max_sessions_per_address`]).
///
/// Why this number: a browser tab holds one session, and a reloaded tab leaves its old
/// session behind for up to three windows (§7.5), so one person rarely holds more than a
/// handful; 100 leaves room for a small office behind one NAT address while a single
/// address can take at most 1 % of [`DEFAULT_LONGPOLL_MAX_SESSIONS`]. Raise it when many
/// users share one address (a corporate proxy that blocks WebSockets sends them all to
/// long poll from its own address).
pub const DEFAULT_LONGPOLL_MAX_SESSIONS_PER_ADDRESS: usize = 100;
