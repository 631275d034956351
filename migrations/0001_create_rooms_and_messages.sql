-- Rooms are created on first join; messages belong to a room.
CREATE TABLE rooms (
    name        text        PRIMARY KEY,
    inserted_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    id          bigserial   PRIMARY KEY,
    room        text        NOT NULL REFERENCES rooms (name),
    username    text        NOT NULL,
    body        text        NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now()
);

-- Serves both queries: the latest N of a room (ORDER BY id DESC LIMIT N) and a page
-- before an id (WHERE id < $2 ORDER BY id DESC LIMIT N).
CREATE INDEX messages_room_id_desc ON messages (room, id DESC);
