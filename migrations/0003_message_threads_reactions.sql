-- The message model of docs/chat.md: threads, edits, tombstones, attachments, mentions, the
-- sender's idempotency key, reactions. Every new column has a constant default, so
-- adding it rewrites nothing; messages from before have the author '' (nobody: an
-- author key is `user:<id>` or `guest:<guest id>`), so they cannot be edited or deleted.
ALTER TABLE messages
    ADD COLUMN author      text        NOT NULL DEFAULT '',
    ADD COLUMN client_id   text,
    ADD COLUMN parent_id   bigint      REFERENCES messages (id),
    ADD COLUMN reply_count integer     NOT NULL DEFAULT 0,
    ADD COLUMN edited_at   timestamptz,
    ADD COLUMN deleted     boolean     NOT NULL DEFAULT false,
    ADD COLUMN attachments jsonb       NOT NULL DEFAULT '[]',
    ADD COLUMN mentions    jsonb       NOT NULL DEFAULT '[]';

-- A client_id is remembered for good per (room, author): the batch insert's
-- ON CONFLICT DO NOTHING arbiter.
CREATE UNIQUE INDEX messages_client_id ON messages (room, author, client_id)
    WHERE client_id IS NOT NULL;
-- Recent and history pages are top-level only.
CREATE INDEX messages_room_top_level ON messages (room, id DESC) WHERE parent_id IS NULL;
-- A thread's replies, newest first.
CREATE INDEX messages_parent_id ON messages (parent_id, id DESC) WHERE parent_id IS NOT NULL;

-- One row per (message, emoji, reactor); `seq` keeps the reaction order.
CREATE TABLE message_reactions (
    seq        bigserial PRIMARY KEY,
    message_id bigint    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    emoji      text      NOT NULL,
    reactor    text      NOT NULL,
    username   text      NOT NULL,
    UNIQUE (message_id, emoji, reactor)
);
