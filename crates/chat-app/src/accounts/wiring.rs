//! What `main.rs` needs to switch accounts on, kept here so that its own lines stay few.

use std::sync::Arc;

use anyhow::Context;
use rand::RngCore;

use super::members_cache::MembersCache;
use super::timeout::TimeoutAccounts;
use super::user_channel::UserChannel;
use super::{AccountStore, MemoryAccounts, PostgresAccounts};
use crate::directory::RoomDirectory;
use crate::store::Store;

/// Where the endpoint's `secret_key_base` came from (logged at start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// `SECRET_KEY_BASE` / `--secret-key-base`.
    Configured,
    /// Made once and kept in PostgreSQL (`secret_key_base` table): sessions outlive
    /// restarts.
    Database,
    /// Random for this process (memory mode): sessions end with the process.
    Process,
}

impl SecretSource {
    /// For the start-up line.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Configured => "set (SECRET_KEY_BASE)",
            Self::Database => "kept in the database (sessions outlive restarts)",
            Self::Process => "random for this process (sessions end when it stops)",
        }
    }
}

/// The account store and the secret that signs its sessions.
pub struct Accounts {
    /// The store, every call bounded by the store timeout.
    pub store: Arc<dyn AccountStore>,
    /// The endpoint's `secret_key_base`: it signs session tokens and long-poll tokens.
    pub secret: Vec<u8>,
    /// Where the secret came from.
    pub secret_source: SecretSource,
}

/// 64 random bytes as 128 hex digits (the form `SECRET_KEY_BASE` usually takes).
fn random_secret() -> String {
    let mut bytes = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Accounts in PostgreSQL when `database_url` is set, else in memory (logged), and the
/// secret that signs sessions: `configured` (`SECRET_KEY_BASE`, empty meaning unset) if
/// given; else, with a database, the one kept there (made by the first node to start);
/// else a random one for this process, and sessions end with it (logged).
///
/// Every call is bounded by `timeout` (the store timeout, as for history). `clustered`:
/// other nodes change memberships too, so this node must not keep rooms' member lists
/// (it would not hear of their changes; see `MembersCache`). A cluster is refused
/// without a configured secret before this runs (`Config::cluster_settings`), so that a
/// secret is something its operator chose for every node.
pub async fn accounts(
    database_url: Option<&str>,
    pool_size: usize,
    timeout: std::time::Duration,
    clustered: bool,
    configured: Option<&str>,
) -> anyhow::Result<Accounts> {
    let configured = configured.filter(|secret| !secret.is_empty());
    let Some(url) = database_url else {
        tracing::warn!(
            "DATABASE_URL is not set: accounts are kept in memory and are NOT persisted"
        );
        let (secret, secret_source) = match configured {
            Some(secret) => (secret.as_bytes().to_vec(), SecretSource::Configured),
            None => {
                tracing::warn!(
                    "SECRET_KEY_BASE is not set and there is no database: session tokens \
                     are signed with a random secret of this process, so every session \
                     ends when it stops (set SECRET_KEY_BASE to keep them)"
                );
                (random_secret().into_bytes(), SecretSource::Process)
            }
        };
        return Ok(Accounts {
            store: Arc::new(TimeoutAccounts::new(MemoryAccounts::new(), timeout)),
            secret,
            secret_source,
        });
    };
    let store = PostgresAccounts::connect(url, pool_size)
        .await
        .context("connecting to PostgreSQL for accounts (DATABASE_URL)")?;
    tracing::info!("accounts are stored in PostgreSQL");
    let (secret, secret_source) = match configured {
        Some(secret) => (secret.as_bytes().to_vec(), SecretSource::Configured),
        None => {
            let secret = tokio::time::timeout(timeout, store.stored_secret(&random_secret()))
                .await
                .map_err(|_| crate::store::StoreError::TimedOut(timeout))
                .and_then(|result| result)
                .context("reading the session secret kept in PostgreSQL (secret_key_base)")?;
            tracing::info!(
                "SECRET_KEY_BASE is not set: sessions are signed with the secret kept in \
                 the database (table secret_key_base), so they outlive restarts"
            );
            (secret.into_bytes(), SecretSource::Database)
        }
    };
    let store = TimeoutAccounts::new(store, timeout);
    let store: Arc<dyn AccountStore> = if clustered {
        Arc::new(store)
    } else {
        // Members kept between messages: see `MembersCache` (one lookup per message
        // was most of a stored message's cost).
        Arc::new(MembersCache::new(store))
    };
    Ok(Accounts {
        store,
        secret,
        secret_source,
    })
}

/// The `user:*` channel factory (default invitation limits).
pub fn user_channel(
    accounts: &Arc<dyn AccountStore>,
    store: &Arc<dyn Store>,
    rooms: &Arc<RoomDirectory>,
) -> impl Fn() -> UserChannel + Send + Sync + 'static {
    user_channel_with(accounts, store, rooms, super::InviteLimits::default())
}

/// The `user:*` channel factory with these invitation limits.
pub fn user_channel_with(
    accounts: &Arc<dyn AccountStore>,
    store: &Arc<dyn Store>,
    rooms: &Arc<RoomDirectory>,
    limits: super::InviteLimits,
) -> impl Fn() -> UserChannel + Send + Sync + 'static {
    let (accounts, store, rooms) = (accounts.clone(), store.clone(), rooms.clone());
    move || {
        UserChannel::new(accounts.clone(), store.clone(), rooms.clone()).with_invite_limits(limits)
    }
}
