-- The change sequence (docs/chat.md, "Changes while away"): an edit, a delete, a reaction
-- or a thread reply gives the message a new `change_seq`, drawn from the id sequence, so
-- that a rejoining page can ask for every message changed since the highest `seq` it saw.
-- A message never changed has none (its seq is its id).
--
-- NULL by default and a partial index: the group commit's batch insert writes new rows
-- with no value here and no entry in this index, so storing a message costs what it did.
-- Only a change (an UPDATE, already a row write) adds an index entry. The column has no
-- default expression, so adding it rewrites nothing.
ALTER TABLE messages ADD COLUMN change_seq bigint;
CREATE INDEX messages_room_change_seq ON messages (room, change_seq)
    WHERE change_seq IS NOT NULL;
