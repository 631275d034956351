//! The phx-rs chat app: `room:*` channels with usernames, presence and history, served
//! to the browser page in `js-client/` by a `phx-server` endpoint.
//!
//! `main.rs` only wires these together; each module holds one concept.

pub mod config;
pub mod room;
pub mod store;
pub mod validate;
pub mod web;
