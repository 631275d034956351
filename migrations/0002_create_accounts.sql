-- Accounts. Existing rooms and messages stay as they are: a room without a
-- row in room_access is public.
CREATE TABLE users (
    id            bigserial   PRIMARY KEY,
    username      text        NOT NULL,
    -- NFKC + lowercase + confusable skeleton of username: unique, so "Admin" and
    -- "аdmin" (Cyrillic а) cannot be registered next to "admin".
    fold          text        NOT NULL UNIQUE,
    -- Argon2id PHC string; the password itself is never stored.
    password_hash text        NOT NULL,
    inserted_at   timestamptz NOT NULL DEFAULT now()
);

-- A session ends at logout (every session of the user is deleted).
CREATE TABLE sessions (
    id          text        PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    inserted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- The kind of a private room or DM (claimed before the room row exists).
CREATE TABLE room_access (
    room        text        PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('public', 'private', 'dm')),
    inserted_at timestamptz NOT NULL DEFAULT now()
);

-- Who is in which room, and how far they have read.
CREATE TABLE memberships (
    room         text   NOT NULL,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_read_id bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (room, user_id)
);
CREATE INDEX memberships_user_id ON memberships (user_id);
