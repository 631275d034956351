//! History in PostgreSQL: a deadpool of tokio-postgres connections, prepared statements.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::{NoTls, Row};

use super::{migrate, pg_error, rfc3339, tls, Store, StoreError, StoredMessage};

/// How long a call waits for a connection before answering `Unavailable`: a database
/// outage turns into quick error replies, never a hang. Pooled connections are verified
/// with a ping when checked out (`RecyclingMethod::Verified`), so a connection killed
/// during an outage is replaced instead of failing the first message after recovery.
/// These bound the pool's steps only; a statement in flight is bounded by the
/// `TimeoutStore` that `main.rs` wraps every store in.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);

/// PostgreSQL-backed history.
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("status", &self.pool.status())
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

const SELECT_COLUMNS: &str = "id, room, username, body, inserted_at";

fn to_message(row: &Row) -> StoredMessage {
    StoredMessage {
        id: row.get(0),
        room: row.get(1),
        username: row.get(2),
        body: row.get(3),
        inserted_at: rfc3339(row.get::<_, time::OffsetDateTime>(4)),
    }
}

impl PostgresStore {
    /// Connects (pool of `pool_size`), runs migrations, and returns the store.
    ///
    /// Errors say what is wrong in the operator's terms (see [`super::explain_pg_error`]):
    /// a missing database or role by name, the host and port that refused, the part of
    /// the connection string that does not parse.
    pub async fn connect(database_url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let (url, _) = tls::split_sslmode(database_url).map_err(StoreError::Unavailable)?;
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(pg_error::explain(&e, None)))?;
        let store = Self::connect_lazy(database_url, pool_size)?;
        let mut client = store.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => {
                StoreError::Unavailable(pg_error::explain(&e, Some(&config)))
            }
            deadpool_postgres::PoolError::Timeout(_) => StoreError::Unavailable(format!(
                "no answer from {} within {POOL_TIMEOUT:?}",
                pg_error::target(&config)
            )),
            other => unavailable(other),
        })?;
        let applied = migrate(&mut client).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "migrations applied");
        }
        Ok(store)
    }

    /// A pool that connects on first use, without running migrations.
    pub fn connect_lazy(database_url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let (url, mode) = tls::split_sslmode(database_url).map_err(StoreError::Unavailable)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(pg_error::explain(&e, None)))?;
        config.connect_timeout(POOL_TIMEOUT);
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        };
        let manager = match tls::connector(&mode).map_err(StoreError::Unavailable)? {
            Some(connector) => {
                if mode == tls::TlsMode::Require {
                    tracing::warn!(
                        "sslmode=require: TLS without verifying the server's certificate \
                         (as libpq); use sslmode=verify-full to authenticate the server"
                    );
                }
                Manager::from_config(config, connector, manager_config)
            }
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(POOL_TIMEOUT),
                create: Some(POOL_TIMEOUT),
                recycle: Some(POOL_TIMEOUT),
            })
            .build()
            .map_err(unavailable)?;
        Ok(Self { pool })
    }

    /// The pool, for the account store to share the connection settings and migrations.
    pub fn into_pool(self) -> Pool {
        self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn room_exists(&self, room: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT 1 FROM rooms WHERE name = $1")
            .await
            .map_err(unavailable)?;
        let row = client
            .query_opt(&stmt, &[&room])
            .await
            .map_err(unavailable)?;
        Ok(row.is_some())
    }

    async fn ensure_room(&self, room: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("INSERT INTO rooms (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .await
            .map_err(unavailable)?;
        // One row inserted: created now; none: it existed (ON CONFLICT DO NOTHING).
        let inserted = client.execute(&stmt, &[&room]).await.map_err(unavailable)?;
        Ok(inserted == 1)
    }

    async fn insert(
        &self,
        room: &str,
        username: &str,
        body: &str,
    ) -> Result<StoredMessage, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "INSERT INTO messages (room, username, body) VALUES ($1, $2, $3) RETURNING {SELECT_COLUMNS}"
            ))
            .await
            .map_err(unavailable)?;
        let row = client
            .query_one(&stmt, &[&room, &username, &body])
            .await
            .map_err(unavailable)?;
        Ok(to_message(&row))
    }

    async fn recent(&self, room: &str, limit: u32) -> Result<Vec<StoredMessage>, StoreError> {
        self.history(room, i64::MAX, limit).await
    }

    async fn history(
        &self,
        room: &str,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {SELECT_COLUMNS} FROM messages WHERE room = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ))
            .await
            .map_err(unavailable)?;
        let rows = client
            .query(&stmt, &[&room, &before_id, &i64::from(limit)])
            .await
            .map_err(unavailable)?;
        let mut messages: Vec<StoredMessage> = rows.iter().map(to_message).collect();
        messages.reverse();
        Ok(messages)
    }

    fn describe(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("").await.map_err(unavailable)?;
        Ok(())
    }

    fn pool_status(&self) -> Option<super::PoolStatus> {
        let status = self.pool.status();
        Some(super::PoolStatus {
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        })
    }
}
