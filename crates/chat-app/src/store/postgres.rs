//! History in PostgreSQL: a deadpool of tokio-postgres connections, prepared statements;
//! messages written by group commit (see [`super::group_commit`]).

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::{NoTls, Row};

use super::group_commit::{Applied, BatchError, BatchWrite, GroupCommit, Op, WriterConfig};
use super::{
    migrate, pg_error, rfc3339, tls, Announce, Change, Inserted, NewMessage, Reactions, Reactor,
    Refusal, SearchQuery, Store, StoreError, StoredMessage, MAX_EMOJI_PER_MESSAGE,
};

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

const SELECT_COLUMNS: &str = "id, room, username, body, inserted_at, parent_id, reply_count, \
     edited_at, deleted, attachments, mentions, client_id, author, coalesce(change_seq, id)";

/// A row of `SELECT_COLUMNS`, without its reactions (see [`with_reactions`]).
fn to_message(row: &Row) -> StoredMessage {
    let json = |at: usize| row.get::<_, serde_json::Value>(at);
    StoredMessage {
        id: row.get(0),
        room: row.get(1),
        username: row.get(2),
        body: row.get(3),
        inserted_at: rfc3339(row.get::<_, time::OffsetDateTime>(4)),
        parent_id: row.get(5),
        reply_count: i64::from(row.get::<_, i32>(6)),
        edited_at: row.get::<_, Option<time::OffsetDateTime>>(7).map(rfc3339),
        deleted: row.get(8),
        reactions: Reactions::default(),
        // Written by this store from the same types: a row that does not parse is shown
        // without them rather than failing the page.
        attachments: serde_json::from_value(json(9)).unwrap_or_default(),
        mentions: serde_json::from_value(json(10)).unwrap_or_default(),
        client_id: row.get(11),
        author: row.get(12),
        seq: row.get(13),
    }
}

/// Fills in the reactions of `messages` (one query for all of them).
async fn with_reactions(
    client: &tokio_postgres::Client,
    messages: &mut [StoredMessage],
) -> Result<(), StoreError> {
    reactions_of(client, messages).await.map_err(unavailable)
}

/// [`with_reactions`] on any client (a transaction's included).
async fn reactions_of(
    client: &impl tokio_postgres::GenericClient,
    messages: &mut [StoredMessage],
) -> Result<(), tokio_postgres::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    let rows = client
        .query(
            "SELECT message_id, emoji, reactor, username FROM message_reactions \
             WHERE message_id = ANY($1) ORDER BY seq",
            &[&ids],
        )
        .await?;
    for row in rows {
        let id: i64 = row.get(0);
        if let Some(message) = messages.iter_mut().find(|m| m.id == id) {
            message.reactions.push(
                row.get(1),
                Reactor {
                    key: row.get(2),
                    username: row.get(3),
                },
            );
        }
    }
    Ok(())
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

    /// Messages `SELECT_COLUMNS … FROM messages <rest>`, with their reactions.
    async fn select(
        &self,
        rest: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {SELECT_COLUMNS} FROM messages {rest}"))
            .await
            .map_err(unavailable)?;
        let rows = client.query(&stmt, params).await.map_err(unavailable)?;
        let mut messages: Vec<StoredMessage> = rows.iter().map(to_message).collect();
        with_reactions(&client, &mut messages).await?;
        Ok(messages)
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

/// A batch in one statement: arrays unnested into rows. `unnest` yields the rows in
/// array order and the insert draws each row's `id` from the sequence as the row
/// passes, so ids follow the batch's order (the group-commit tests against PostgreSQL
/// check it). One prepared statement serves every batch size. `inserted_at` is the
/// transaction's `now()`, shared by the batch.
///
/// Idempotency: a row whose `(room, author, client_id)` is taken, by an earlier message
/// or by an earlier row of this batch, is skipped (`ON CONFLICT DO NOTHING`), so the
/// rows returned (in id order) are the batch's rows minus its duplicates; the writer
/// looks the duplicates' first messages up afterwards ([`SELECT_FIRSTS`]). Replies add
/// to their parent's `reply_count` in the same statement (`bump`), so the count never
/// disagrees with the replies, and give the parent its change sequence number: the
/// highest id among them (drawn from the same sequence as every change's, so no extra
/// `nextval`; docs/chat.md, "Changes while away"). New rows leave `change_seq` NULL:
/// nothing more to write, and no entry in its partial index.
///
/// Attachments and mentions travel as JSON text (a `text[][]` would not unnest into
/// rows of arrays).
///
/// A multi-row `INSERT` rather than `COPY`: `COPY` returns no ids, so it would need the
/// ids drawn first (`nextval` over a series: a second round trip) and an explicit
/// transaction around both.
const INSERT_BATCH: &str = "WITH ins AS ( \
       INSERT INTO messages \
         (room, username, author, body, client_id, parent_id, attachments, mentions) \
       SELECT room, username, author, body, client_id, parent_id, \
              attachments::jsonb, mentions::jsonb \
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                   $6::int8[], $7::text[], $8::text[]) \
         AS t(room, username, author, body, client_id, parent_id, attachments, mentions) \
       ON CONFLICT (room, author, client_id) WHERE client_id IS NOT NULL DO NOTHING \
       RETURNING id, room, author, client_id, parent_id, inserted_at \
     ), bump AS ( \
       UPDATE messages m SET reply_count = m.reply_count + c.n, \
         change_seq = GREATEST(coalesce(m.change_seq, 0), c.last) \
       FROM (SELECT parent_id, count(*)::int AS n, max(id) AS last FROM ins \
             WHERE parent_id IS NOT NULL GROUP BY parent_id) c \
       WHERE m.id = c.parent_id \
     ) \
     SELECT id, room, author, client_id, inserted_at FROM ins ORDER BY id";

/// The first messages of the duplicates in a batch, by `(room, author, client_id)`.
const SELECT_FIRSTS: &str = "SELECT id, room, username, body, inserted_at, parent_id, \
     reply_count, edited_at, deleted, attachments, mentions, client_id, author, \
     coalesce(change_seq, id) \
     FROM messages WHERE (room, author, client_id) IN \
       (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))";

/// A group-commit writer's connection to PostgreSQL.
struct PgWriter {
    pool: Pool,
    conn: Option<deadpool_postgres::Object>,
}

impl PgWriter {
    async fn connection(&mut self) -> Result<&mut deadpool_postgres::Object, BatchError> {
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
            .as_mut()
            .ok_or_else(|| BatchError::Failed(unavailable("no writer connection")))
    }
}

impl PgWriter {
    /// Answers each duplicate of `batch` (a `None` in `out`) with its first message.
    async fn fill_duplicates(
        &mut self,
        batch: &[NewMessage],
        out: &mut [Option<Inserted>],
    ) -> Result<(), BatchError> {
        let client = self.connection().await?;
        let dups: Vec<&NewMessage> = batch
            .iter()
            .zip(out.iter())
            .filter(|(_, o)| o.is_none())
            .map(|(m, _)| m)
            .collect();
        let rooms: Vec<&str> = dups.iter().map(|m| m.room.as_str()).collect();
        let authors: Vec<&str> = dups.iter().map(|m| m.author.as_str()).collect();
        let keys: Vec<&str> = dups
            .iter()
            .map(|m| m.client_id.as_deref().unwrap_or_default())
            .collect();
        let firsts = client
            .query(SELECT_FIRSTS, &[&rooms, &authors, &keys])
            .await
            .map_err(|e| BatchError::Failed(unavailable(e)))?;
        let mut firsts: Vec<StoredMessage> = firsts.iter().map(to_message).collect();
        with_reactions(client, &mut firsts)
            .await
            .map_err(BatchError::Failed)?;
        for (m, slot) in batch.iter().zip(out.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            *slot = firsts
                .iter()
                .find(|f| f.room == m.room && f.author == m.author && f.client_id == m.client_id)
                .map(|first| Inserted {
                    message: first.clone(),
                    duplicate: true,
                });
        }
        Ok(())
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
    async fn write(&mut self, batch: &[NewMessage]) -> Result<Vec<Inserted>, BatchError> {
        let client = self.connection().await?;
        let column = |f: fn(&NewMessage) -> &str| batch.iter().map(f).collect::<Vec<&str>>();
        let rooms = column(|m| &m.room);
        let usernames = column(|m| &m.username);
        let authors = column(|m| &m.author);
        let bodies = column(|m| &m.body);
        let client_ids: Vec<Option<&str>> = batch.iter().map(|m| m.client_id.as_deref()).collect();
        let parents: Vec<Option<i64>> = batch.iter().map(|m| m.parent_id).collect();
        let to_json = |v: serde_json::Result<String>| v.unwrap_or_else(|_| "[]".to_owned());
        let attachments: Vec<String> = batch
            .iter()
            .map(|m| to_json(serde_json::to_string(&m.attachments)))
            .collect();
        let mentions: Vec<String> = batch
            .iter()
            .map(|m| to_json(serde_json::to_string(&m.mentions)))
            .collect();
        let rows = match client.prepare_cached(INSERT_BATCH).await {
            Ok(stmt) => {
                client
                    .query(
                        &stmt,
                        &[
                            &rooms,
                            &usernames,
                            &authors,
                            &bodies,
                            &client_ids,
                            &parents,
                            &attachments,
                            &mentions,
                        ],
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        // `query` returns once PostgreSQL is ready for the next query, which for this
        // implicit transaction is after its commit: every row returned is committed.
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) if refused_row(&e) => return Err(BatchError::Refused(e.to_string())),
            Err(e) => {
                // The connection may be broken or mid-answer: take a fresh one next time.
                self.abandon();
                return Err(BatchError::Failed(unavailable(e)));
            }
        };
        // Rows come in id order, which is batch order without the duplicates: walk both.
        let mut rows = rows.into_iter().peekable();
        let mut out: Vec<Option<Inserted>> = Vec::with_capacity(batch.len());
        for m in batch {
            let mine = rows.peek().is_some_and(|row| {
                row.get::<_, &str>(1) == m.room
                    && row.get::<_, &str>(2) == m.author
                    && row.get::<_, Option<&str>>(3) == m.client_id.as_deref()
            });
            match rows.next_if(|_| mine) {
                Some(row) => out.push(Some(Inserted {
                    message: StoredMessage::stored(
                        row.get(0),
                        rfc3339(row.get::<_, time::OffsetDateTime>(4)),
                        m,
                    ),
                    duplicate: false,
                })),
                None if m.client_id.is_some() => out.push(None),
                None => {
                    return Err(BatchError::Failed(unavailable(
                        "a batch answered rows that are not its messages",
                    )))
                }
            }
        }
        if out.iter().any(Option::is_none) {
            self.fill_duplicates(batch, &mut out).await?;
        }
        out.into_iter()
            .map(|i| {
                i.ok_or_else(|| {
                    BatchError::Failed(unavailable("a duplicate's first message is gone"))
                })
            })
            .collect()
    }

    async fn apply(&mut self, op: &Op) -> Result<Applied, BatchError> {
        let client = self.connection().await?;
        let applied = match op {
            Op::Change {
                room,
                id,
                author,
                change,
            } => apply_change(client, room, *id, author, change).await,
            Op::React {
                room,
                id,
                reactor,
                emoji,
            } => apply_reaction(client, room, *id, reactor, emoji).await,
        };
        match applied {
            Ok(applied) => Ok(applied),
            Err(e) if refused_row(&e) => Err(BatchError::Refused(e.to_string())),
            Err(e) => {
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

/// The change sequence: the id sequence, so that a change is numbered after every
/// message and change before it (docs/chat.md, "Changes while away").
const NEXT_SEQ: &str = "nextval('messages_id_seq')";

/// An edit or a delete, by its author only, not on a tombstone (the statement's guard:
/// two racing sockets cannot skip it); the message with a new change sequence number.
async fn apply_change(
    client: &mut deadpool_postgres::Object,
    room: &str,
    id: i64,
    author: &str,
    change: &Change,
) -> Result<Applied, tokio_postgres::Error> {
    let guard = "WHERE room = $1 AND id = $2 AND author = $3 AND NOT deleted";
    let changed = match change {
        Change::Edit { body, mentions } => {
            let sql = format!(
                "UPDATE messages SET body = $4, mentions = $5::text::jsonb, \
                 edited_at = now(), change_seq = {NEXT_SEQ} {guard} RETURNING {SELECT_COLUMNS}"
            );
            let mentions = serde_json::to_string(mentions).unwrap_or_else(|_| "[]".to_owned());
            let stmt = client.prepare_cached(&sql).await?;
            client
                .query_opt(&stmt, &[&room, &id, &author, body, &mentions])
                .await?
        }
        Change::Delete => {
            let sql = format!(
                "UPDATE messages SET body = '', attachments = '[]', mentions = '[]', \
                 deleted = true, change_seq = {NEXT_SEQ} {guard} RETURNING {SELECT_COLUMNS}"
            );
            let stmt = client.prepare_cached(&sql).await?;
            client.query_opt(&stmt, &[&room, &id, &author]).await?
        }
    };
    if let Some(row) = changed {
        let mut message = [to_message(&row)];
        reactions_of(&***client, &mut message).await?;
        let [message] = message;
        return Ok(Ok(message));
    }
    // Nothing changed: say why.
    let row = client
        .query_opt(
            "SELECT author, deleted FROM messages WHERE room = $1 AND id = $2",
            &[&room, &id],
        )
        .await?;
    Ok(Err(match row {
        None => Refusal::NotFound,
        Some(row) if row.get::<_, &str>(0) != author => Refusal::Forbidden,
        Some(_) => Refusal::Deleted,
    }))
}

/// Toggles a reaction: the message with its reactions now and a new change sequence
/// number, in one transaction.
async fn apply_reaction(
    client: &mut deadpool_postgres::Object,
    room: &str,
    id: i64,
    reactor: &Reactor,
    emoji: &str,
) -> Result<Applied, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // Locks the message: toggles on one message take turns (also from other nodes), so
    // the emoji bound holds.
    let message = tx
        .query_opt(
            "SELECT deleted FROM messages WHERE room = $1 AND id = $2 FOR UPDATE",
            &[&room, &id],
        )
        .await?;
    match message {
        None => return Ok(Err(Refusal::NotFound)),
        Some(row) if row.get::<_, bool>(0) => return Ok(Err(Refusal::Deleted)),
        Some(_) => {}
    }
    let removed = tx
        .execute(
            "DELETE FROM message_reactions \
             WHERE message_id = $1 AND emoji = $2 AND reactor = $3",
            &[&id, &emoji, &reactor.key],
        )
        .await?;
    if removed == 0 {
        let row = tx
            .query_one(
                "SELECT count(DISTINCT emoji), coalesce(bool_or(emoji = $2), false) \
                 FROM message_reactions WHERE message_id = $1",
                &[&id, &emoji],
            )
            .await?;
        let (distinct, present): (i64, bool) = (row.get(0), row.get(1));
        if !present && distinct >= MAX_EMOJI_PER_MESSAGE as i64 {
            return Ok(Err(Refusal::TooManyEmoji));
        }
        tx.execute(
            "INSERT INTO message_reactions (message_id, emoji, reactor, username) \
             VALUES ($1, $2, $3, $4)",
            &[&id, &emoji, &reactor.key, &reactor.username],
        )
        .await?;
    }
    let row = tx
        .query_one(
            &format!(
                "UPDATE messages SET change_seq = {NEXT_SEQ} WHERE id = $1 \
                 RETURNING {SELECT_COLUMNS}"
            ),
            &[&id],
        )
        .await?;
    let mut message = [to_message(&row)];
    reactions_of(&*tx, &mut message).await?;
    tx.commit().await?;
    let [message] = message;
    Ok(Ok(message))
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

    async fn insert_message(
        &self,
        new: NewMessage,
        announce: Option<Announce>,
    ) -> Result<Inserted, StoreError> {
        self.writer.insert(new, announce).await
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
        let mut messages = self
            .select(
                "WHERE room = $1 AND id < $2 AND parent_id IS NULL ORDER BY id DESC LIMIT $3",
                &[&room, &before_id, &i64::from(limit)],
            )
            .await?;
        messages.reverse();
        Ok(messages)
    }

    async fn after(
        &self,
        room: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.select(
            "WHERE room = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&room, &after_id, &i64::from(limit)],
        )
        .await
    }

    async fn message(&self, room: &str, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        let found = self
            .select("WHERE room = $1 AND id = $2", &[&room, &id])
            .await?;
        Ok(found.into_iter().next())
    }

    async fn replies(
        &self,
        room: &str,
        parent_id: i64,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut messages = self
            .select(
                "WHERE room = $1 AND parent_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4",
                &[&room, &parent_id, &before_id, &i64::from(limit)],
            )
            .await?;
        messages.reverse();
        Ok(messages)
    }

    async fn search(
        &self,
        room: &str,
        query: &SearchQuery,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        // The expression is the index's (migration 0004_message_search), so the planner
        // can use it; the room and id bounds come from messages_room_id_desc.
        self.select(
            "WHERE room = $1 AND id < $2 AND NOT deleted \
             AND to_tsvector('simple', body) @@ to_tsquery('simple', $3) \
             ORDER BY id DESC LIMIT $4",
            &[&room, &before_id, &query.tsquery(), &i64::from(limit)],
        )
        .await
    }

    async fn apply_change(
        &self,
        room: &str,
        id: i64,
        author: &str,
        change: Change,
        announce: Option<Announce>,
    ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
        let op = Op::Change {
            room: room.to_owned(),
            id,
            author: author.to_owned(),
            change,
        };
        self.writer.apply(op, announce).await
    }

    async fn toggle_reaction(
        &self,
        room: &str,
        id: i64,
        reactor: Reactor,
        emoji: &str,
        announce: Option<Announce>,
    ) -> Result<Result<StoredMessage, Refusal>, StoreError> {
        let op = Op::React {
            room: room.to_owned(),
            id,
            reactor,
            emoji: emoji.to_owned(),
        };
        self.writer.apply(op, announce).await
    }

    async fn seq(&self, room: &str) -> Result<i64, StoreError> {
        let client = self.client().await?;
        // Two index lookups: the newest id, the latest change (partial index).
        let stmt = client
            .prepare_cached(
                "SELECT GREATEST( \
                   (SELECT max(id) FROM messages WHERE room = $1), \
                   (SELECT max(change_seq) FROM messages \
                     WHERE room = $1 AND change_seq IS NOT NULL), 0)",
            )
            .await
            .map_err(unavailable)?;
        let row = client
            .query_one(&stmt, &[&room])
            .await
            .map_err(unavailable)?;
        Ok(row.get(0))
    }

    async fn changed(
        &self,
        room: &str,
        after_seq: i64,
        max_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.select(
            "WHERE room = $1 AND change_seq IS NOT NULL AND change_seq > $2 AND id <= $3 \
             ORDER BY change_seq LIMIT $4",
            &[&room, &after_seq, &max_id, &i64::from(limit)],
        )
        .await
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
