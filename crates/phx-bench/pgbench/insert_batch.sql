-- 100 chat messages per transaction in one statement, as the group-commit writer stores
-- them (the writer unnests three text arrays; generate_series makes the same rows here).
INSERT INTO messages (room, username, body)
SELECT 'r' || (g % 10), 'user' || (g % 500), 'hello from the bench' FROM generate_series(1, 100) AS g
RETURNING id, inserted_at;
