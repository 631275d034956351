-- The endpoint's secret_key_base when SECRET_KEY_BASE is not configured: the first node
-- to start with this database makes it (one row, id 1, inserted atomically: a second
-- node starting at the same moment reads the first one's), every later start reads it,
-- so a restart keeps every session. It signs session tokens: anyone who can read this
-- table can sign in as any user with a live session. Set SECRET_KEY_BASE to keep the
-- secret out of the database (a configured one always wins); delete the row to end
-- every session at the next start.
CREATE TABLE secret_key_base (
    id          smallint    PRIMARY KEY CHECK (id = 1),
    secret      text        NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now()
);
