//! The phx-rs chat app: `room:*` channels with usernames, presence and history, served
//! to the browser page in `js-client/` by a `phx-server` endpoint.
//!
//! `main.rs` only wires these together; each module holds one concept:
//!
//! - `room`: the `room:*` channel (join, `new_msg`, `history`, `typing`, presence).
//! - `replay`: what a join reply brings: recent history, or what a rejoining page
//!   missed and what changed meanwhile.
//! - `validate`: every input rule, with readable reasons, before any store.
//! - `directory`: which rooms exist; creating one within a budget per client address.
//! - `limit`: rate limits per key (token buckets in a bounded table), used by `typing`
//!   and room creation.
//! - `connect`: the connect hooks (guests; signed-in users with a session token); put
//!   the peer address in the socket assigns.
//! - `store`: history behind one trait (PostgreSQL or memory), every call bounded by
//!   `TimeoutStore`.
//! - `config`: flags and environment; `web`: the page's static files.
//! - `ops`: metrics, health, server API and drain switched on from the configuration.
//! - `accounts`: registration and login (`/api/`), sessions, private rooms, DMs, the
//!   personal `user:<id>` topic, read positions, invitations, look-alike room names,
//!   guest names.
//! - `uploads`: attachments (docs/chat.md): upload over HTTP, type sniffing, thumbnails.
//! - `search`: the room channel's `search` event: its rules, bounds and rate.

pub mod accounts;
pub mod config;
pub mod connect;
pub mod directory;
pub mod limit;
pub mod ops;
pub mod replay;
pub mod room;
pub mod search;
pub mod store;
pub mod uploads;
pub mod validate;
pub mod web;
