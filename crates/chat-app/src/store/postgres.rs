//! History in PostgreSQL: a deadpool of tokio-postgres connections, prepared statements;
//! messages written by group commit (see [`super::group_commit`]).

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::{NoTls, Row};

use super::group_commit::{BatchError, BatchWrite, GroupCommit, NewMessage, WriterConfig};
use super::{migrate, pg_error, rfc3339, tls, Announce, Store, StoreError, StoredMessage};

/// How long a call waits for a connection before answering `Unavailable`: a database
/// outage turns into quick error replies, never a hang. Pooled connections are verified
/// with a ping when checked out (`RecyclingMethod::Verified`), so a connection killed
/// during an outage is replaced instead of failing the first message after recovery.
/// These bound the pool's steps only; a statement in flight is bounded by the
/// `TimeoutStore` that `main.rs` wraps every store in.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);

/// PostgreSQL-backed history: reads on a pool, writes through group-commit writers that
/// hold connections of their own (so reads never wait behind a batch, nor batches behind
/// reads).
pub struct PostgresStore {
    pool: Pool,
    writer: GroupCommit,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("status", &self.pool.status())
            .field("writer", &self.writer)
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
        Self::connect_with(database_url, pool_size, WriterConfig::default()).await
    }

    /// [`connect`](Self::connect) with group-commit writers sized by `writer`.
    pub async fn connect_with(
        database_url: &str,
        pool_size: usize,
        writer: WriterConfig,
    ) -> Result<Self, StoreError> {
        let (url, _) = tls::split_sslmode(database_url).map_err(StoreError::Unavailable)?;
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(pg_error::explain(&e, None)))?;
        let store = Self::connect_lazy_with(database_url, pool_size, writer)?;
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

    /// A pool that connects on first use, without running migrations. Starts the
    /// writer tasks, so it needs a Tokio runtime.
    pub fn connect_lazy(database_url: &str, pool_size: usize) -> Result<Self, StoreError> {
        Self::connect_lazy_with(database_url, pool_size, WriterConfig::default())
    }

    /// [`connect_lazy`](Self::connect_lazy) with group-commit writers sized by `writer`.
    pub fn connect_lazy_with(
        database_url: &str,
        pool_size: usize,
        writer: WriterConfig,
    ) -> Result<Self, StoreError> {
        let pool = build_pool(database_url, pool_size, true)?;
        // One connection per writer, kept between batches (no checkout round trip per
        // batch); a writer whose connection failed takes a fresh one from this pool.
        let writers = build_pool(database_url, writer.writers.max(1), false)?;
        let writer = GroupCommit::spawn(writer, |_| PgWriter {
            pool: writers.clone(),
            conn: None,
        });
        Ok(Self { pool, writer })
    }

    /// The pool, for the account store to share the connection settings and migrations.
    pub fn into_pool(self) -> Pool {
        self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }
}

/// A pool of `size` connections; `warn`: log the `sslmode=require` caveat (once per store).
fn build_pool(database_url: &str, size: usize, warn: bool) -> Result<Pool, StoreError> {
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
            if warn && mode == tls::TlsMode::Require {
                tracing::warn!(
                    "sslmode=require: TLS without verifying the server's certificate \
                     (as libpq); use sslmode=verify-full to authenticate the server"
                );
            }
            Manager::from_config(config, connector, manager_config)
        }
        None => Manager::from_config(config, NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(POOL_TIMEOUT),
            create: Some(POOL_TIMEOUT),
            recycle: Some(POOL_TIMEOUT),
        })
        .build()
        .map_err(unavailable)
}

/// A batch in one statement: three arrays unnested into rows. `unnest` yields the rows
/// in array order and the insert draws each row's `id` from the sequence as the row
/// passes, so ids follow the batch's order, and `RETURNING` answers in that order too
/// (the group-commit tests against PostgreSQL check both). One prepared statement
/// serves every batch size. `inserted_at` is the transaction's `now()`, shared by the
/// batch.
///
/// A multi-row `INSERT` rather than `COPY`: `COPY` returns no ids, so it would need the
/// ids drawn first (`nextval` over a series: a second round trip) and an explicit
/// transaction around both.
const INSERT_BATCH: &str = "INSERT INTO messages (room, username, body) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
     RETURNING id, inserted_at";

/// A group-commit writer's connection to PostgreSQL.
struct PgWriter {
    pool: Pool,
    conn: Option<deadpool_postgres::Object>,
}

impl PgWriter {
    async fn connection(&mut self) -> Result<&deadpool_postgres::Object, BatchError> {
        if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let conn = self
                .pool
                .get()
                .await
                .map_err(|e| BatchError::Failed(unavailable(e)))?;
            self.conn = Some(conn);
        }
        self.conn
            .as_ref()
            .ok_or_else(|| BatchError::Failed(unavailable("no writer connection")))
    }
}

/// A data exception (class 22) or integrity violation (class 23): the database refused
/// a row, not the connection.
fn refused_row(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}

#[async_trait]
impl BatchWrite for PgWriter {
    async fn write(&mut self, batch: &[NewMessage]) -> Result<Vec<StoredMessage>, BatchError> {
        let client = self.connection().await?;
        let rooms: Vec<&str> = batch.iter().map(|m| m.room.as_str()).collect();
        let usernames: Vec<&str> = batch.iter().map(|m| m.username.as_str()).collect();
        let bodies: Vec<&str> = batch.iter().map(|m| m.body.as_str()).collect();
        let rows = match client.prepare_cached(INSERT_BATCH).await {
            Ok(stmt) => client.query(&stmt, &[&rooms, &usernames, &bodies]).await,
            Err(e) => Err(e),
        };
        // `query` returns once PostgreSQL is ready for the next query, which for this
        // implicit transaction is after its commit: every row returned is committed.
        match rows {
            Ok(rows) => Ok(batch
                .iter()
                .zip(rows)
                .map(|(m, row)| StoredMessage {
                    id: row.get(0),
                    room: m.room.clone(),
                    username: m.username.clone(),
                    body: m.body.clone(),
                    inserted_at: rfc3339(row.get::<_, time::OffsetDateTime>(1)),
                })
                .collect()),
            Err(e) if refused_row(&e) => Err(BatchError::Refused(e.to_string())),
            Err(e) => {
                // The connection may be broken or mid-answer: take a fresh one next time.
                self.abandon();
                Err(BatchError::Failed(unavailable(e)))
            }
        }
    }

    fn abandon(&mut self) {
        // Taken out of the pool and dropped, not returned: it may owe an answer.
        if let Some(conn) = self.conn.take() {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

fn new_message(room: &str, username: &str, body: &str) -> NewMessage {
    NewMessage {
        room: room.to_owned(),
        username: username.to_owned(),
        body: body.to_owned(),
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
        self.writer
            .insert(new_message(room, username, body), None)
            .await
    }

    async fn insert_announced(
        &self,
        room: &str,
        username: &str,
        body: &str,
        announce: Announce,
    ) -> Result<StoredMessage, StoreError> {
        self.writer
            .insert(new_message(room, username, body), Some(announce))
            .await
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
