//! The room-names migration on a database with look-alike rooms from before the rule
//! (docs/chat.md, "Rooms"): every room stays reachable under its exact name, the oldest
//! of the look-alikes holds the folded name, and no new look-alike can be created.

mod support;

use chat_app::accounts::{names, AccountStore, Entry, PostgresAccounts, RoomKind, RoomName};
use chat_app::store::{migrate, MIGRATIONS};
use support::TestDb;
use tokio_postgres::NoTls;

#[tokio::test]
async fn look_alike_rooms_from_before_stay_reachable_and_block_new_ones() {
    let db = TestDb::new().await;
    let (mut client, conn) = tokio_postgres::connect(&db.url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    // A database as the previous release left it: three migrations, rooms created before
    // accounts ("Release-Team", the oldest) and after ("release-team" recorded public,
    // "rеlease-team" with a Cyrillic е private), a DM, and a message in each room.
    for (_, sql) in &MIGRATIONS[..3] {
        client.batch_execute(sql).await.unwrap();
    }
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO schema_migrations (version) VALUES
               ('0001_create_rooms_and_messages'), ('0002_create_accounts'),
               ('0003_message_threads_reactions');
             INSERT INTO users (username, fold, password_hash) VALUES ('ann', 'ann', 'x'), ('bob', 'bob', 'x');
             INSERT INTO rooms (name, inserted_at) VALUES
               ('Release-Team', now() - interval '3 days'),
               ('release-team', now() - interval '2 days'),
               ('r\u{435}lease-team', now() - interval '1 day'),
               ('dm.1.2', now());
             INSERT INTO room_access (room, kind, inserted_at) VALUES
               ('release-team', 'public', now() - interval '2 days'),
               ('r\u{435}lease-team', 'private', now() - interval '1 day'),
               ('dm.1.2', 'dm', now());
             INSERT INTO memberships (room, user_id) VALUES ('r\u{435}lease-team', 1), ('dm.1.2', 1), ('dm.1.2', 2);
             INSERT INTO messages (room, username, body)
               SELECT name, 'ann', 'kept in ' || name FROM rooms;",
        )
        .await
        .unwrap();
    let applied = migrate(&mut client).await.unwrap();
    assert!(
        applied.contains(&"0006_room_names_and_invitations".to_owned()),
        "{applied:?}"
    );
    assert_eq!(applied.len(), MIGRATIONS.len() - 3);
    let folds = client
        .query(
            "SELECT room, kind, fold FROM room_access ORDER BY inserted_at",
            &[],
        )
        .await
        .unwrap();
    let folds: Vec<(String, String, Option<String>)> = folds
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let fold = names::fold("release-team");
    assert_eq!(
        folds,
        [
            ("Release-Team".into(), "public".into(), Some(fold.clone())),
            ("release-team".into(), "public".into(), None),
            ("r\u{435}lease-team".into(), "private".into(), None),
            ("dm.1.2".into(), "dm".into(), None),
        ],
        "the oldest holds the folded name; a DM takes none"
    );

    let store = PostgresAccounts::connect(&db.url(), 2).await.unwrap();
    // Each reachable under its exact name, with its kind and members as before.
    for room in ["Release-Team", "release-team"] {
        assert_eq!(
            store
                .enter_room(room, &names::fold(room), Some(2))
                .await
                .unwrap(),
            Entry::Granted(RoomKind::Public),
            "{room}"
        );
    }
    let cyrillic = "r\u{435}lease-team";
    assert_eq!(
        store.enter_room(cyrillic, &fold, Some(1)).await.unwrap(),
        Entry::Granted(RoomKind::Private)
    );
    assert_eq!(
        store.enter_room(cyrillic, &fold, Some(2)).await.unwrap(),
        Entry::Denied
    );
    // A new look-alike of any of them: refused, pointing at the holder of the name.
    let holder = RoomName::LookAlike(chat_app::accounts::Similar {
        room: "Release-Team".into(),
        kind: RoomKind::Public,
    });
    assert_eq!(
        store.room_name("RELEASE-team", &fold).await.unwrap(),
        holder
    );
    assert!(matches!(
        store
            .enter_room("RELEASE-team", &fold, Some(2))
            .await
            .unwrap(),
        Entry::LookAlike(_)
    ));
    assert!(matches!(
        store
            .create_private("RELEASE-team", &fold, 2)
            .await
            .unwrap(),
        chat_app::accounts::Creation::LookAlike(_)
    ));
    // The messages are where they were.
    let kept = client
        .query(
            "SELECT count(*) FROM messages WHERE body LIKE 'kept in %'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(kept[0].get::<_, i64>(0), 4);
}
