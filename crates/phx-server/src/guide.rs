// The guide's pages (`crates/phx-server/docs/*.md`), one module each so that rustdoc
// renders every page on its own and runs every snippet in it as a doctest (as axum
// includes its long-form docs). The modules hold no items.

#![doc = include_str!("../docs/guide.md")]

#[doc = include_str!("../docs/sockets.md")]
pub mod sockets {}

#[doc = include_str!("../docs/channels.md")]
pub mod channels {}

#[doc = include_str!("../docs/broadcasting.md")]
pub mod broadcasting {}

#[doc = include_str!("../docs/presence.md")]
pub mod presence {}

#[doc = include_str!("../docs/long-poll.md")]
pub mod long_poll {}

#[doc = include_str!("../docs/limits.md")]
pub mod limits {}

#[doc = include_str!("../docs/logging.md")]
pub mod logging {}

#[doc = include_str!("../docs/testing.md")]
pub mod testing {}

#[doc = include_str!("../docs/coming-from-phoenix.md")]
pub mod coming_from_phoenix {}
