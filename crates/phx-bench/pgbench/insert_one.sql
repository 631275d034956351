-- One chat message per transaction, as the chat app stored them before group commit:
-- the same row (room of 10, a username, the bench's 20-byte body), id from the sequence.
\set r random(0, 9)
\set u random(0, 499)
INSERT INTO messages (room, username, body) VALUES ('r' || :r, 'user' || :u, 'hello from the bench') RETURNING id, inserted_at;
