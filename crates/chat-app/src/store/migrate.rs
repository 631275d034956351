//! Plain SQL migrations from `migrations/`, applied once each and recorded.

use tokio_postgres::Client;

use super::StoreError;

/// Every migration, in order: (version, SQL). Embedded so the binary works from any
/// directory.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_create_rooms_and_messages",
        include_str!("../../../../migrations/0001_create_rooms_and_messages.sql"),
    ),
    (
        "0002_create_accounts",
        include_str!("../../../../migrations/0002_create_accounts.sql"),
    ),
    (
        "0003_message_threads_reactions",
        include_str!("../../../../migrations/0003_message_threads_reactions.sql"),
    ),
    (
        "0004_message_search",
        include_str!("../../../../migrations/0004_message_search.sql"),
    ),
    (
        "0005_secret_key_base",
        include_str!("../../../../migrations/0005_secret_key_base.sql"),
    ),
    (
        "0006_room_names_and_invitations",
        include_str!("../../../../migrations/0006_room_names_and_invitations.sql"),
    ),
    (
        "0007_message_change_seq",
        include_str!("../../../../migrations/0007_message_change_seq.sql"),
    ),
];

/// Any constant: the advisory lock that serializes concurrent migrators.
const LOCK_KEY: i64 = 0x7068_785f_7273; // "phx_rs"

/// Applies the migrations not yet recorded in `schema_migrations`, in one transaction
/// holding an advisory lock, so two instances starting together apply each migration
/// exactly once. Returns the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<String>, StoreError> {
    let fail = |e: tokio_postgres::Error| StoreError::Migration(e.to_string());
    let tx = client.transaction().await.map_err(fail)?;
    // `CREATE TABLE IF NOT EXISTS` on an existing table raises a NOTICE ("relation
    // already exists, skipping") that the server sends and the log would show on every
    // start: nothing below warning level is worth a line here.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(fail)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    text        PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(fail)?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(fail)?
            .is_some();
        if done {
            continue;
        }
        tx.batch_execute(sql).await.map_err(fail)?;
        if *version == "0006_room_names_and_invitations" {
            fill_room_folds(&tx).await.map_err(fail)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(fail)?;
        applied.push((*version).to_owned());
    }
    tx.commit().await.map_err(fail)?;
    Ok(applied)
}

/// Gives each existing room its folded name (`accounts::names::fold`, which SQL cannot
/// compute), the oldest room first: where rooms created before the rule fold alike, the
/// oldest holds the folded name and the others keep none (reachable by their exact
/// names, never renamed or merged: their links and histories stay as they were). DMs
/// take none.
async fn fill_room_folds(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<(), tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT room FROM room_access WHERE kind <> 'dm' ORDER BY inserted_at, room",
            &[],
        )
        .await?;
    let mut taken = std::collections::HashSet::new();
    let (mut rooms, mut folds): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for row in rows {
        let room: String = row.get(0);
        let fold = crate::accounts::names::fold(&room);
        if taken.insert(fold.clone()) {
            rooms.push(room);
            folds.push(fold);
        } else {
            tracing::warn!(
                room,
                "room name folds like an older room's: kept under its exact name, \
                 no new look-alike of it can be created"
            );
        }
    }
    tx.execute(
        "UPDATE room_access a SET fold = f.fold
         FROM unnest($1::text[], $2::text[]) AS f(room, fold) WHERE a.room = f.room",
        &[&rooms, &folds],
    )
    .await?;
    Ok(())
}
