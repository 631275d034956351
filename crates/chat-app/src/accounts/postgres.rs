//! The [`AccountStore`] in PostgreSQL (tables from `migrations/0002_create_accounts.sql`),
//! and the endpoint's secret when none is configured (`0005_secret_key_base.sql`).

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{AccountStore, Membership, RoomKind, User};
use crate::store::{PostgresStore, StoreError};

/// Accounts in PostgreSQL, on a pool of their own.
pub struct PostgresAccounts {
    pool: deadpool_postgres::Pool,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn to_user(row: &Row) -> User {
    User {
        id: row.get(0),
        username: row.get(1),
        fold: row.get(2),
        password_hash: row.get(3),
    }
}

fn kind_name(kind: RoomKind) -> &'static str {
    match kind {
        RoomKind::Public => "public",
        RoomKind::Private => "private",
        RoomKind::Dm => "dm",
    }
}

fn parse_kind(name: &str) -> RoomKind {
    match name {
        "private" => RoomKind::Private,
        "dm" => RoomKind::Dm,
        _ => RoomKind::Public,
    }
}

impl PostgresAccounts {
    /// Connects and applies the migrations (the same as the message store's).
    pub async fn connect(database_url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let pool = PostgresStore::connect(database_url, pool_size)
            .await?
            .into_pool();
        Ok(Self { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }

    /// The secret kept in the database (`migrations/0005_secret_key_base.sql`): the one
    /// there, or `candidate` if there was none, which this call then stored. Of several
    /// nodes calling at once, exactly one stores its candidate and every one gets it.
    pub async fn stored_secret(&self, candidate: &str) -> Result<String, StoreError> {
        let client = self.client().await?;
        // Two statements, not one: a conflict with a row committed by another node after
        // this statement's snapshot would leave a single `INSERT … SELECT` empty-handed.
        client
            .execute(
                "INSERT INTO secret_key_base (id, secret) VALUES (1, $1)
                 ON CONFLICT (id) DO NOTHING",
                &[&candidate],
            )
            .await
            .map_err(unavailable)?;
        let row = client
            .query_one("SELECT secret FROM secret_key_base WHERE id = 1", &[])
            .await
            .map_err(unavailable)?;
        Ok(row.get(0))
    }

    async fn one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(unavailable)?;
        client.query_opt(&stmt, params).await.map_err(unavailable)
    }

    async fn all(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(unavailable)?;
        client.query(&stmt, params).await.map_err(unavailable)
    }
}

const USER_COLUMNS: &str = "id, username, fold, password_hash";

#[async_trait]
impl AccountStore for PostgresAccounts {
    async fn create_user(
        &self,
        username: &str,
        fold: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        let sql = format!(
            "INSERT INTO users (username, fold, password_hash) VALUES ($1, $2, $3)
             ON CONFLICT (fold) DO NOTHING RETURNING {USER_COLUMNS}"
        );
        Ok(self
            .one(&sql, &[&username, &fold, &password_hash])
            .await?
            .map(|r| to_user(&r)))
    }

    async fn user_by_fold(&self, fold: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE fold = $1");
        Ok(self.one(&sql, &[&fold]).await?.map(|r| to_user(&r)))
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(self.one(&sql, &[&id]).await?.map(|r| to_user(&r)))
    }

    async fn create_session(&self, session: &str, user_id: i64) -> Result<(), StoreError> {
        self.all(
            "INSERT INTO sessions (id, user_id) VALUES ($1, $2)",
            &[&session, &user_id],
        )
        .await?;
        Ok(())
    }

    async fn session_user(&self, session: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .one("SELECT user_id FROM sessions WHERE id = $1", &[&session])
            .await?
            .map(|r| r.get(0)))
    }

    async fn delete_sessions(&self, user_id: i64) -> Result<(), StoreError> {
        self.all("DELETE FROM sessions WHERE user_id = $1", &[&user_id])
            .await?;
        Ok(())
    }

    async fn room_kind(&self, room: &str) -> Result<Option<RoomKind>, StoreError> {
        Ok(self
            .one("SELECT kind FROM room_access WHERE room = $1", &[&room])
            .await?
            .map(|r| parse_kind(r.get(0))))
    }

    async fn claim_room(&self, room: &str, kind: RoomKind) -> Result<bool, StoreError> {
        Ok(self
            .one(
                "INSERT INTO room_access (room, kind) VALUES ($1, $2)
                 ON CONFLICT (room) DO NOTHING RETURNING 1",
                &[&room, &kind_name(kind)],
            )
            .await?
            .is_some())
    }

    async fn add_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .one(
                "INSERT INTO memberships (room, user_id) VALUES ($1, $2)
                 ON CONFLICT (room, user_id) DO NOTHING RETURNING 1",
                &[&room, &user_id],
            )
            .await?
            .is_some())
    }

    async fn remove_member(&self, room: &str, user_id: i64) -> Result<(), StoreError> {
        self.all(
            "DELETE FROM memberships WHERE room = $1 AND user_id = $2",
            &[&room, &user_id],
        )
        .await?;
        Ok(())
    }

    async fn is_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .one(
                "SELECT 1 FROM memberships WHERE room = $1 AND user_id = $2",
                &[&room, &user_id],
            )
            .await?
            .is_some())
    }

    async fn members(&self, room: &str) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .all(
                "SELECT user_id FROM memberships WHERE room = $1 ORDER BY user_id",
                &[&room],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn memberships(&self, user_id: i64) -> Result<Vec<Membership>, StoreError> {
        Ok(self
            .all(
                "SELECT m.room, COALESCE(a.kind, 'public'), m.last_read_id
                 FROM memberships m LEFT JOIN room_access a ON a.room = m.room
                 WHERE m.user_id = $1 ORDER BY m.room",
                &[&user_id],
            )
            .await?
            .iter()
            .map(|r| Membership {
                room: r.get(0),
                kind: parse_kind(r.get(1)),
                last_read_id: r.get(2),
            })
            .collect())
    }

    async fn membership_count(&self, user_id: i64) -> Result<usize, StoreError> {
        let row = self
            .one(
                "SELECT count(*) FROM memberships WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
        Ok(row.map_or(0, |r| usize::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }

    async fn public_rooms(&self, limit: usize) -> Result<Vec<(String, usize)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .all(
                "SELECT a.room, count(m.user_id) AS members
                 FROM room_access a LEFT JOIN memberships m ON m.room = a.room
                 WHERE a.kind = 'public'
                 GROUP BY a.room ORDER BY members DESC, a.room LIMIT $1",
                &[&limit],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), usize::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
            .collect())
    }

    async fn mark_read(&self, user_id: i64, room: &str, id: i64) -> Result<(), StoreError> {
        self.all(
            "UPDATE memberships SET last_read_id = GREATEST(last_read_id, $3)
             WHERE user_id = $1 AND room = $2",
            &[&user_id, &room, &id],
        )
        .await?;
        Ok(())
    }
}
