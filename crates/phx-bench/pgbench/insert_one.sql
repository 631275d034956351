-- One chat message per transaction, as the chat app stored them before group commit:
-- the same row as insert_batch.sql's, in one of 500 rooms, id from the sequence.
\set r random(0, 499)
\set u random(0, 499)
INSERT INTO messages (room, username, author, body)
VALUES ('room:' || :r, 'user' || :u, 'guest:bench' || :u, 'hello from the bench number ' || :u)
RETURNING id, inserted_at;
