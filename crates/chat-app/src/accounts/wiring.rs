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

/// The endpoint's `secret_key_base` (it signs session tokens): the configured one, or a
/// random one per start (sessions then end at a restart).
pub fn secret(configured: Option<&str>) -> Vec<u8> {
    match configured {
        Some(secret) => secret.as_bytes().to_vec(),
        None => {
            tracing::warn!(
                "SECRET_KEY_BASE is not set: a random one is used, so sessions end at restart"
            );
            let mut bytes = vec![0u8; 64];
            rand::thread_rng().fill_bytes(&mut bytes);
            bytes
        }
    }
}

/// Accounts in PostgreSQL when `database_url` is set, else in memory (logged).
/// Every call is bounded by `timeout` (the store timeout, as for history). `clustered`:
/// other nodes change memberships too, so this node must not keep rooms' member lists
/// (it would not hear of their changes; see `MembersCache`).
pub async fn account_store(
    database_url: Option<&str>,
    pool_size: usize,
    timeout: std::time::Duration,
    clustered: bool,
) -> anyhow::Result<Arc<dyn AccountStore>> {
    match database_url {
        Some(url) => {
            let store = PostgresAccounts::connect(url, pool_size)
                .await
                .context("connecting to PostgreSQL for accounts (DATABASE_URL)")?;
            tracing::info!("accounts are stored in PostgreSQL");
            let store = TimeoutAccounts::new(store, timeout);
            if clustered {
                return Ok(Arc::new(store));
            }
            // Members kept between messages: see `MembersCache` (one lookup per message
            // was most of a stored message's cost).
            Ok(Arc::new(MembersCache::new(store)))
        }
        None => {
            tracing::warn!(
                "DATABASE_URL is not set: accounts are kept in memory and are NOT persisted"
            );
            Ok(Arc::new(TimeoutAccounts::new(
                MemoryAccounts::new(),
                timeout,
            )))
        }
    }
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

/// The account API's limits with these bursts (the rates as in `api`'s defaults).
pub fn limits(register_burst: u32, login_address_burst: u32) -> super::api::ApiLimits {
    let defaults = super::api::ApiLimits::default();
    super::api::ApiLimits {
        register_per_address: crate::limit::Rate::new(
            register_burst,
            defaults.register_per_address.period,
        ),
        login_per_address: crate::limit::Rate::new(
            login_address_burst,
            defaults.login_per_address.period,
        ),
        ..defaults
    }
}
