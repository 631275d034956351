//! Reserved event and topic names (§3).

/// Topic of the socket-level heartbeat (§3.1).
pub const PHOENIX_TOPIC: &str = "phoenix";
/// Heartbeat event, answered by the socket itself (§3.1).
pub const HEARTBEAT: &str = "heartbeat";
/// Join a topic (§3.2).
pub const JOIN: &str = "phx_join";
/// Leave a topic (§3.4).
pub const LEAVE: &str = "phx_leave";
/// Reply to a client message (§2.1).
pub const REPLY: &str = "phx_reply";
/// Channel closed normally (§3.6).
pub const CLOSE: &str = "phx_close";
/// Channel crashed (§3.6).
pub const ERROR: &str = "phx_error";
/// Presence full state push (§6.2).
pub const PRESENCE_STATE: &str = "presence_state";
/// Presence diff broadcast (§6.3).
pub const PRESENCE_DIFF: &str = "presence_diff";
/// Socket-id broadcast that closes every socket with that id (§1.7).
pub const DISCONNECT: &str = "disconnect";
