-- Portable SQL: runs unchanged on SQLite and PostgreSQL.

-- The first number a room's stream can still replay from: the archive
-- prunes the events before it. A client asking to resume from further back
-- is told to reload instead.
ALTER TABLE rooms ADD COLUMN first_kept_seq BIGINT NOT NULL DEFAULT 1;

-- The message an event is about, so that deleting a message removes its
-- text (and its cards) from every event a stream can replay, and an edit
-- replaces the text of the events before it. Events made before this
-- column existed have none.
ALTER TABLE room_events ADD COLUMN message_id TEXT;
CREATE INDEX room_events_by_message ON room_events (message_id);
