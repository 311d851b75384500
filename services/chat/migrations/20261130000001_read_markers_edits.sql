-- Portable SQL: runs unchanged on SQLite and PostgreSQL.

-- How far each member has read: the room number of the last message they
-- saw. Unread counts are the messages of others above it.
ALTER TABLE members ADD COLUMN last_read_seq BIGINT NOT NULL DEFAULT 0;

-- When a message's text was last changed by its author (milliseconds since
-- the Unix epoch, UTC); null if never.
ALTER TABLE messages ADD COLUMN edited_at BIGINT;

-- The author's client's id for the message (an idempotency key): posting
-- again with the same id gives back the stored message instead of a second one.
ALTER TABLE messages ADD COLUMN client_id TEXT;
CREATE UNIQUE INDEX messages_by_client ON messages (author_id, client_id);
