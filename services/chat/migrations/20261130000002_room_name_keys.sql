-- Portable SQL: runs unchanged on SQLite and PostgreSQL.

-- What a room name is unique by: the name in Unicode NFC, lower-cased, so
-- "General", "general" and a decomposed "Général" are one name. Rooms made
-- before keep their exact name as key.
ALTER TABLE rooms ADD COLUMN name_key TEXT;
UPDATE rooms SET name_key = name;
CREATE UNIQUE INDEX rooms_by_name_key ON rooms (name_key);
