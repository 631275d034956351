//! The [`AccountStore`] in PostgreSQL (tables from `migrations/0002_create_accounts.sql`),
//! and the endpoint's secret when none is configured (`0005_secret_key_base.sql`).

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::invitations::{after, seconds};
use super::{
    AcceptOutcome, AccountStore, Creation, Entry, Invitation, InviteLimits, InviteOutcome,
    Membership, RoomKind, RoomName, Similar, User, MAX_MEMBERS, MAX_MEMBERSHIPS,
};
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

    async fn room_name(&self, room: &str, fold: &str) -> Result<RoomName, StoreError> {
        let row = self
            .one(
                "SELECT room, kind FROM room_access WHERE room = $1 OR fold = $2
                 ORDER BY room = $1 DESC LIMIT 1",
                &[&room, &fold],
            )
            .await?;
        Ok(match row {
            None => RoomName::Free,
            Some(row) if row.get::<_, &str>(0) == room => RoomName::Exists(parse_kind(row.get(1))),
            Some(row) => RoomName::LookAlike(Similar {
                room: row.get(0),
                kind: parse_kind(row.get(1)),
            }),
        })
    }

    async fn enter_room(
        &self,
        room: &str,
        fold: &str,
        user: Option<i64>,
    ) -> Result<Entry, StoreError> {
        let kind_of = "SELECT kind FROM room_access WHERE room = $1";
        let kind = match self.one(kind_of, &[&room]).await? {
            Some(row) => parse_kind(row.get(0)),
            None => {
                // The unique room name and folded name pick one claimer among concurrent
                // ones; a claim that lost waits for the winner's commit (ON CONFLICT),
                // so the next statement (a new snapshot) reads the kind the winner
                // recorded. Kinds never change afterwards.
                let claimed = self
                    .one(
                        "INSERT INTO room_access (room, kind, fold) VALUES ($1, 'public', $2)
                         ON CONFLICT DO NOTHING RETURNING kind",
                        &[&room, &fold],
                    )
                    .await?;
                match claimed {
                    Some(row) => parse_kind(row.get(0)),
                    None => match self.one(kind_of, &[&room]).await? {
                        Some(row) => parse_kind(row.get(0)),
                        // Not this name: its fold is another room's.
                        None => {
                            return Ok(match self.room_name(room, fold).await? {
                                RoomName::LookAlike(similar) => Entry::LookAlike(similar),
                                _ => Entry::Denied,
                            })
                        }
                    },
                }
            }
        };
        Ok(match (kind, user) {
            (RoomKind::Public, Some(user)) => {
                let max = i64::try_from(MAX_MEMBERSHIPS).unwrap_or(i64::MAX);
                self.all(
                    "INSERT INTO memberships (room, user_id) SELECT $1, $2
                     WHERE NOT EXISTS (SELECT 1 FROM memberships WHERE room = $1 AND user_id = $2)
                       AND (SELECT count(*) FROM memberships WHERE user_id = $2) < $3
                     ON CONFLICT (room, user_id) DO NOTHING",
                    &[&room, &user, &max],
                )
                .await?;
                Entry::Granted(kind)
            }
            (RoomKind::Public, None) => Entry::Granted(kind),
            (RoomKind::Private, Some(user)) if self.is_member(room, user).await? => {
                Entry::Granted(kind)
            }
            _ => Entry::Denied,
        })
    }

    async fn create_private(
        &self,
        room: &str,
        fold: &str,
        creator: i64,
    ) -> Result<Creation, StoreError> {
        // One statement: the room and its creator's membership, or neither.
        let created = self
            .one(
                "WITH claim AS (
                   INSERT INTO room_access (room, kind, fold) VALUES ($1, 'private', $2)
                   ON CONFLICT DO NOTHING RETURNING room
                 ), member AS (
                   INSERT INTO memberships (room, user_id) SELECT room, $3 FROM claim
                   ON CONFLICT (room, user_id) DO NOTHING
                 )
                 SELECT count(*) FROM claim",
                &[&room, &fold, &creator],
            )
            .await?
            .is_some_and(|row| row.get::<_, i64>(0) == 1);
        if created {
            return Ok(Creation::Created);
        }
        Ok(match self.room_name(room, fold).await? {
            RoomName::LookAlike(similar) => Creation::LookAlike(similar),
            _ => Creation::Exists,
        })
    }

    async fn invite(
        &self,
        room: &str,
        inviter: i64,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<InviteOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(unavailable)?;
        // Both users' rows locked (in id order): invitations from this inviter, and to
        // this invitee, are decided one at a time, so the bounds hold exactly.
        let ids = vec![inviter.min(invitee), inviter.max(invitee)];
        tx.query(
            "SELECT 1 FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            &[&ids],
        )
        .await
        .map_err(unavailable)?;
        let lifetime = seconds(limits.lifetime);
        tx.execute(
            "DELETE FROM invitations WHERE (invitee = $1 OR inviter = $2)
               AND inserted_at <= now() - make_interval(secs => $3)",
            &[&invitee, &inviter, &lifetime],
        )
        .await
        .map_err(unavailable)?;
        tx.execute(
            "DELETE FROM invite_cooldowns WHERE invitee = $1 AND until <= now()",
            &[&invitee],
        )
        .await
        .map_err(unavailable)?;
        let row = tx
            .query_one(
                "SELECT
                   EXISTS (SELECT 1 FROM room_access a JOIN memberships m
                             ON m.room = a.room AND m.user_id = $2
                           WHERE a.room = $1 AND a.kind = 'private'),
                   EXISTS (SELECT 1 FROM memberships WHERE room = $1 AND user_id = $3),
                   EXISTS (SELECT 1 FROM invitations WHERE room = $1 AND invitee = $3),
                   (SELECT max(until) FROM invite_cooldowns
                     WHERE invitee = $3 AND (room = $1 OR inviter = $2)),
                   (SELECT count(*) FROM memberships WHERE room = $1),
                   (SELECT count(*) FROM invitations WHERE inviter = $2),
                   (SELECT count(*) FROM invitations WHERE invitee = $3),
                   (SELECT username FROM users WHERE id = $2)",
                &[&room, &inviter, &invitee],
            )
            .await
            .map_err(unavailable)?;
        let count = |at: usize| usize::try_from(row.get::<_, i64>(at)).unwrap_or(usize::MAX);
        let outcome = if !row.get::<_, bool>(0) {
            InviteOutcome::Unauthorized
        } else if row.get::<_, bool>(1) {
            InviteOutcome::AlreadyMember
        } else if row.get::<_, bool>(2) {
            InviteOutcome::AlreadyPending
        } else if let Some(until) = row.get::<_, Option<OffsetDateTime>>(3) {
            InviteOutcome::CoolingDown { until }
        } else if count(4) >= MAX_MEMBERS {
            InviteOutcome::RoomFull
        } else if count(5) >= limits.per_inviter {
            InviteOutcome::InviterFull
        } else if count(6) >= limits.per_invitee {
            InviteOutcome::InviteeFull
        } else {
            let at: OffsetDateTime = tx
                .query_one(
                    "INSERT INTO invitations (room, invitee, inviter) VALUES ($1, $2, $3)
                     RETURNING inserted_at",
                    &[&room, &invitee, &inviter],
                )
                .await
                .map_err(unavailable)?
                .get(0);
            InviteOutcome::Invited(Invitation {
                room: room.to_owned(),
                inviter,
                inviter_name: row.get::<_, Option<String>>(7).unwrap_or_default(),
                at,
                expires_at: after(at, limits.lifetime),
            })
        };
        tx.commit().await.map_err(unavailable)?;
        Ok(outcome)
    }

    async fn invitations(
        &self,
        user_id: i64,
        limits: &InviteLimits,
    ) -> Result<Vec<Invitation>, StoreError> {
        Ok(self
            .all(
                "SELECT i.room, i.inviter, u.username, i.inserted_at
                 FROM invitations i JOIN users u ON u.id = i.inviter
                 WHERE i.invitee = $1 AND i.inserted_at > now() - make_interval(secs => $2)
                 ORDER BY i.inserted_at DESC, i.room",
                &[&user_id, &seconds(limits.lifetime)],
            )
            .await?
            .iter()
            .map(|r| Invitation {
                room: r.get(0),
                inviter: r.get(1),
                inviter_name: r.get(2),
                at: r.get(3),
                expires_at: after(r.get(3), limits.lifetime),
            })
            .collect())
    }

    async fn accept_invitation(
        &self,
        room: &str,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<AcceptOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(unavailable)?;
        // The invitee's row locked: their membership count is checked and raised in turn.
        tx.query(
            "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
            &[&invitee],
        )
        .await
        .map_err(unavailable)?;
        let taken = tx
            .query_opt(
                "DELETE FROM invitations WHERE room = $1 AND invitee = $2
                   AND inserted_at > now() - make_interval(secs => $3)
                 RETURNING inviter",
                &[&room, &invitee, &seconds(limits.lifetime)],
            )
            .await
            .map_err(unavailable)?;
        if taken.is_none() {
            return Ok(AcceptOutcome::NoInvitation);
        }
        let row = tx
            .query_one(
                "SELECT (SELECT count(*) FROM memberships WHERE user_id = $2),
                        (SELECT count(*) FROM memberships WHERE room = $1)",
                &[&room, &invitee],
            )
            .await
            .map_err(unavailable)?;
        let count = |at: usize| usize::try_from(row.get::<_, i64>(at)).unwrap_or(usize::MAX);
        // Dropping the transaction rolls back: the invitation stays pending.
        if count(0) >= MAX_MEMBERSHIPS {
            return Ok(AcceptOutcome::TooManyRooms);
        }
        if count(1) >= MAX_MEMBERS {
            return Ok(AcceptOutcome::RoomFull);
        }
        tx.execute(
            "INSERT INTO memberships (room, user_id) VALUES ($1, $2)
             ON CONFLICT (room, user_id) DO NOTHING",
            &[&room, &invitee],
        )
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(AcceptOutcome::Accepted)
    }

    async fn decline_invitation(
        &self,
        room: &str,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<bool, StoreError> {
        Ok(self
            .one(
                "WITH gone AS (
                   DELETE FROM invitations WHERE room = $1 AND invitee = $2
                     AND inserted_at > now() - make_interval(secs => $3)
                   RETURNING inviter
                 ), ended AS (
                   DELETE FROM invite_cooldowns WHERE invitee = $2 AND until <= now()
                 )
                 INSERT INTO invite_cooldowns (invitee, inviter, room, until)
                 SELECT $2, inviter, $1, now() + make_interval(secs => $4) FROM gone
                 RETURNING 1",
                &[
                    &room,
                    &invitee,
                    &seconds(limits.lifetime),
                    &seconds(limits.cooldown),
                ],
            )
            .await?
            .is_some())
    }

    async fn leave_room(
        &self,
        room: &str,
        user_id: i64,
        limits: &InviteLimits,
    ) -> Result<(), StoreError> {
        self.all(
            "WITH gone AS (
               DELETE FROM memberships WHERE room = $1 AND user_id = $2 RETURNING room
             ), ended AS (
               DELETE FROM invite_cooldowns WHERE invitee = $2 AND until <= now()
             )
             INSERT INTO invite_cooldowns (invitee, inviter, room, until)
             SELECT $2, NULL, g.room, now() + make_interval(secs => $3)
             FROM gone g JOIN room_access a ON a.room = g.room WHERE a.kind = 'private'",
            &[&room, &user_id, &seconds(limits.cooldown)],
        )
        .await?;
        Ok(())
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
