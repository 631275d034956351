-- Room names folded like usernames (docs/chat.md, "Rooms"): a room people named holds its
-- folded name (NFKC, lower case, confusable skeleton), unique, so "Release-Team" and
-- "rеlease-team" (Cyrillic е) cannot be created beside "release-team". NULL: outside the
-- rule, for DMs (canonical names) and for rooms created before it whose folded name an
-- older room holds: those keep their exact names and stay reachable by them.
--
-- The fold is not computable in SQL (the skeleton is Unicode's confusables table):
-- `store::migrate` fills it for the existing rows right after this file, in the same
-- transaction, giving each folded name to its oldest room.
ALTER TABLE room_access ADD COLUMN fold text;
CREATE UNIQUE INDEX room_access_fold ON room_access (fold);

-- Rooms created before accounts have no row yet (a join would record one): recorded now,
-- with their creation time, so that the rule covers them and the oldest keeps its name.
INSERT INTO room_access (room, kind, inserted_at)
SELECT name, CASE WHEN name LIKE 'dm.%' THEN 'dm' ELSE 'public' END, inserted_at
FROM rooms
ON CONFLICT (room) DO NOTHING;

-- A pending invitation (docs/chat.md, "Invitations"): not a membership until accepted.
-- Memberships made by invitations before this table existed stay as they are.
CREATE TABLE invitations (
    room        text        NOT NULL,
    invitee     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    inviter     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room, invitee)
);
CREATE INDEX invitations_invitee ON invitations (invitee);
CREATE INDEX invitations_inviter ON invitations (inviter);

-- After a decline (inviter and room set) or a leave (room set): no invitation of the
-- invitee by that inviter to any room, nor by anyone to that room, until `until`.
CREATE TABLE invite_cooldowns (
    invitee bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    inviter bigint      REFERENCES users (id) ON DELETE CASCADE,
    room    text        NOT NULL,
    until   timestamptz NOT NULL
);
CREATE INDEX invite_cooldowns_invitee ON invite_cooldowns (invitee);
