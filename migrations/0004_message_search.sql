-- Message search (docs/chat.md, `search`): every term of a query is matched as a word
-- prefix of the body, in the 'simple' text search configuration (no stemming, no stop
-- words, so any language works the same). A query must use this very expression for the
-- planner to use the index. A deleted message's body is '', so it leaves no words here.
-- Built inside the migration's transaction: writes to messages wait while it is built
-- (seconds per million messages).
CREATE INDEX messages_body_search ON messages USING GIN (to_tsvector('simple', body));
