-- 40 chat messages in one statement, shaped as the group-commit writer's (see
-- INSERT_BATCH in crates/chat-app/src/store/postgres.rs: the idempotency arbiter, the
-- parents' reply counts and change sequence numbers in the same statement, ids returned
-- in order), in random rooms
-- of 500; generate_series makes the rows the writer unnests from its arrays. 40 rows is
-- about the mean batch the chat bench's writers see at 20 000 messages/s.
\set b random(0, 1000000)
WITH ins AS (
  INSERT INTO messages (room, username, author, body, client_id, parent_id, attachments, mentions)
  SELECT 'room:' || ((g + :b) % 500), 'user' || g, 'guest:bench' || g,
         'hello from the bench number ' || g, NULL, NULL, '[]'::jsonb, '[]'::jsonb
  FROM generate_series(1, 40) AS g
  ON CONFLICT (room, author, client_id) WHERE client_id IS NOT NULL DO NOTHING
  RETURNING id, room, author, client_id, parent_id, inserted_at
), bump AS (
  UPDATE messages m SET reply_count = m.reply_count + c.n,
    change_seq = GREATEST(coalesce(m.change_seq, 0), c.last)
  FROM (SELECT parent_id, count(*)::int AS n, max(id) AS last FROM ins
        WHERE parent_id IS NOT NULL GROUP BY parent_id) c
  WHERE m.id = c.parent_id
)
SELECT id, room, author, client_id, inserted_at FROM ins ORDER BY id;
