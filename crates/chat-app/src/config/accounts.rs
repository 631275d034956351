//! Registration, login and invitation bounds (SECURITY.md; docs/chat.md, "Invitations").

use std::time::Duration;

use clap::Args;

use crate::accounts::api::ApiLimits;
use crate::accounts::hash_queue::HashLimits;
use crate::accounts::InviteLimits;
use crate::limit::Rate;

/// Registration, login and invitation bounds.
#[derive(Args, Debug, Clone)]
pub struct AccountFlags {
    /// Accounts: accounts one client address (IPv6: /64) may create at once (then one
    /// per minute). Only registrations that create an account count; refused attempts
    /// (a taken name, a weak password) count against `--register-attempt-burst`.
    #[arg(long, env = "REGISTER_BURST", default_value_t = 5)]
    pub register_burst: u32,

    /// Accounts: registration attempts one client address may make at once, refused
    /// ones included (then one per 3 s).
    #[arg(long, env = "REGISTER_ATTEMPT_BURST", default_value_t = 20)]
    pub register_attempt_burst: u32,

    /// Accounts: login attempts one client address may make at once (then one per 3 s;
    /// per username: 5, then one per minute).
    #[arg(long, env = "LOGIN_ADDRESS_BURST", default_value_t = 20)]
    pub login_address_burst: u32,

    /// Accounts: password hashes (Argon2id, 19 MiB each) computed at once; this bounds
    /// the memory and blocking threads that logins and registrations can take.
    #[arg(long, env = "PASSWORD_HASHES", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub password_hashes: u64,

    /// Accounts: logins and registrations waiting for a password hash, in all; past it
    /// (and past `--login-queue-per-address`) they are refused at once with 429 and
    /// `Retry-After`.
    #[arg(long, env = "LOGIN_QUEUE", default_value_t = 256)]
    pub login_queue: usize,

    /// Accounts: logins and registrations of one client (IPv4 address, IPv6 /48)
    /// waiting for a password hash.
    #[arg(long, env = "LOGIN_QUEUE_PER_ADDRESS", default_value_t = 4)]
    pub login_queue_per_address: usize,

    /// Invitations: after someone declines an invitation (or leaves a private room), the
    /// seconds during which the inviter may not invite them again to any room, nor anyone
    /// to that room (docs/chat.md, "Invitations"). At most a year.
    #[arg(long, env = "INVITE_COOLDOWN_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub invite_cooldown_secs: u64,
}

impl AccountFlags {
    /// The account API's limits: the rates of `accounts::api` with the bursts and the
    /// hash queue configured here.
    pub fn api_limits(&self) -> ApiLimits {
        let defaults = ApiLimits::default();
        let with_burst = |rate: Rate, burst: u32| Rate::new(burst, rate.period);
        ApiLimits {
            register_per_address: with_burst(defaults.register_per_address, self.register_burst),
            register_attempts_per_address: with_burst(
                defaults.register_attempts_per_address,
                self.register_attempt_burst,
            ),
            login_per_address: with_burst(defaults.login_per_address, self.login_address_burst),
            hashing: HashLimits {
                permits: usize::try_from(self.password_hashes).unwrap_or(1),
                queue: self.login_queue,
                queue_per_group: self.login_queue_per_address,
            },
            ..defaults
        }
    }

    /// The invitation bounds, with `--invite-cooldown-secs`.
    pub fn invite_limits(&self) -> InviteLimits {
        InviteLimits::with_cooldown(Duration::from_secs(self.invite_cooldown_secs))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Config;

    use super::*;

    #[test]
    fn defaults_match_the_readme() {
        let accounts = Config::parse_from(["chat-app"]).accounts;
        assert_eq!(accounts.api_limits(), ApiLimits::default());
        assert_eq!(accounts.invite_limits(), InviteLimits::default());
        assert!(
            Config::try_parse_from(["chat-app", "--invite-cooldown-secs", "31536001"]).is_err()
        );
    }

    #[test]
    fn account_flags_are_read() {
        let accounts = Config::parse_from([
            "chat-app",
            "--register-burst",
            "2",
            "--login-address-burst",
            "7",
            "--password-hashes",
            "3",
            "--login-queue",
            "40",
            "--login-queue-per-address",
            "1",
        ])
        .accounts;
        let limits = accounts.api_limits();
        assert_eq!(limits.register_per_address.burst, 2);
        assert_eq!(limits.login_per_address.burst, 7);
        assert_eq!(
            limits.hashing,
            HashLimits {
                permits: 3,
                queue: 40,
                queue_per_group: 1
            }
        );
        assert!(Config::try_parse_from(["chat-app", "--password-hashes", "0"]).is_err());
    }
}
