//! Invitations to private rooms wait for the invitee's consent (docs/chat.md,
//! "Invitations"): pending until accepted, declinable, bounded per inviter and per
//! invitee, and followed by a cooldown when the invitee declines or leaves.
//!
//! Why pending: a membership made by someone else would fill the invitee's own list
//! (its [`MAX_MEMBERSHIPS`](super::MAX_MEMBERSHIPS) bound), and with it block their room
//! creation, DMs and the invitations they want. A pending invitation counts against
//! nothing of theirs; accepting it does, like any membership.

use std::time::Duration;

use time::OffsetDateTime;

/// The invitation bounds and timings (SECURITY.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InviteLimits {
    /// Pending invitations one user may have sent at once.
    pub per_inviter: usize,
    /// Pending invitations one user may hold at once.
    pub per_invitee: usize,
    /// After a decline or a leave: how long the same invitation may not come again.
    pub cooldown: Duration,
    /// A pending invitation expires after this.
    pub lifetime: Duration,
}

impl InviteLimits {
    /// Default [`per_inviter`](Self::per_inviter).
    pub const PER_INVITER: usize = 50;
    /// Default [`per_invitee`](Self::per_invitee).
    pub const PER_INVITEE: usize = 100;
    /// Default [`cooldown`](Self::cooldown): a day.
    pub const COOLDOWN: Duration = Duration::from_secs(86_400);
    /// Default [`lifetime`](Self::lifetime): a week.
    pub const LIFETIME: Duration = Duration::from_secs(7 * 86_400);

    /// The defaults with another cooldown (`--invite-cooldown-secs`).
    pub fn with_cooldown(cooldown: Duration) -> Self {
        Self {
            cooldown,
            ..Self::default()
        }
    }
}

impl Default for InviteLimits {
    fn default() -> Self {
        Self {
            per_inviter: Self::PER_INVITER,
            per_invitee: Self::PER_INVITEE,
            cooldown: Self::COOLDOWN,
            lifetime: Self::LIFETIME,
        }
    }
}

/// A pending invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// The private room.
    pub room: String,
    /// Who invited (a member of the room when inviting).
    pub inviter: i64,
    /// The inviter's username.
    pub inviter_name: String,
    /// When.
    pub at: OffsetDateTime,
    /// When it expires unanswered.
    pub expires_at: OffsetDateTime,
}

/// What became of an `invite`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InviteOutcome {
    /// A new pending invitation: the invitee is told.
    Invited(Invitation),
    /// One was pending already: nothing new, nobody told again.
    AlreadyPending,
    /// The inviter is no member of a private room of that name.
    Unauthorized,
    /// The invitee is a member already.
    AlreadyMember,
    /// The invitee declined or left recently: not before `until`.
    CoolingDown {
        /// When the cooldown ends.
        until: OffsetDateTime,
    },
    /// The inviter has [`InviteLimits::per_inviter`] invitations pending.
    InviterFull,
    /// The invitee holds [`InviteLimits::per_invitee`] invitations.
    InviteeFull,
    /// The room has [`MAX_MEMBERS`](super::MAX_MEMBERS) members.
    RoomFull,
}

/// What became of an `accept_invite`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// A member now; the invitation is gone.
    Accepted,
    /// Nothing pending (never sent, declined, expired).
    NoInvitation,
    /// The invitee is in [`MAX_MEMBERSHIPS`](super::MAX_MEMBERSHIPS) rooms: it stays
    /// pending.
    TooManyRooms,
    /// The room is full: it stays pending.
    RoomFull,
}

/// `duration` as PostgreSQL's `interval` input (seconds, with a fraction).
pub(crate) fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// `now + duration`, saturating (a configured cooldown of centuries stays a date).
pub(crate) fn after(now: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    time::Duration::try_from(duration)
        .ok()
        .and_then(|d| now.checked_add(d))
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}
